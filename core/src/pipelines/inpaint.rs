//! Stable Diffusion 1.x inpainting and local editing, as diffusers'
//! `StableDiffusionInpaintPipeline` computes it, with the asymmetric VQGAN decoder.
//!
//! request -> mask to the image's size -> working region (whole image, or the mask's bounding
//! box plus padding) padded to a multiple of 8 -> prompt embeddings (with classifier-free
//! guidance) -> latents (caller's noise or seeded) -> denoising loop (9-channel UNet: noisy
//! latents + mask + masked-image latents; 4-channel UNet: the re-noised original is blended
//! back outside the mask after every step) -> decode (asymmetric decoder conditioned on the
//! image and mask, or the standard one; tiled only when needed) -> un-pad, place back,
//! optional feathered paste-back -> exactly the input's size and alpha.
//!
//! Image latents use the VAE posterior's mean (diffusers samples it; the reference fixtures
//! patch diffusers to use the mean too, so both are deterministic).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbaImage};

pub use super::color::ColorMatch;
use super::denoise::{Conditioning, Denoise};
use super::latents;
pub use super::models::{InpaintModels, REQUIRED, SdModels};
use super::networks::{self, Networks};
use super::prompt::TextModels;
use super::region;
pub use super::region::{Region, WorkingSize, prepare_mask};
use super::soft;
pub use super::soft::{MaskMode, RunMask};
use crate::imaging;
use crate::models::tokenizer::TokenizerError;
use crate::models::unet::UNet2DConditionModel;
use crate::models::vae::downsample_mask;
use crate::progress::{CancelToken, Progress};
use crate::prompts::EmbeddingDb;
use crate::schedulers::{Scheduler, SchedulerKind};
use crate::weights::WeightsError;

/// Errors of the inpainting pipeline; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InpaintError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{}: {problem}", path.display())]
    Model { path: PathBuf, problem: String },
    #[error("{0}")]
    Request(String),
    #[error("cancelled")]
    Cancelled,
}

/// Which decoder turns the final latents into pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderChoice {
    /// The asymmetric VQGAN decoder, conditioned on the unmasked image (needs `--vae`).
    Asymmetric,
    /// The model folder's standard VAE decoder.
    Standard,
}

/// Everything a run needs besides the models.
#[derive(Debug, Clone)]
pub struct InpaintRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: usize,
    pub guidance: f64,
    /// 1 = start from pure noise; lower keeps more of the original in the masked area.
    pub strength: f64,
    pub scheduler: SchedulerKind,
    pub seed: u64,
    /// Initial noise `[1, 4, h/8, w/8]` for the working region (overrides the seed's noise).
    pub latents: Option<Vec<f32>>,
    pub region: Region,
    /// Pixels around the mask's bounding box in crop mode.
    pub crop_padding: u32,
    /// The size the model runs the region at.
    pub size: WorkingSize,
    /// Match the repainted area's colours to its surroundings.
    pub color_match: ColorMatch,
    /// Binary, or grey levels as per-pixel strengths (differential diffusion).
    pub mask_mode: MaskMode,
    /// Feather radius (pixels) of the paste-back mask.
    pub mask_blur: u32,
    /// Keep every unmasked pixel of the input (blended through the feathered mask).
    pub paste_back: bool,
    pub decoder: DecoderChoice,
    /// DDIM eta.
    pub eta: f64,
    /// Resize a mask of another size to the image (otherwise such a mask is an error).
    pub resize_mask: bool,
    /// LoRAs to merge for this run (besides the prompt's `<lora:NAME:W>` tags).
    pub loras: Vec<crate::lora::LoraSpec>,
    /// Where `<lora:NAME>` tags are looked up.
    pub lora_dir: Option<PathBuf>,
    /// Textual-inversion embeddings (`NAME.safetensors`, used where NAME is in a prompt).
    pub embedding_dir: Option<PathBuf>,
}

impl Default for InpaintRequest {
    fn default() -> Self {
        InpaintRequest {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 20,
            guidance: 7.5,
            strength: 1.0,
            scheduler: SchedulerKind::DpmPp2mKarras,
            seed: 0,
            latents: None,
            region: Region::Auto,
            crop_padding: 32,
            size: WorkingSize::Auto,
            color_match: ColorMatch::Off,
            mask_mode: MaskMode::Binary,
            mask_blur: 4,
            paste_back: true,
            decoder: DecoderChoice::Asymmetric,
            eta: 0.0,
            resize_mask: true,
            loras: Vec::new(),
            lora_dir: None,
            embedding_dir: None,
        }
    }
}

/// The largest `--steps` (SD 1.x schedulers train on 1000 timesteps).
pub const MAX_STEPS: usize = 1000;
/// The largest `--guidance` accepted (A1111's slider ends at 30).
pub const MAX_GUIDANCE: f64 = 100.0;
/// The largest `--crop-padding` and `--mask-blur`, in pixels.
pub const MAX_PADDING: u32 = 8192;
pub const MAX_MASK_BLUR: u32 = 512;

impl InpaintRequest {
    /// Every number within a sensible, finite range, or a one-line error naming the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(format!(
                "--steps {} must be between 1 and {MAX_STEPS}",
                self.steps
            ));
        }
        let ranges = [
            ("--guidance", self.guidance, 0.0, MAX_GUIDANCE),
            ("--strength", self.strength, 0.0, 1.0),
            ("--eta", self.eta, 0.0, 1.0),
        ];
        for (name, v, lo, hi) in ranges {
            if !v.is_finite() || v < lo || v > hi {
                return Err(format!("{name} {v} is outside {lo}..{hi}"));
            }
        }
        if self.crop_padding > MAX_PADDING {
            return Err(format!(
                "--crop-padding {} is larger than {MAX_PADDING} pixels",
                self.crop_padding
            ));
        }
        if self.mask_blur > MAX_MASK_BLUR {
            return Err(format!(
                "--mask-blur {} is larger than {MAX_MASK_BLUR} pixels",
                self.mask_blur
            ));
        }
        if let Some(v) = &self.latents
            && let Some(x) = v.iter().find(|x| !x.is_finite())
        {
            return Err(format!("--latents holds a non-finite value ({x})"));
        }
        crate::prompts::check(&self.prompt).map_err(|e| format!("--prompt: {e}"))?;
        let dir = self.lora_dir.as_deref();
        let (..) = super::networks::resolve(&self.prompt, "", &self.loras, dir, &mut Vec::new())?;
        crate::prompts::check(&self.negative_prompt)
            .map_err(|e| format!("--negative-prompt: {e}"))?;
        Ok(())
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct InpaintOutput {
    /// Exactly the input's size, with its alpha.
    pub image: RgbaImage,
    /// Things the user should know (prompt truncated, mask resized, region used, tiling).
    pub notes: Vec<String>,
    /// The working region `(x, y, w, h)` in the input image.
    pub region: (u32, u32, u32, u32),
    /// The size the model ran the region at (the region's padded size, or the working size it
    /// was resized to).
    pub work_size: (u32, u32),
}

/// Runs inpainting on `image` (upright RGBA) with `mask` (any size; white = repaint).
pub fn run(
    models: &InpaintModels,
    image: &RgbaImage,
    mask: &GrayImage,
    req: &InpaintRequest,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<InpaintOutput, InpaintError> {
    check_request(req, models.sd.scheduler_config.num_train_timesteps)?;
    let mut notes = Vec::new();
    let (mask, rect) = mask_and_region(req, image, mask, &mut notes)?;
    let nets = with_loras(models, req, &mut notes)?;
    let context = prompt_context(models, &nets, req, &mut notes);
    let run = MaskedRun {
        sd: &models.sd,
        unet: nets.unet.as_ref().unwrap_or(&models.sd.unet),
        context: &context,
        layout: Layout::Inpaint,
    };
    run.run(image, &mask, rect, req, notes, progress, cancel)
}

/// A region `(x, y, w, h)` of an image.
pub type Rect = (u32, u32, u32, u32);

/// The request's mask at the image's size (resized with a note, or refused; binary, or with
/// its strengths in soft mode) and the working region it chooses.
pub(super) fn mask_and_region(
    req: &InpaintRequest,
    image: &RgbaImage,
    mask: &GrayImage,
    notes: &mut Vec<String>,
) -> Result<(RunMask, Rect), InpaintError> {
    let (iw, ih) = image.dimensions();
    let binary = region::request_mask(mask, iw, ih, req.resize_mask, notes)
        .map_err(InpaintError::Request)?;
    let mask = match req.mask_mode {
        MaskMode::Binary => RunMask {
            mask: binary,
            strength: None,
        },
        MaskMode::Soft => soft::soft_mask(mask, iw, ih, &mut Vec::new()),
    };
    let rect = region::choose_region(req.region, &mask.mask, req.crop_padding)
        .map_err(InpaintError::Request)?;
    if req.mask_mode == MaskMode::Soft && mask.strength.is_none() {
        notes.push("the mask has no grey levels: soft mode ran it as a binary mask".into());
    }
    Ok((mask, rect))
}

/// How a 9-channel UNet takes its extra input channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// SD inpainting: `[latents, mask (1 = repaint), masked-image latents]`.
    Inpaint,
    /// Paint-by-Example: `[latents, masked-image latents, mask (1 = keep)]`.
    Example,
}

/// The parts of a masked run that differ between pipelines: the UNet (with the run's
/// LoRAs), its context (text or image embedding) and the channel layout.
pub(super) struct MaskedRun<'a> {
    pub sd: &'a SdModels,
    pub unet: &'a UNet2DConditionModel,
    pub context: &'a Tensor<3>,
    pub layout: Layout,
}

impl MaskedRun<'_> {
    /// The masked body every masked pipeline shares, on `masks` (the image's size) within
    /// `rect`: encode, denoise (with a soft mask's release), decode (conditioned), place back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        image: &RgbaImage,
        masks: &RunMask,
        rect: (u32, u32, u32, u32),
        req: &InpaintRequest,
        mut notes: Vec<String>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<InpaintOutput, InpaintError> {
        let sd = self.sd;
        let device = &sd.device;
        let mask = &masks.mask;
        // An exact working size: the crop grows to its aspect first, so nothing is stretched.
        let rect = match req.size {
            WorkingSize::Exact(tw, th) => {
                region::expand_to_aspect(rect, (tw, th), image.width(), image.height())
            }
            _ => rect,
        };
        let (rx, ry, rw, rh) = rect;
        if (rw, rh) != image.dimensions() {
            notes.push(format!(
                "working on the mask's region {rw}x{rh} at ({rx}, {ry})"
            ));
        }
        let target = region::working_size(req.size, rw, rh, sd.unet_config.trained_pixels());
        let (work, work_mask) = match target {
            Some(t) => region::resized_region(image, mask, rect, t),
            None => region::padded_region(image, mask, rect),
        };
        if let Some((tw, th)) = target {
            notes.push(format!(
                "ran at {tw}x{th}: the {rw}x{rh} region resized to about the model's {0}x{0} \
                 (--size native runs it at its own size)",
                sd.unet_config.trained_pixels()
            ));
        }
        // A soft mask conditions the model and decoder on its binarized strengths.
        let strength = masks
            .strength
            .as_ref()
            .map(|s| soft::work_strength(s, rect, target));
        let cond_mask = strength.as_ref().map(soft::conditioning_mask);
        let (img_t, mask_t) = work_tensors(&work, cond_mask.as_ref().unwrap_or(&work_mask), device);
        let [_, _, ph, pw] = img_t.dims();
        let (lh, lw) = (ph / 8, pw / 8);

        let mut sched = Scheduler::new(req.scheduler, sd.scheduler_config.clone());
        sched.eta = req.eta;
        sched.set_timesteps(req.steps);
        let t_start = latents::begin_for_strength(&mut sched, req.steps, req.strength)
            .map_err(InpaintError::Request)?;

        let (vae_model, vae_config) = sd.vae();
        let sf = vae_config.scaling_factor;
        let nine = sd.unet_config.in_channels == 9;
        let strength_max = req.strength >= 1.0;
        progress.update("encode", 0, 1);
        let image_latents = (!nine || !strength_max || strength.is_some())
            .then(|| vae_model.encode(img_t.clone()).mode() * sf);
        let masked_latents = nine.then(|| {
            let keep = mask_t.clone().neg() + 1.0;
            vae_model.encode(img_t.clone() * keep).mode() * sf
        });
        let mask_latent = downsample_mask(mask_t.clone(), vae_config.scale_factor());
        progress.update("encode", 1, 1);

        let noise =
            latents::initial_noise(req.latents.as_deref(), req.seed, [1, 4, lh, lw], device)
                .map_err(InpaintError::Request)?;
        let start = latents::starting_latents(
            &sched,
            &noise,
            image_latents.as_ref().filter(|_| !strength_max),
            t_start,
        );
        let release = match (&strength, &image_latents) {
            (Some(s), Some(x0)) => Some(soft::release(
                s,
                x0.clone(),
                noise.clone(),
                (lw, lh),
                device,
            )),
            _ => None,
        };
        let conditioning = match (masked_latents, image_latents) {
            (Some(masked), _) => Conditioning::Channels(match self.layout {
                Layout::Inpaint => Tensor::cat(vec![mask_latent, masked], 1),
                Layout::Example => Tensor::cat(vec![masked, mask_latent.neg() + 1.0], 1),
            }),
            // A soft mask's release replaces the 4-channel blend (the reference has none).
            (None, Some(_)) if release.is_some() => Conditioning::None,
            (None, Some(original)) => Conditioning::Blend {
                original,
                noise,
                mask: mask_latent,
            },
            // Not reached: a 4-channel UNet always encodes the image.
            (None, None) => Conditioning::None,
        };
        let latents = Denoise {
            unet: self.unet,
            context: self.context,
            guidance: req.guidance,
            conditioning,
            release,
            step_noise: req.scheduler.is_stochastic() || req.eta > 0.0,
            seed: req.seed,
        }
        .run(&mut sched, start, t_start, progress, cancel)
        .ok_or(InpaintError::Cancelled)?;

        progress.update("decode", 0, 1);
        let generated = decode(sd, latents / sf, img_t, mask_t, &mut notes);
        progress.update("decode", 1, 1);
        let mut generated = match target {
            Some(_) => region::resize_back(&generated, rw, rh),
            None => generated,
        };
        super::color::color_match(&mut generated, image, mask, rect, req.color_match);

        let paste = req.paste_back.then_some(req.mask_blur);
        let image_out = region::place_back(image, mask, rect, &generated, paste);
        Ok(InpaintOutput {
            image: image_out,
            notes,
            region: rect,
            work_size: (pw as u32, ph as u32),
        })
    }
}

/// The request's LoRAs (and prompt tags) merged into copies of the networks for this run, and
/// its embeddings folder read.
pub(super) fn with_loras(
    models: &InpaintModels,
    req: &InpaintRequest,
    notes: &mut Vec<String>,
) -> Result<Networks, InpaintError> {
    let (prompt, negative, loras) = networks::resolve(
        &req.prompt,
        &req.negative_prompt,
        &req.loras,
        req.lora_dir.as_deref(),
        notes,
    )
    .map_err(InpaintError::Request)?;
    let mut nets = networks::apply(
        &models.sd.unet,
        &models.text_encoder,
        prompt,
        negative,
        loras,
    )?;
    nets.embeddings = req.embedding_dir.as_deref().map(|d| {
        let dim = models.text_encoder.hidden_size();
        EmbeddingDb::load(d, &models.tokenizer, dim, notes)
    });
    Ok(nets)
}

/// The UNet's text context for the request's prompts, with the run's LoRAs and embeddings.
pub(super) fn prompt_context(
    models: &InpaintModels,
    nets: &Networks,
    req: &InpaintRequest,
    notes: &mut Vec<String>,
) -> Tensor<3> {
    let text = TextModels {
        tokenizer: &models.tokenizer,
        encoder: nets.text_encoder.as_ref().unwrap_or(&models.text_encoder),
        device: &models.sd.device,
        embeddings: nets.embeddings.as_ref(),
    };
    text.context(
        &nets.prompt,
        &nets.negative_prompt,
        req.guidance > 1.0,
        notes,
    )
}

/// The denoising loop's inputs for this request (the run's UNet, with its LoRAs).
pub(super) fn denoiser<'a>(
    models: &'a InpaintModels,
    nets: &'a Networks,
    context: &'a Tensor<3>,
    req: &InpaintRequest,
    conditioning: Conditioning,
) -> Denoise<'a> {
    Denoise {
        unet: nets.unet.as_ref().unwrap_or(&models.sd.unet),
        context,
        guidance: req.guidance,
        conditioning,
        release: None,
        step_noise: req.scheduler.is_stochastic() || req.eta > 0.0,
        seed: req.seed,
    }
}

/// The request's numbers within what the scheduler can run.
pub(super) fn check_request(req: &InpaintRequest, train_steps: usize) -> Result<(), InpaintError> {
    req.validate().map_err(InpaintError::Request)?;
    if req.steps > train_steps {
        return Err(InpaintError::Request(format!(
            "--steps must be between 1 and {train_steps}"
        )));
    }
    Ok(())
}

/// The working images as tensors: the image `[1, 3, H, W]` in [-1, 1] and the binary mask
/// `[1, 1, H, W]` (1 = repaint).
fn work_tensors(
    work: &RgbaImage,
    work_mask: &GrayImage,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let (pw, ph) = work.dimensions();
    let img_t = imaging::to_tensor(work, device);
    let mask_vals: Vec<f32> = work_mask
        .pixels()
        .map(|p| if p[0] > 0 { 1.0 } else { 0.0 })
        .collect();
    let mask_t: Tensor<4> = Tensor::from_data(
        TensorData::new(mask_vals, [1, 1, ph as usize, pw as usize]),
        device,
    );
    (img_t, mask_t)
}

/// Decodes unscaled latents `z` with the loaded VAE (the asymmetric one conditioned on the
/// working image and mask), tiled only when a whole decode would not fit the device.
fn decode(
    models: &SdModels,
    z: Tensor<4>,
    img_t: Tensor<4>,
    mask_t: Tensor<4>,
    notes: &mut Vec<String>,
) -> RgbaImage {
    let (vae_model, vae_config) = models.vae();
    let condition = vae_config.asymmetric.then_some((img_t, mask_t));
    let decoded = vae_model.decode_within(vae_config, z, condition, models.max_tensor_bytes);
    notes.extend(decoded.notes());
    imaging::from_tensor(decoded.image)
}

/// Inpainting without weights (the classical engine): the same request handling (mask size,
/// region, exact size, alpha, paste-back) around [`classical::fill`](crate::classical::fill).
/// In `auto` region mode large images work on a crop around the mask with generous context.
pub fn run_classical(
    image: &RgbaImage,
    mask: &GrayImage,
    req: &InpaintRequest,
) -> Result<InpaintOutput, InpaintError> {
    req.validate().map_err(InpaintError::Request)?;
    let (iw, ih) = image.dimensions();
    let mut notes = Vec::new();
    let mask = region::request_mask(mask, iw, ih, req.resize_mask, &mut notes)
        .map_err(InpaintError::Request)?;
    let (bx0, by0, bx1, by1) =
        region::bbox(&mask).ok_or_else(|| InpaintError::Request(region::EMPTY_MASK.into()))?;
    let context = req.crop_padding.max((bx1 - bx0).max(by1 - by0)).max(64);
    // Auto: the mask's neighbourhood (at least its own size on every side) when that is under
    // a quarter of the image (the fill's sources are rarely far; its time grows with the
    // image), and always on images past 2048x2048.
    let mode = match req.region {
        Region::Auto if (iw as u64) * (ih as u64) > 2048 * 2048 => Region::Crop,
        m => m,
    };
    let padding = if mode == Region::Full {
        req.crop_padding
    } else {
        context
    };
    let (rx, ry, rw, rh) =
        region::choose_region(mode, &mask, padding).map_err(InpaintError::Request)?;
    if (rw, rh) != (iw, ih) {
        notes.push(format!(
            "working on the mask's region {rw}x{rh} at ({rx}, {ry})"
        ));
    }
    let crop = image::imageops::crop_imm(image, rx, ry, rw, rh).to_image();
    let crop_mask = image::imageops::crop_imm(&mask, rx, ry, rw, rh).to_image();
    let generated = crate::classical::fill(&crop, &crop_mask, crate::classical::Method::Auto);
    let paste = req.paste_back.then_some(req.mask_blur);
    let out = region::place_back(image, &mask, (rx, ry, rw, rh), &generated, paste);
    Ok(InpaintOutput {
        image: out,
        notes,
        region: (rx, ry, rw, rh),
        work_size: (rw, rh),
    })
}

/// The generation parameters in the text A1111 writes (`parameters` PNG chunk); `width` x
/// `height` is the size the model ran at (A1111's `Size`, [`InpaintOutput::work_size`]).
pub fn a1111_parameters(
    req: &InpaintRequest,
    models: &InpaintModels,
    width: u32,
    height: u32,
) -> String {
    let mut s = a1111_parameters_for(req, &models.sd.model_name, width, height);
    let prompts = [req.prompt.as_str(), req.negative_prompt.as_str()];
    let dim = models.text_encoder.hidden_size();
    let ti = req
        .embedding_dir
        .as_deref()
        .and_then(|d| networks::ti_hashes(&models.tokenizer, dim, d, &prompts));
    if let (Some(ti), Some(at)) = (ti, s.rfind(", Version: clearpaint")) {
        s.insert_str(at, &format!(", TI hashes: \"{ti}\""));
    }
    s
}

/// [`a1111_parameters`] for a model name ("classical" for the classical engine).
pub fn a1111_parameters_for(
    req: &InpaintRequest,
    model_name: &str,
    width: u32,
    height: u32,
) -> String {
    let (prompt, hashes) = networks::a1111_text(&req.prompt, &req.loras, req.lora_dir.as_deref());
    let mut s = prompt;
    if !req.negative_prompt.is_empty() {
        s.push_str(&format!("\nNegative prompt: {}", req.negative_prompt));
    }
    s.push_str(&format!(
        "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {width}x{height}, Model: {}, \
         Denoising strength: {}, Mask blur: {}, Inpaint area: {}, Decoder: {}{}, Version: clearpaint {}",
        req.steps,
        req.scheduler.a1111_name(),
        req.guidance,
        req.seed,
        model_name,
        req.strength,
        req.mask_blur,
        match req.region {
            Region::Crop => "Only masked",
            Region::Full => "Whole picture",
            Region::Auto => "Auto",
        },
        match req.decoder {
            DecoderChoice::Asymmetric => "asymmetric VQGAN",
            DecoderChoice::Standard => "standard VAE",
        },
        hashes.map(|h| format!(", Lora hashes: \"{h}\"")).unwrap_or_default()
            + match req.color_match {
                ColorMatch::Off => "",
                ColorMatch::MeanStd => ", Color match: mean-std",
                ColorMatch::Histogram => ", Color match: histogram",
            }
            + match req.mask_mode {
                MaskMode::Binary => "",
                MaskMode::Soft => ", Mask mode: soft",
            },
        env!("CARGO_PKG_VERSION")
    ));
    s
}
