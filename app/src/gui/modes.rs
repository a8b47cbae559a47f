//! What Run does in each mode, on the worker thread: load the mode's models, run its
//! pipeline, and return the image, its notes and the A1111-style parameters.

use clearpaint_core::imaging;
use clearpaint_core::pipelines::example::{self, ExampleModels};
use clearpaint_core::pipelines::generate::{self, GenerateRequest};
use clearpaint_core::pipelines::inpaint::{self, InpaintError, InpaintModels, InpaintRequest};
use clearpaint_core::progress::{CancelToken, Progress};
use image::RgbaImage;

use super::app::{Mode, Settings};
use super::jobs::{Failure, Input, ModelPaths};

type Done = (RgbaImage, Vec<String>, String);

/// Runs `settings.mode` with `req` (the panel's request, decoder settled).
pub(super) fn run(
    settings: &Settings,
    req: &InpaintRequest,
    paths: &ModelPaths,
    input: &Input<'_>,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Done, Failure> {
    if settings.mode == Mode::Example {
        return by_example(settings, req, paths, input, progress, cancel);
    }
    let models = InpaintModels::load(
        &paths.model,
        paths.vae.as_deref(),
        req.decoder,
        &paths.selected,
    )
    .map_err(|e| load_failure(paths, e, inpaint::REQUIRED))?;
    let name = models.sd.model_name.clone();
    let (image, notes, params) = match settings.mode {
        Mode::Generate => {
            let g = GenerateRequest {
                base: req.clone(),
                width: settings.width / 8 * 8,
                height: settings.height / 8 * 8,
            };
            let out = generate::run(&models, &g, progress, cancel).map_err(failure)?;
            let params = generate::a1111_parameters(req, &name, g.width, g.height, false);
            (out.image, out.notes, params)
        }
        // Edit with a painted mask reworks only that part (masked image-to-image).
        Mode::Edit if !input.mask.pixels().any(|p| p[0] > 0) => {
            let out =
                generate::img2img(&models, input.image, req, progress, cancel).map_err(failure)?;
            let (w, h) = out.image.dimensions();
            let params = generate::a1111_parameters(req, &name, w, h, true);
            (out.image, out.notes, params)
        }
        _ => {
            let out = inpaint::run(&models, input.image, input.mask, req, progress, cancel)
                .map_err(failure)?;
            let (w, h) = out.work_size;
            let params = inpaint::a1111_parameters(req, &models, w, h);
            (out.image, out.notes, params)
        }
    };
    Ok((image, notes, params))
}

/// Paint-by-Example with the exemplar the panel names.
fn by_example(
    settings: &Settings,
    req: &InpaintRequest,
    paths: &ModelPaths,
    input: &Input<'_>,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Done, Failure> {
    let path = std::path::Path::new(settings.example_path.trim());
    if settings.example_path.trim().is_empty() {
        return Err(Failure::Error(
            "Pick an exemplar image first (By example repaints the mask after it).".into(),
        ));
    }
    let exemplar = imaging::load(path).map_err(|e| Failure::Error(e.to_string()))?;
    let models = ExampleModels::load(
        &paths.model,
        paths.vae.as_deref(),
        req.decoder,
        &paths.selected,
    )
    .map_err(|e| load_failure(paths, e, example::REQUIRED))?;
    let out = example::run(
        &models,
        input.image,
        input.mask,
        &exemplar.rgba,
        req,
        progress,
        cancel,
    )
    .map_err(failure)?;
    let (w, h) = out.work_size;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let params = example::a1111_parameters(req, &models.sd.model_name, &name, w, h);
    Ok((out.image, out.notes, params))
}

fn failure(e: InpaintError) -> Failure {
    match e {
        InpaintError::Cancelled => Failure::Cancelled,
        e => Failure::Error(e.to_string()),
    }
}

/// A load error, or what the folder needs when it is not there.
fn load_failure(paths: &ModelPaths, e: InpaintError, required: &str) -> Failure {
    if paths.model.exists() {
        return Failure::Error(e.to_string());
    }
    Failure::NoModel(format!(
        "{}: no such model folder or file; it needs a diffusers folder with {required} or a \
         single-file SD 1.x checkpoint (see weights/README.md)",
        paths.model.display()
    ))
}
