//! `clearpaint generate`: Stable Diffusion 1.x text-to-image, decoded by the model's VAE or the
//! asymmetric decoder without its condition (`--vae`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::imaging;
use clearpaint_core::pipelines::generate::{self, GenerateRequest};
use clearpaint_core::pipelines::inpaint;
use clearpaint_core::progress::CancelToken;
use indicatif::ProgressBar;

use crate::inpaint::{SdOptions, random_seed, read_latents, step_bar};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Output PNG (written atomically; never replaced without --overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Width in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Height in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Initial noise: a .safetensors file with one tensor `latents` [1, 4, H/8, W/8].
    #[arg(long, value_name = "FILE")]
    pub latents: Option<PathBuf>,
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub sd: SdOptions,
}

#[derive(clap::Args, Debug)]
pub struct Img2ImgArgs {
    /// The image to start from (worked on at its size rounded down to a multiple of 8).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Output PNG (written atomically; never replaced without --overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only rework the white part of this mask (black = keep): diffusers' inpainting at the
    /// strength, decoded by the asymmetric decoder conditioned on the unmasked pixels; the rest
    /// of the image is kept exactly (feathered over 4 pixels).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// binary, or soft: the mask's grey levels are per-pixel strengths (differential
    /// diffusion; a pixel at 0.3 changes less than one at 1.0, black never).
    #[arg(long, default_value = "binary", value_parser = crate::inpaint::parse_mask_mode)]
    pub mask_mode: clearpaint_core::pipelines::inpaint::MaskMode,
    /// How much to change: 1 = from pure noise, lower keeps more of the image.
    #[arg(long, default_value_t = 0.75)]
    pub strength: f64,
    /// The noise added to the image's latents: a .safetensors tensor `latents` [1, 4, H/8, W/8].
    #[arg(long, value_name = "FILE")]
    pub latents: Option<PathBuf>,
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub sd: SdOptions,
}

/// An output path that may be written: not there (or --overwrite), in a folder that exists.
fn check_out(out: &std::path::Path, overwrite: bool) -> Result<()> {
    if !overwrite && out.exists() {
        bail!(
            "{}: already exists; pass --overwrite to replace it",
            out.display()
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("{}: the output folder does not exist", dir.display());
    }
    Ok(())
}

/// Runs `f` with a step progress bar.
fn with_bar<T>(steps: usize, f: impl FnOnce(&dyn clearpaint_core::progress::Progress) -> T) -> T {
    let bar = ProgressBar::new(steps as u64);
    step_bar(&bar);
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let r = f(&progress);
    bar.finish_and_clear();
    r
}

pub fn run_img2img(args: &Img2ImgArgs, choice: DeviceChoice) -> Result<()> {
    check_out(&args.out, args.overwrite)?;
    let loaded = imaging::load(&args.image)?;
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let seed = args.sd.seed.unwrap_or_else(random_seed);
    let mut req = args.sd.request(seed, latents);
    req.strength = args.strength;
    req.mask_mode = args.mask_mode;
    req.validate().map_err(anyhow::Error::msg)?;
    let mask = match &args.mask {
        Some(path) => {
            let m = imaging::load(path)?;
            Some(image::DynamicImage::ImageRgba8(m.rgba).to_luma8())
        }
        None => None,
    };
    let models = args.sd.load(choice)?;
    let start = Instant::now();
    let Some(mask) = mask else {
        let out = with_bar(req.steps, |p| {
            generate::img2img(&models, &loaded.rgba, &req, p, &CancelToken::new())
        })?;
        let (w, h) = out.image.dimensions();
        let params = generate::a1111_parameters(&req, &models.sd.model_name, w, h, true);
        return finish(&args.out, &out, false, params, seed, start);
    };
    let out = with_bar(req.steps, |p| {
        inpaint::run(&models, &loaded.rgba, &mask, &req, p, &CancelToken::new())
    })?;
    let (w, h) = out.work_size;
    let params = inpaint::a1111_parameters(&req, &models, w, h);
    let out = generate::GenerateOutput {
        image: out.image,
        notes: out.notes,
    };
    finish(&args.out, &out, loaded.has_alpha, params, seed, start)
}

/// Prints the notes, writes the PNG with its parameters and says what was written.
fn finish(
    path: &std::path::Path,
    out: &generate::GenerateOutput,
    alpha: bool,
    params: String,
    seed: u64,
    start: Instant,
) -> Result<()> {
    for note in &out.notes {
        eprintln!("note: {note}");
    }
    let text = [
        ("parameters", params),
        (
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    imaging::save_png(path, &out.image, alpha, &text)?;
    let (w, h) = out.image.dimensions();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({w}x{h}, seed {seed}) in {secs:.1}s",
        path.display()
    );
    Ok(())
}

pub fn run(args: &GenerateArgs, choice: DeviceChoice) -> Result<()> {
    check_out(&args.out, args.overwrite)?;
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let seed = args.sd.seed.unwrap_or_else(random_seed);
    let req = GenerateRequest {
        base: args.sd.request(seed, latents),
        width: args.width,
        height: args.height,
    };
    req.validate().map_err(anyhow::Error::msg)?;
    let models = args.sd.load(choice)?;
    let start = Instant::now();
    let out = with_bar(req.base.steps, |p| {
        generate::run(&models, &req, p, &CancelToken::new())
    })?;
    let params = generate::a1111_parameters(
        &req.base,
        &models.sd.model_name,
        args.width,
        args.height,
        false,
    );
    finish(&args.out, &out, false, params, seed, start)
}
