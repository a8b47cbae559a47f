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

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbaImage};

use crate::device::Selected;
use crate::imaging;
use crate::models::clip::{self, ClipTextModel};
use crate::models::ldm;
use crate::models::tokenizer::{ClipTokenizer, TokenizerError};
use crate::models::unet::{self, UNet2DConditionModel, UNetConfig};
use crate::models::vae::{self, AutoencoderKL, VaeConfig, downsample_mask, gaussian_noise};
use crate::progress::{CancelToken, Progress};
use crate::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};
use crate::weights::{SafetensorsFile, WeightsError, read_config};

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

/// Which part of the image the model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Crop when the mask covers a small part of a large image, else the whole image.
    Auto,
    /// The whole image.
    Full,
    /// The mask's bounding box plus padding (A1111 "only masked", IOPaint "crop").
    Crop,
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
    /// Feather radius (pixels) of the paste-back mask.
    pub mask_blur: u32,
    /// Keep every unmasked pixel of the input (blended through the feathered mask).
    pub paste_back: bool,
    pub decoder: DecoderChoice,
    /// DDIM eta.
    pub eta: f64,
    /// Resize a mask of another size to the image (otherwise such a mask is an error).
    pub resize_mask: bool,
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
            mask_blur: 4,
            paste_back: true,
            decoder: DecoderChoice::Asymmetric,
            eta: 0.0,
            resize_mask: true,
        }
    }
}

/// The models of a pipeline folder, loaded once for many runs.
pub struct InpaintModels {
    pub unet: UNet2DConditionModel,
    pub unet_config: UNetConfig,
    pub text_encoder: ClipTextModel,
    pub tokenizer: ClipTokenizer,
    pub scheduler_config: SchedulerConfig,
    /// The folder's VAE (`vae/`), when the standard decoder is used.
    pub vae: Option<(AutoencoderKL, VaeConfig)>,
    /// The asymmetric VAE (`--vae`), when given.
    pub asym_vae: Option<(AutoencoderKL, VaeConfig)>,
    pub device: Device,
    pub max_tensor_bytes: u64,
    pub model_name: String,
}

/// The files a pipeline folder needs, for error messages.
pub const REQUIRED: &str = "unet/ (config.json + diffusion_pytorch_model[.fp16].safetensors), \
    vae/, text_encoder/ (config.json + model[.fp16].safetensors); tokenizer/ and scheduler/ are \
    optional";

impl InpaintModels {
    /// Loads `model_dir` (a diffusers pipeline folder) and optionally an asymmetric VAE folder.
    /// Only the VAE the chosen decoder needs is loaded.
    pub fn load(
        model_dir: &Path,
        asym_vae_dir: Option<&Path>,
        decoder: DecoderChoice,
        selected: &Selected,
    ) -> Result<Self, InpaintError> {
        let device = &selected.device;
        let single_file = model_dir.is_file();
        if !single_file && !model_dir.is_dir() {
            return Err(InpaintError::Model {
                path: model_dir.to_path_buf(),
                problem: format!(
                    "no such file or folder; expected a diffusers pipeline folder with \
                     {REQUIRED}, or a single-file SD 1.x checkpoint (.safetensors)"
                ),
            });
        }
        let checkpoint = if single_file {
            let file = SafetensorsFile::open(model_dir)?;
            if !ldm::is_ldm_checkpoint(&file) {
                return Err(InpaintError::Model {
                    path: model_dir.to_path_buf(),
                    problem: "not a single-file Stable Diffusion checkpoint (no \
                              model.diffusion_model.* tensors); give a diffusers pipeline folder \
                              or an SD 1.x .safetensors checkpoint"
                        .into(),
                });
            }
            Some(file)
        } else {
            for sub in ["unet", "text_encoder"] {
                if !model_dir.join(sub).is_dir() {
                    return Err(InpaintError::Model {
                        path: model_dir.to_path_buf(),
                        problem: format!(
                            "no {sub}/ folder; a diffusers pipeline folder has {REQUIRED}"
                        ),
                    });
                }
            }
            None
        };
        let (u, c, tokenizer, scheduler_config) = match &checkpoint {
            Some(file) => (
                ldm::load_unet(file, device)?,
                ldm::load_text_encoder(file, device)?,
                ClipTokenizer::bundled(),
                SchedulerConfig::sd15(),
            ),
            None => {
                let u = unet::load_folder(model_dir.join("unet"), device)?;
                let c = clip::load_folder(model_dir.join("text_encoder"), device)?;
                let tokenizer =
                    ClipTokenizer::from_folder_or_bundled(Some(&model_dir.join("tokenizer")))?;
                let sched_path = model_dir.join("scheduler").join("scheduler_config.json");
                let scheduler_config = if sched_path.is_file() {
                    let cfg: SchedulerConfig = read_config(&sched_path)?;
                    cfg.validate().map_err(|problem| InpaintError::Model {
                        path: sched_path.clone(),
                        problem,
                    })?;
                    cfg
                } else {
                    SchedulerConfig::sd15()
                };
                (u, c, tokenizer, scheduler_config)
            }
        };
        let asym_vae = match (decoder, asym_vae_dir) {
            (DecoderChoice::Asymmetric, Some(dir)) => {
                let v = vae::load_folder(dir, device)?;
                if !v.config.asymmetric {
                    return Err(InpaintError::Model {
                        path: dir.to_path_buf(),
                        problem: "not an asymmetric VAE (AsymmetricAutoencoderKL); use it with \
                                  --decoder standard or give the asymmetric VAE folder"
                            .into(),
                    });
                }
                Some((v.model, v.config))
            }
            (DecoderChoice::Asymmetric, None) => {
                return Err(InpaintError::Request(
                    "--decoder asymmetric needs --vae DIR (an AsymmetricAutoencoderKL folder such \
                     as cross-attention/asymmetric-autoencoder-kl-x-1-5); or use --decoder standard"
                        .into(),
                ));
            }
            _ => None,
        };
        let vae = if asym_vae.is_none() {
            let v = match &checkpoint {
                Some(file) => ldm::load_vae(file, device)?,
                None => vae::load_folder(model_dir.join("vae"), device)?,
            };
            Some((v.model, v.config))
        } else {
            None
        };
        if tokenizer.vocab_len() > c.config.vocab_size {
            return Err(InpaintError::Model {
                path: model_dir.to_path_buf(),
                problem: format!(
                    "the tokenizer has {} tokens but the text encoder embeds only {}; the \
                     tokenizer does not belong to this text encoder",
                    tokenizer.vocab_len(),
                    c.config.vocab_size
                ),
            });
        }
        if u.config.cross_attention_dim != c.config.hidden_size {
            return Err(InpaintError::Model {
                path: model_dir.to_path_buf(),
                problem: format!(
                    "the UNet attends to {}-wide text but the text encoder gives {}",
                    u.config.cross_attention_dim, c.config.hidden_size
                ),
            });
        }
        Ok(InpaintModels {
            unet: u.model,
            unet_config: u.config,
            text_encoder: c.model,
            tokenizer,
            scheduler_config,
            vae,
            asym_vae,
            device: device.clone(),
            max_tensor_bytes: selected.max_tensor_bytes,
            model_name: model_dir
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        })
    }

    fn vae(&self) -> &(AutoencoderKL, VaeConfig) {
        self.asym_vae
            .as_ref()
            .or(self.vae.as_ref())
            .expect("a VAE is always loaded")
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
}

/// Binary mask (true = repaint) at the image's size: a mask of another size is resized
/// (nearest) with a note; values >= 128 repaint.
pub fn prepare_mask(
    mask: &GrayImage,
    width: u32,
    height: u32,
    notes: &mut Vec<String>,
) -> GrayImage {
    let m = if mask.dimensions() != (width, height) {
        notes.push(format!(
            "mask is {}x{}, image is {width}x{height}: the mask was resized to the image",
            mask.width(),
            mask.height()
        ));
        image::imageops::resize(mask, width, height, image::imageops::FilterType::Nearest)
    } else {
        mask.clone()
    };
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if m.get_pixel(x, y)[0] >= 128 { 255 } else { 0 }])
    })
}

/// The request's mask at the image's size: resized (with a note) or, when resizing is off,
/// refused if its size differs.
fn request_mask(
    mask: &GrayImage,
    iw: u32,
    ih: u32,
    req: &InpaintRequest,
    notes: &mut Vec<String>,
) -> Result<GrayImage, InpaintError> {
    if !req.resize_mask && mask.dimensions() != (iw, ih) {
        return Err(InpaintError::Request(format!(
            "the mask is {}x{} but the image is {iw}x{ih} (mask resizing is off)",
            mask.width(),
            mask.height()
        )));
    }
    Ok(prepare_mask(mask, iw, ih, notes))
}

/// Bounding box `(x0, y0, x1, y1)` (exclusive) of the repaint pixels.
fn bbox(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    (x0 != u32::MAX).then_some((x0, y0, x1, y1))
}

/// The working region for `region` mode.
fn choose_region(
    mode: Region,
    mask: &GrayImage,
    padding: u32,
) -> Result<(u32, u32, u32, u32), InpaintError> {
    let (w, h) = mask.dimensions();
    let Some((x0, y0, x1, y1)) = bbox(mask) else {
        return Err(InpaintError::Request(
            "the mask is empty: nothing to repaint (white = repaint, black = keep)".into(),
        ));
    };
    let cx0 = x0.saturating_sub(padding);
    let cy0 = y0.saturating_sub(padding);
    let cx1 = (x1 + padding).min(w);
    let cy1 = (y1 + padding).min(h);
    let crop = (cx0, cy0, cx1 - cx0, cy1 - cy0);
    let full = (0, 0, w, h);
    Ok(match mode {
        Region::Full => full,
        Region::Crop => crop,
        Region::Auto => {
            let crop_area = crop.2 as u64 * crop.3 as u64;
            if (w as u64 * h as u64) > 4 * crop_area && w.max(h) > 768 {
                crop
            } else {
                full
            }
        }
    })
}

/// Gaussian feather of a binary mask (separable, radius `r` pixels), values in [0, 1].
fn feather(mask: &GrayImage, r: u32) -> Vec<f32> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let mut v: Vec<f32> = mask.pixels().map(|p| p[0] as f32 / 255.0).collect();
    if r == 0 {
        return v;
    }
    let sigma = r as f32 / 2.0;
    let k: Vec<f32> = (-(r as i32)..=r as i32)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|x| x / sum).collect();
    let r = r as i32;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, kv) in k.iter().enumerate() {
                let xx = (x as i32 + i as i32 - r).clamp(0, w as i32 - 1) as usize;
                acc += kv * v[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, kv) in k.iter().enumerate() {
                let yy = (y as i32 + i as i32 - r).clamp(0, h as i32 - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            v[y * w + x] = acc;
        }
    }
    // Never lighten a repaint pixel: the feather only grows outward.
    for (o, p) in v.iter_mut().zip(mask.pixels()) {
        if p[0] > 0 {
            *o = 1.0;
        }
    }
    v
}

fn prompt_embeddings(
    models: &InpaintModels,
    prompt: &str,
    notes: &mut Vec<String>,
    what: &str,
) -> Tensor<3> {
    let enc = models.tokenizer.encode(prompt);
    if enc.dropped > 0 {
        notes.push(format!(
            "{what} is longer than 77 tokens: the last {} token(s) were dropped",
            enc.dropped
        ));
    }
    models
        .text_encoder
        .forward(clip::ids_tensor(&[enc.ids], &models.device))
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
    if req.steps == 0 || req.steps > models.scheduler_config.num_train_timesteps {
        return Err(InpaintError::Request(format!(
            "--steps must be between 1 and {}",
            models.scheduler_config.num_train_timesteps
        )));
    }
    if !(0.0..=1.0).contains(&req.strength) {
        return Err(InpaintError::Request(format!(
            "--strength {} is outside 0..1",
            req.strength
        )));
    }
    let device = &models.device;
    let (iw, ih) = image.dimensions();
    let mut notes = Vec::new();
    let mask = request_mask(mask, iw, ih, req, &mut notes)?;
    let (rx, ry, rw, rh) = choose_region(req.region, &mask, req.crop_padding)?;
    if (rw, rh) != (iw, ih) {
        notes.push(format!(
            "working on the mask's region {rw}x{rh} at ({rx}, {ry})"
        ));
    }
    // Working image and mask, padded (edge-replicated image, keep-mask) to a multiple of 8.
    let (pw, ph) = (rw.next_multiple_of(8), rh.next_multiple_of(8));
    let work = RgbaImage::from_fn(pw, ph, |x, y| {
        *image.get_pixel(rx + x.min(rw - 1), ry + y.min(rh - 1))
    });
    let work_mask = GrayImage::from_fn(pw, ph, |x, y| {
        if x < rw && y < rh {
            *mask.get_pixel(rx + x, ry + y)
        } else {
            image::Luma([0])
        }
    });
    let (lh, lw) = (ph as usize / 8, pw as usize / 8);
    let img_t = imaging::to_tensor(&work, device);
    let mask_vals: Vec<f32> = work_mask
        .pixels()
        .map(|p| if p[0] > 0 { 1.0 } else { 0.0 })
        .collect();
    let mask_t: Tensor<4> = Tensor::from_data(
        TensorData::new(mask_vals, [1, 1, ph as usize, pw as usize]),
        device,
    );

    // Prompt embeddings: [uncond, cond] with guidance, [cond] without.
    let cfg = req.guidance > 1.0;
    let cond = prompt_embeddings(models, &req.prompt, &mut notes, "the prompt");
    let context = if cfg {
        let uncond = prompt_embeddings(
            models,
            &req.negative_prompt,
            &mut notes,
            "the negative prompt",
        );
        Tensor::cat(vec![uncond, cond], 0)
    } else {
        cond
    };

    // Scheduler and strength.
    let mut sched = Scheduler::new(req.scheduler, models.scheduler_config.clone());
    sched.eta = req.eta;
    sched.set_timesteps(req.steps);
    let n = sched.timesteps.len();
    let init = ((req.steps as f64 * req.strength) as usize).min(req.steps);
    let t_start = (req.steps - init) * sched.order();
    if t_start >= n {
        return Err(InpaintError::Request(format!(
            "--strength {} with {} steps leaves no step to run",
            req.strength, req.steps
        )));
    }
    sched.set_begin_index(t_start);

    let (vae_model, vae_config) = models.vae();
    let sf = vae_config.scaling_factor;
    let nine = models.unet_config.in_channels == 9;
    let strength_max = req.strength >= 1.0;
    progress.update("encode", 0, 1);
    let image_latents =
        (!nine || !strength_max).then(|| vae_model.encode(img_t.clone()).mode() * sf);
    let masked_latents = nine.then(|| {
        let keep = mask_t.clone().neg() + 1.0;
        vae_model.encode(img_t.clone() * keep).mode() * sf
    });
    let mask_latent = downsample_mask(mask_t.clone(), vae_config.scale_factor());
    progress.update("encode", 1, 1);

    let noise = match &req.latents {
        Some(v) => {
            if v.len() != 4 * lh * lw {
                return Err(InpaintError::Request(format!(
                    "--latents holds {} values; this image needs [1, 4, {lh}, {lw}] = {}",
                    v.len(),
                    4 * lh * lw
                )));
            }
            Tensor::from_data(TensorData::new(v.clone(), [1, 4, lh, lw]), device)
        }
        None => gaussian_noise([1, 4, lh, lw], req.seed, device),
    };
    let mut latents = if strength_max {
        noise.clone() * sched.init_noise_sigma()
    } else {
        sched.add_noise(
            image_latents.clone().expect("encoded for strength < 1"),
            noise.clone(),
            t_start,
        )
    };

    let total = n - t_start;
    let batch = if cfg { 2 } else { 1 };
    for (k, i) in (t_start..n).enumerate() {
        if cancel.is_cancelled() {
            return Err(InpaintError::Cancelled);
        }
        let t = sched.timesteps[i];
        let x = if cfg {
            Tensor::cat(vec![latents.clone(), latents.clone()], 0)
        } else {
            latents.clone()
        };
        let mut x = sched.scale_model_input(x);
        if nine {
            let m = mask_latent.clone().repeat_dim(0, batch);
            let ml = masked_latents
                .clone()
                .expect("9-channel")
                .repeat_dim(0, batch);
            x = Tensor::cat(vec![x, m, ml], 1);
        }
        let eps = models.unet.forward(x, &vec![t as f32; batch], &context);
        let eps = if cfg {
            let mut parts = eps.chunk(2, 0);
            let c = parts.pop().expect("two halves");
            let u = parts.pop().expect("two halves");
            u.clone() + (c - u) * req.guidance
        } else {
            eps
        };
        let step_noise = (req.scheduler.is_stochastic() || req.eta > 0.0)
            .then(|| gaussian_noise([1, 4, lh, lw], req.seed.wrapping_add(1 + i as u64), device));
        latents = sched.step(eps, latents, step_noise);
        if !nine {
            let orig = image_latents.clone().expect("encoded for 4-channel UNets");
            let proper = if i + 1 < n {
                sched.add_noise(orig, noise.clone(), i + 1)
            } else {
                orig
            };
            latents = proper * (mask_latent.clone().neg() + 1.0) + latents * mask_latent.clone();
        }
        progress.update("denoise", k + 1, total);
    }
    if cancel.is_cancelled() {
        return Err(InpaintError::Cancelled);
    }

    progress.update("decode", 0, 1);
    let z = latents / sf;
    let condition = vae_config
        .asymmetric
        .then(|| (img_t.clone(), mask_t.clone()));
    let (decoded, tiling) =
        vae_model.decode_within(vae_config, z, condition, models.max_tensor_bytes);
    if let Some(t) = tiling {
        notes.push(format!(
            "decoded in {}x{} latent tiles (overlap {}) to fit the device's largest buffer",
            t.tile, t.tile, t.overlap
        ));
    }
    progress.update("decode", 1, 1);
    let generated = imaging::from_tensor(decoded);

    let image_out = place_back(image, &mask, (rx, ry, rw, rh), &generated, req);
    Ok(InpaintOutput {
        image: image_out,
        notes,
        region: (rx, ry, rw, rh),
    })
}

/// Puts `generated` (the region's result, at least `rw x rh`) into a copy of `image`, keeping
/// alpha; with paste-back, blends through the feathered mask so unmasked pixels stay exact.
fn place_back(
    image: &RgbaImage,
    mask: &GrayImage,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
    generated: &RgbaImage,
    req: &InpaintRequest,
) -> RgbaImage {
    let iw = image.width();
    let soft = req.paste_back.then(|| feather(mask, req.mask_blur));
    let mut out = image.clone();
    for y in 0..rh {
        for x in 0..rw {
            let (gx, gy) = (rx + x, ry + y);
            let g = generated.get_pixel(x, y);
            let src = *image.get_pixel(gx, gy);
            let px = match &soft {
                None => image::Rgba([g[0], g[1], g[2], src[3]]),
                Some(m) => {
                    let a = m[(gy * iw + gx) as usize];
                    if a <= 0.0 {
                        src
                    } else {
                        let mix = |c: usize| {
                            (src[c] as f32 * (1.0 - a) + g[c] as f32 * a)
                                .round()
                                .clamp(0.0, 255.0) as u8
                        };
                        image::Rgba([mix(0), mix(1), mix(2), src[3]])
                    }
                }
            };
            out.put_pixel(gx, gy, px);
        }
    }
    out
}

/// Inpainting without weights (the classical engine): the same request handling (mask size,
/// region, exact size, alpha, paste-back) around [`classical::fill`](crate::classical::fill).
/// In `auto` region mode large images work on a crop around the mask with generous context.
pub fn run_classical(
    image: &RgbaImage,
    mask: &GrayImage,
    req: &InpaintRequest,
) -> Result<InpaintOutput, InpaintError> {
    let (iw, ih) = image.dimensions();
    let mut notes = Vec::new();
    let mask = request_mask(mask, iw, ih, req, &mut notes)?;
    let (bx0, by0, bx1, by1) = bbox(&mask).ok_or_else(|| {
        InpaintError::Request(
            "the mask is empty: nothing to repaint (white = repaint, black = keep)".into(),
        )
    })?;
    let context = req.crop_padding.max((bx1 - bx0).max(by1 - by0)).max(64);
    let mode = match req.region {
        Region::Auto if (iw as u64) * (ih as u64) > 2048 * 2048 => Region::Crop,
        Region::Auto => Region::Full,
        m => m,
    };
    let padding = if mode == Region::Crop {
        context
    } else {
        req.crop_padding
    };
    let (rx, ry, rw, rh) = choose_region(mode, &mask, padding)?;
    if (rw, rh) != (iw, ih) {
        notes.push(format!(
            "working on the mask's region {rw}x{rh} at ({rx}, {ry})"
        ));
    }
    let crop = image::imageops::crop_imm(image, rx, ry, rw, rh).to_image();
    let crop_mask = image::imageops::crop_imm(&mask, rx, ry, rw, rh).to_image();
    let generated = crate::classical::fill(&crop, &crop_mask, crate::classical::Method::Auto);
    let out = place_back(image, &mask, (rx, ry, rw, rh), &generated, req);
    Ok(InpaintOutput {
        image: out,
        notes,
        region: (rx, ry, rw, rh),
    })
}

/// The generation parameters in the text A1111 writes (`parameters` PNG chunk).
pub fn a1111_parameters(
    req: &InpaintRequest,
    models: &InpaintModels,
    width: u32,
    height: u32,
) -> String {
    a1111_parameters_for(req, &models.model_name, width, height)
}

/// [`a1111_parameters`] for a model name ("classical" for the classical engine).
pub fn a1111_parameters_for(
    req: &InpaintRequest,
    model_name: &str,
    width: u32,
    height: u32,
) -> String {
    let mut s = req.prompt.clone();
    if !req.negative_prompt.is_empty() {
        s.push_str(&format!("\nNegative prompt: {}", req.negative_prompt));
    }
    s.push_str(&format!(
        "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {width}x{height}, Model: {}, \
         Denoising strength: {}, Mask blur: {}, Inpaint area: {}, Decoder: {}, Version: clearpaint {}",
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
        env!("CARGO_PKG_VERSION")
    ));
    s
}
