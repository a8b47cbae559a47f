//! The models of a Stable Diffusion pipeline folder, loaded once for many runs: what every
//! pipeline shares ([`SdModels`]: the UNet, the scheduler's config, the VAE or the
//! asymmetric VAE) and the text side of the text-conditioned ones ([`InpaintModels`]).
//! Paint-by-Example's image side is in [`example`](super::example).

use std::path::Path;

use burn::tensor::Device;

use super::inpaint::{DecoderChoice, InpaintError};
use crate::device::Selected;
use crate::models::clip::{self, ClipTextModel};
use crate::models::ldm;
use crate::models::tokenizer::ClipTokenizer;
use crate::models::unet::{self, UNet2DConditionModel, UNetConfig};
use crate::models::vae::{self, AutoencoderKL, VaeConfig};
use crate::precision::Model;
use crate::schedulers::SchedulerConfig;
use crate::weights::{SafetensorsFile, read_config};

/// The denoiser and the decoder side of a pipeline folder.
pub struct SdModels {
    pub unet: UNet2DConditionModel,
    pub unet_config: UNetConfig,
    pub scheduler_config: SchedulerConfig,
    /// The folder's VAE (`vae/`), when the standard decoder is used.
    pub vae: Option<(AutoencoderKL, VaeConfig)>,
    /// The asymmetric VAE (`--vae`), when given.
    pub asym_vae: Option<(AutoencoderKL, VaeConfig)>,
    pub device: Device,
    pub max_tensor_bytes: u64,
    pub model_name: String,
}

/// A text-conditioned pipeline (inpainting, text-to-image, image-to-image).
pub struct InpaintModels {
    pub sd: SdModels,
    pub text_encoder: ClipTextModel,
    pub tokenizer: ClipTokenizer,
}

/// The files a pipeline folder needs, for error messages.
pub const REQUIRED: &str = "unet/ (config.json + diffusion_pytorch_model[.fp16].safetensors), \
    vae/, text_encoder/ (config.json + model[.fp16].safetensors); tokenizer/ and scheduler/ are \
    optional";

impl SdModels {
    pub(super) fn vae(&self) -> &(AutoencoderKL, VaeConfig) {
        self.asym_vae
            .as_ref()
            .or(self.vae.as_ref())
            .expect("a VAE is always loaded")
    }

    /// The UNet, scheduler and VAE of `model_dir` (a folder, or the single-file `checkpoint`
    /// opened from it); only the VAE the chosen decoder needs is loaded.
    pub(super) fn load(
        model_dir: &Path,
        checkpoint: Option<&SafetensorsFile>,
        asym_vae_dir: Option<&Path>,
        decoder: DecoderChoice,
        selected: &Selected,
    ) -> Result<Self, InpaintError> {
        let device = &selected.device;
        let unet_dtype = selected.half.for_model(Model::Unet);
        let (u, scheduler_config) = match checkpoint {
            Some(file) => (
                ldm::load_unet_as(file, device, unet_dtype)?,
                SchedulerConfig::sd15(),
            ),
            None => (
                unet::load_folder_as(model_dir.join("unet"), device, unet_dtype)?,
                scheduler_config(model_dir)?,
            ),
        };
        // The decoders run in half precision where the run has it (see `crate::precision`).
        let dtype = selected.half.for_model(Model::VaeDecoder);
        let at_precision = |(m, c): (AutoencoderKL, VaeConfig)| (m.with_decoder_dtype(dtype), c);
        let asym_vae = load_asymmetric(decoder, asym_vae_dir, device)?.map(at_precision);
        let vae = if asym_vae.is_none() {
            let v = match checkpoint {
                Some(file) => ldm::load_vae(file, device)?,
                None => vae::load_folder(model_dir.join("vae"), device)?,
            };
            Some(at_precision((v.model, v.config)))
        } else {
            None
        };
        Ok(SdModels {
            unet: u.model,
            unet_config: u.config,
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
}

impl InpaintModels {
    /// Loads `model_dir` (a diffusers pipeline folder or a single-file checkpoint) and
    /// optionally an asymmetric VAE folder.
    pub fn load(
        model_dir: &Path,
        asym_vae_dir: Option<&Path>,
        decoder: DecoderChoice,
        selected: &Selected,
    ) -> Result<Self, InpaintError> {
        let device = &selected.device;
        let checkpoint = open_model_path(model_dir, "text_encoder")?;
        let text_dtype = selected.half.for_model(Model::TextEncoder);
        let (c, tokenizer) = match &checkpoint {
            Some(file) => (
                ldm::load_text_encoder_as(file, device, text_dtype)?,
                ClipTokenizer::bundled(),
            ),
            None => (
                clip::load_folder_as(model_dir.join("text_encoder"), device, text_dtype)?,
                ClipTokenizer::from_folder_or_bundled(Some(&model_dir.join("tokenizer")))?,
            ),
        };
        let sd = SdModels::load(
            model_dir,
            checkpoint.as_ref(),
            asym_vae_dir,
            decoder,
            selected,
        )?;
        check_pair(model_dir, &tokenizer, &c.config, &sd.unet_config)?;
        Ok(InpaintModels {
            sd,
            text_encoder: c.model,
            tokenizer,
        })
    }
}

/// `scheduler/scheduler_config.json`, or SD 1.5's when the folder has none.
fn scheduler_config(model_dir: &Path) -> Result<SchedulerConfig, InpaintError> {
    let path = model_dir.join("scheduler").join("scheduler_config.json");
    if !path.is_file() {
        return Ok(SchedulerConfig::sd15());
    }
    let cfg: SchedulerConfig = read_config(&path)?;
    cfg.validate()
        .map_err(|problem| InpaintError::Model { path, problem })?;
    Ok(cfg)
}

/// `model_dir` as a single-file checkpoint (`Some`) or a diffusers folder with `unet/` and
/// `encoder/` (`None`), or why it is neither.
pub(super) fn open_model_path(
    model_dir: &Path,
    encoder: &str,
) -> Result<Option<SafetensorsFile>, InpaintError> {
    let problem = |problem: String| InpaintError::Model {
        path: model_dir.to_path_buf(),
        problem,
    };
    let single_file = model_dir.is_file();
    if !single_file && !model_dir.is_dir() {
        return Err(problem(format!(
            "no such file or folder; expected a diffusers pipeline folder with {REQUIRED}, or \
             a single-file SD 1.x checkpoint (.safetensors)"
        )));
    }
    if single_file {
        if encoder != "text_encoder" {
            return Err(problem(
                "a single file; Paint-by-Example needs its diffusers folder (image_encoder/, \
                 unet/, vae/, as Fantasy-Studio/Paint-by-Example ships it)"
                    .into(),
            ));
        }
        let file = SafetensorsFile::open(model_dir)?;
        if !ldm::is_ldm_checkpoint(&file) {
            return Err(problem(
                "not a single-file Stable Diffusion checkpoint (no model.diffusion_model.* \
                 tensors); give a diffusers pipeline folder or an SD 1.x .safetensors checkpoint"
                    .into(),
            ));
        }
        return Ok(Some(file));
    }
    for sub in ["unet", encoder] {
        if model_dir.join(sub).is_dir() {
            continue;
        }
        return Err(problem(match sub {
            "text_encoder" if model_dir.join("image_encoder").is_dir() => {
                "a Paint-by-Example model (image_encoder/, no text_encoder/): use it with \
                 --example REF.png"
                    .into()
            }
            "image_encoder" => {
                "no image_encoder/ folder: --example needs a Paint-by-Example pipeline folder \
                 (image_encoder/, unet/, vae/; Fantasy-Studio/Paint-by-Example), not a \
                 text-conditioned one"
                    .into()
            }
            _ => format!("no {sub}/ folder; a diffusers pipeline folder has {REQUIRED}"),
        }));
    }
    Ok(None)
}
/// The asymmetric VAE for the asymmetric decoder (which needs one), `None` for the standard.
fn load_asymmetric(
    decoder: DecoderChoice,
    asym_vae_dir: Option<&Path>,
    device: &Device,
) -> Result<Option<(AutoencoderKL, VaeConfig)>, InpaintError> {
    Ok(match (decoder, asym_vae_dir) {
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
    })
}

/// The tokenizer, text encoder and UNet of `model_dir` belong together.
fn check_pair(
    model_dir: &Path,
    tokenizer: &ClipTokenizer,
    text: &clip::ClipTextConfig,
    unet: &UNetConfig,
) -> Result<(), InpaintError> {
    if tokenizer.vocab_len() > text.vocab_size {
        return Err(InpaintError::Model {
            path: model_dir.to_path_buf(),
            problem: format!(
                "the tokenizer has {} tokens but the text encoder embeds only {}; the \
                 tokenizer does not belong to this text encoder",
                tokenizer.vocab_len(),
                text.vocab_size
            ),
        });
    }
    if unet.cross_attention_dim != text.hidden_size {
        return Err(InpaintError::Model {
            path: model_dir.to_path_buf(),
            problem: format!(
                "the UNet attends to {}-wide text but the text encoder gives {}",
                unet.cross_attention_dim, text.hidden_size
            ),
        });
    }
    Ok(())
}
