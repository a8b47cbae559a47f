//! Exemplar-based local editing, as diffusers' `PaintByExamplePipeline` computes it: the
//! masked region is repainted after an exemplar image instead of a prompt. The exemplar is
//! preprocessed as the folder's `feature_extractor/` says (CLIP's 224-pixel crop and
//! normalisation), embedded by the image encoder into a one-token context (the learned
//! `uncond_vector` is the unconditional one), and the 9-channel UNet takes the masked image's
//! latents and the *keep* mask (Paint-by-Example inverts the mask) in that order. The rest is
//! the masked body the inpaint pipeline runs; the final decode is the asymmetric decoder
//! conditioned on the unmasked image and the repaint mask, as for inpainting (diffusers' own
//! pipeline decodes with its VAE, which `--decoder standard` reproduces).

use std::path::Path;

use burn::tensor::Tensor;
use image::{GrayImage, RgbaImage};

use super::inpaint::{
    DecoderChoice, InpaintError, InpaintOutput, InpaintRequest, Layout, MaskedRun, SdModels,
    check_request, mask_and_region,
};
use super::models::open_model_path;
use crate::device::Selected;
use crate::models::clip_image::ClipImageProcessor;
use crate::models::paint_by_example::{self, PaintByExampleImageEncoder};
use crate::progress::{CancelToken, Progress};
use crate::weights::read_config;

/// The files a Paint-by-Example folder needs, for error messages.
pub const REQUIRED: &str = "image_encoder/ (config.json + model.safetensors), unet/ (9 input \
    channels), vae/; scheduler/ and feature_extractor/ are optional";

/// A Paint-by-Example pipeline folder's models.
pub struct ExampleModels {
    pub sd: SdModels,
    pub image_encoder: PaintByExampleImageEncoder,
    pub processor: ClipImageProcessor,
}

impl ExampleModels {
    /// Loads a diffusers Paint-by-Example folder (as `Fantasy-Studio/Paint-by-Example`) and
    /// optionally an asymmetric VAE folder.
    pub fn load(
        model_dir: &Path,
        asym_vae_dir: Option<&Path>,
        decoder: DecoderChoice,
        selected: &Selected,
    ) -> Result<Self, InpaintError> {
        open_model_path(model_dir, "image_encoder")?;
        let enc = paint_by_example::load_folder(model_dir.join("image_encoder"), &selected.device)?;
        let processor = processor(model_dir, enc.config.image_size)?;
        let sd = SdModels::load(model_dir, None, asym_vae_dir, decoder, selected)?;
        let problem = |problem: String| InpaintError::Model {
            path: model_dir.join("unet"),
            problem,
        };
        if sd.unet_config.in_channels != 9 {
            return Err(problem(format!(
                "the UNet takes {} input channels; Paint-by-Example's takes 9 (latents, \
                 masked-image latents, mask)",
                sd.unet_config.in_channels
            )));
        }
        let width = enc.model.projection_dim();
        if sd.unet_config.cross_attention_dim != width {
            return Err(problem(format!(
                "the UNet attends to {}-wide context but the image encoder gives {width}",
                sd.unet_config.cross_attention_dim
            )));
        }
        Ok(ExampleModels {
            sd,
            image_encoder: enc.model,
            processor,
        })
    }

    /// The UNet's context for `example`: `[uncond, embedding]` with guidance, else the
    /// embedding alone.
    pub fn context(&self, example: &RgbaImage, guided: bool) -> Tensor<3> {
        let pixels = self.processor.preprocess(example, &self.sd.device);
        let emb = self.image_encoder.forward(pixels);
        if guided {
            Tensor::cat(vec![self.image_encoder.uncond(), emb], 0)
        } else {
            emb
        }
    }
}

/// `feature_extractor/preprocessor_config.json`, or CLIP's defaults when there is none.
fn processor(model_dir: &Path, side: usize) -> Result<ClipImageProcessor, InpaintError> {
    let path = model_dir
        .join("feature_extractor")
        .join("preprocessor_config.json");
    let p = if path.is_file() {
        read_config(&path)?
    } else {
        ClipImageProcessor::default()
    };
    p.validate(side)
        .map_err(|problem| InpaintError::Model { path, problem })?;
    Ok(p)
}

/// Repaints the white part of `mask` in `image` after `example`. The request's prompts and
/// LoRAs do not apply (a note says so when they are given).
pub fn run(
    models: &ExampleModels,
    image: &RgbaImage,
    mask: &GrayImage,
    example: &RgbaImage,
    req: &InpaintRequest,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<InpaintOutput, InpaintError> {
    check_request(req, models.sd.scheduler_config.num_train_timesteps)?;
    let mut notes = Vec::new();
    if !req.prompt.trim().is_empty() || !req.negative_prompt.trim().is_empty() {
        notes.push("the prompt is not used: Paint-by-Example follows the exemplar".into());
    }
    if !req.loras.is_empty() {
        notes.push("LoRAs are not applied to Paint-by-Example (they are made for text)".into());
    }
    let (mask, rect) = mask_and_region(req, image, mask, &mut notes)?;
    progress.update("exemplar", 0, 1);
    let context = models.context(example, req.guidance > 1.0);
    progress.update("exemplar", 1, 1);
    let run = MaskedRun {
        sd: &models.sd,
        unet: &models.sd.unet,
        context: &context,
        layout: Layout::Example,
    };
    run.run(image, &mask, rect, req, notes, progress, cancel)
}

/// The generation parameters as A1111 writes them (`parameters` PNG chunk): no prompt, and
/// the exemplar's file name as `Exemplar`.
pub fn a1111_parameters(
    req: &InpaintRequest,
    model_name: &str,
    exemplar: &str,
    width: u32,
    height: u32,
) -> String {
    let r = InpaintRequest {
        prompt: String::new(),
        negative_prompt: String::new(),
        loras: Vec::new(),
        ..req.clone()
    };
    let mut s = super::inpaint::a1111_parameters_for(&r, model_name, width, height);
    let exemplar: String = exemplar
        .chars()
        .map(|c| {
            if matches!(c, ',' | '\n' | '"') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if let Some(at) = s.rfind(", Version: clearpaint") {
        s.insert_str(at, &format!(", Exemplar: {exemplar}"));
    }
    s
}
