//! Text-to-image, as diffusers' `StableDiffusionPipeline` computes it: the prompt's context,
//! noise scaled by the scheduler's initial sigma, the shared denoising loop, and the final
//! decode (the asymmetric decoder without its condition branch when `--vae` is given, as
//! `AsymmetricAutoencoderKL.decode(z)` does).
//!
//! A 9-channel inpainting UNet generates as A1111 does for txt2img with such a model: every
//! step gets a mask of ones and the latents of an all-gray (zero) image as its extra channels.

use burn::tensor::Tensor;
use image::RgbaImage;

use super::denoise::{Conditioning, Denoise};
use super::inpaint::{InpaintError, InpaintModels, InpaintRequest, check_request, with_loras};
use super::latents;
use super::prompt::TextModels;
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
    check_request(&req.base, models.scheduler_config.num_train_timesteps)?;
    let (b, device) = (&req.base, &models.device);
    let mut notes = Vec::new();
    let nets = with_loras(models, b, &mut notes)?;
    let text = TextModels {
        tokenizer: &models.tokenizer,
        encoder: nets.text_encoder.as_ref().unwrap_or(&models.text_encoder),
        device,
        embeddings: nets.embeddings.as_ref(),
    };
    let context = text.context(
        &nets.prompt,
        &nets.negative_prompt,
        b.guidance > 1.0,
        &mut notes,
    );
    let mut sched = Scheduler::new(b.scheduler, models.scheduler_config.clone());
    sched.eta = b.eta;
    sched.set_timesteps(b.steps);
    let (lh, lw) = ((req.height / 8) as usize, (req.width / 8) as usize);
    let noise = latents::initial_noise(b.latents.as_deref(), b.seed, [1, 4, lh, lw], device)
        .map_err(InpaintError::Request)?;
    let start = latents::starting_latents(&sched, &noise, None, 0);
    let (vae, vae_config) = models.vae();
    let conditioning = if models.unet_config.in_channels == 9 {
        let gray = Tensor::<4>::zeros([1, 3, lh * 8, lw * 8], device);
        Conditioning::Inpaint {
            mask: Tensor::<4>::ones([1, 1, lh, lw], device),
            masked_latents: vae.encode(gray).mode() * vae_config.scaling_factor,
        }
    } else {
        Conditioning::None
    };
    let denoise = Denoise {
        unet: nets.unet.as_ref().unwrap_or(&models.unet),
        context: &context,
        guidance: b.guidance,
        conditioning,
        step_noise: b.scheduler.is_stochastic() || b.eta > 0.0,
        seed: b.seed,
    };
    let z = denoise
        .run(&mut sched, start, 0, progress, cancel)
        .ok_or(InpaintError::Cancelled)?;
    progress.update("decode", 0, 1);
    let z = z / vae_config.scaling_factor;
    let (decoded, tiling) = vae.decode_within(vae_config, z, None, models.max_tensor_bytes);
    if tiling.is_some() {
        notes.push("decoded in latent tiles to fit the device's largest buffer".into());
    }
    progress.update("decode", 1, 1);
    Ok(GenerateOutput {
        image: imaging::from_tensor(decoded),
        notes,
    })
}
