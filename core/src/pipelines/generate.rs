//! Text-to-image, as diffusers' `StableDiffusionPipeline` computes it, and image-to-image
//! (`StableDiffusionImg2ImgPipeline`): the prompt's context,
//! noise scaled by the scheduler's initial sigma, the shared denoising loop, and the final
//! decode (the asymmetric decoder without its condition branch when `--vae` is given, as
//! `AsymmetricAutoencoderKL.decode(z)` does).
//!
//! A 9-channel inpainting UNet generates as A1111 does for txt2img with such a model: every
//! step gets a mask of ones and the latents of an all-gray (zero) image as its extra channels.

use burn::tensor::Tensor;
use image::RgbaImage;

use super::denoise::Conditioning;
use super::inpaint::{
    DecoderChoice, InpaintError, InpaintModels, InpaintRequest, check_request, denoiser,
    prompt_context, with_loras,
};
use super::latents;
use crate::imaging;
use crate::progress::{CancelToken, Progress};
use crate::schedulers::Scheduler;

/// The largest side `generate` accepts (pixels).
pub const MAX_SIDE: u32 = 4096;

/// A text-to-image run: the shared options (prompt, sampling, LoRAs, ...; the mask and
/// region ones are not used) and the output size.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub base: InpaintRequest,
    pub width: u32,
    pub height: u32,
}

/// The generated image and the notes of the run.
pub struct GenerateOutput {
    pub image: RgbaImage,
    pub notes: Vec<String>,
}

impl GenerateRequest {
    /// The shared checks, and a size that is a multiple of 8 within [`MAX_SIDE`].
    pub fn validate(&self) -> Result<(), String> {
        self.base.validate()?;
        for (name, v) in [("--width", self.width), ("--height", self.height)] {
            if v == 0 || v > MAX_SIDE || v % 8 != 0 {
                return Err(format!(
                    "{name} {v} must be a multiple of 8 between 8 and {MAX_SIDE}"
                ));
            }
        }
        Ok(())
    }
}

/// Generates an image from the prompt.
pub fn run(
    models: &InpaintModels,
    req: &GenerateRequest,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<GenerateOutput, InpaintError> {
    req.validate().map_err(InpaintError::Request)?;
    let (h, w) = (req.height as usize, req.width as usize);
    sample(models, &req.base, h, w, None, progress, cancel)
}

/// Image-to-image, as diffusers' `StableDiffusionImg2ImgPipeline`: the image's latents (the
/// posterior's mode) noised to the step `strength` gives, then denoised from there. The image
/// is worked on at its size rounded down to a multiple of 8 (as diffusers' preprocessing
/// does); a result of another size is resized back to the input's, with a note.
pub fn img2img(
    models: &InpaintModels,
    image: &RgbaImage,
    req: &InpaintRequest,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<GenerateOutput, InpaintError> {
    req.validate().map_err(InpaintError::Request)?;
    let (iw, ih) = image.dimensions();
    let (w, h) = (iw / 8 * 8, ih / 8 * 8);
    if w == 0 || h == 0 || iw > MAX_SIDE || ih > MAX_SIDE {
        return Err(InpaintError::Request(format!(
            "the image is {iw}x{ih}: img2img needs 8 to {MAX_SIDE} pixels a side"
        )));
    }
    let work = if (w, h) == (iw, ih) {
        image.clone()
    } else {
        image::imageops::resize(image, w, h, image::imageops::FilterType::Lanczos3)
    };
    let x = imaging::to_tensor(&work, &models.sd.device);
    let mut out = sample(
        models,
        req,
        h as usize,
        w as usize,
        Some(x),
        progress,
        cancel,
    )?;
    if (w, h) != (iw, ih) {
        out.notes.push(format!(
            "worked at {w}x{h} (a multiple of 8), resized back to {iw}x{ih}"
        ));
        out.image =
            image::imageops::resize(&out.image, iw, ih, image::imageops::FilterType::Lanczos3);
    }
    Ok(out)
}

/// The shared body: context, scheduler, starting latents (noise, or `init`'s latents noised
/// to the strength's first step), the loop and the decode, at `h` x `w` pixels.
fn sample(
    models: &InpaintModels,
    b: &InpaintRequest,
    h: usize,
    w: usize,
    init: Option<Tensor<4>>,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<GenerateOutput, InpaintError> {
    check_request(b, models.sd.scheduler_config.num_train_timesteps)?;
    let device = &models.sd.device;
    let mut notes = Vec::new();
    let nets = with_loras(models, b, &mut notes)?;
    let context = prompt_context(models, &nets, b, &mut notes);
    let mut sched = Scheduler::new(b.scheduler, models.sd.scheduler_config.clone());
    sched.eta = b.eta;
    sched.set_timesteps(b.steps);
    let (lh, lw) = (h / 8, w / 8);
    let noise = latents::initial_noise(b.latents.as_deref(), b.seed, [1, 4, lh, lw], device)
        .map_err(InpaintError::Request)?;
    let (vae, vae_config) = models.sd.vae();
    let sf = vae_config.scaling_factor;
    let (start, t_start) = match init {
        Some(x) => {
            let t_start = latents::begin_for_strength(&mut sched, b.steps, b.strength)
                .map_err(InpaintError::Request)?;
            let x0 = vae.encode(x).mode() * sf;
            (
                latents::starting_latents(&sched, &noise, Some(&x0), t_start),
                t_start,
            )
        }
        None => (latents::starting_latents(&sched, &noise, None, 0), 0),
    };
    let conditioning = if models.sd.unet_config.in_channels == 9 {
        let gray = Tensor::<4>::zeros([1, 3, lh * 8, lw * 8], device);
        let mask = Tensor::<4>::ones([1, 1, lh, lw], device);
        Conditioning::Channels(Tensor::cat(vec![mask, vae.encode(gray).mode() * sf], 1))
    } else {
        Conditioning::None
    };
    let z = denoiser(models, &nets, &context, b, conditioning)
        .run(&mut sched, start, t_start, progress, cancel)
        .ok_or(InpaintError::Cancelled)?;
    progress.update("decode", 0, 1);
    let decoded = vae.decode_within(vae_config, z / sf, None, models.sd.max_tensor_bytes);
    notes.extend(decoded.notes());
    progress.update("decode", 1, 1);
    Ok(GenerateOutput {
        image: imaging::from_tensor(decoded.image),
        notes,
    })
}

/// A1111's txt2img `parameters` text (img2img: with its denoising strength), with the LoRA
/// hashes and the decoder.
pub fn a1111_parameters(
    req: &InpaintRequest,
    model: &str,
    w: u32,
    h: u32,
    img2img: bool,
) -> String {
    let (prompt, hashes) =
        super::networks::a1111_text(&req.prompt, &req.loras, req.lora_dir.as_deref());
    let mut s = prompt;
    if !req.negative_prompt.is_empty() {
        s.push_str(&format!("\nNegative prompt: {}", req.negative_prompt));
    }
    s.push_str(&format!(
        "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {w}x{h}, Model: {model}",
        req.steps,
        req.scheduler.a1111_name(),
        req.guidance,
        req.seed,
    ));
    if img2img {
        s.push_str(&format!(", Denoising strength: {}", req.strength));
    }
    if let Some(h) = hashes {
        s.push_str(&format!(", Lora hashes: \"{h}\""));
    }
    s.push_str(&format!(
        ", Decoder: {}, Version: clearpaint {}",
        match req.decoder {
            DecoderChoice::Asymmetric => "asymmetric VQGAN (no condition)",
            DecoderChoice::Standard => "standard VAE",
        },
        env!("CARGO_PKG_VERSION")
    ));
    s
}
