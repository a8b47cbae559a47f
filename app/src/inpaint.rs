//! `clearpaint inpaint`: Stable Diffusion 1.x inpainting with the asymmetric VQGAN decoder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::imaging;
use clearpaint_core::pipelines::inpaint::{
    self, DecoderChoice, InpaintModels, InpaintRequest, Region,
};
use clearpaint_core::progress::CancelToken;
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::weights::SafetensorsFile;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecoderArg {
    Asymmetric,
    Standard,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegionArg {
    Auto,
    Full,
    Crop,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

#[derive(clap::Args, Debug)]
pub struct InpaintArgs {
    /// A diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    /// scheduler/), e.g. stable-diffusion-v1-5/stable-diffusion-inpainting.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The image to edit.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The mask: white = repaint, black = keep (resized to the image if its size differs).
    #[arg(long, value_name = "FILE")]
    pub mask: PathBuf,
    /// Output PNG (written atomically; never replaced without --overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long, default_value = "")]
    pub prompt: String,
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// An AsymmetricAutoencoderKL folder (e.g. cross-attention/asymmetric-autoencoder-kl-x-1-5).
    #[arg(long, value_name = "DIR")]
    pub vae: Option<PathBuf>,
    /// Final decoder: asymmetric (default when --vae is given) or the model's standard VAE.
    #[arg(long, value_enum)]
    pub decoder: Option<DecoderArg>,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Classifier-free guidance scale (1 = off).
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f64,
    /// 1 = repaint from pure noise; lower keeps more of the original under the mask.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f64,
    #[arg(long, default_value = "dpmpp-2m-karras", value_parser = parse_scheduler)]
    pub scheduler: SchedulerKind,
    /// Seed of the initial noise (random when not given; written to the PNG either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Initial noise: a .safetensors file with one tensor `latents` of shape [1, 4, H/8, W/8]
    /// (H, W: the working region padded to a multiple of 8).
    #[arg(long, value_name = "FILE")]
    pub latents: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub region: RegionArg,
    /// Context around the mask in crop mode (pixels).
    #[arg(long, default_value_t = 32)]
    pub crop_padding: u32,
    /// Feather radius of the paste-back mask (pixels).
    #[arg(long, default_value_t = 4)]
    pub mask_blur: u32,
    /// Keep every unmasked pixel of the input exactly.
    #[arg(long, value_enum, default_value = "on")]
    pub paste_back: OnOff,
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_scheduler(s: &str) -> Result<SchedulerKind, String> {
    s.parse()
}

fn read_latents(path: &Path) -> Result<Vec<f32>> {
    let f = SafetensorsFile::open(path)?;
    if f.entry("latents").is_none() {
        bail!("{}: no tensor named 'latents'", path.display());
    }
    Ok(f.read_f32("latents")?)
}

pub fn run(args: &InpaintArgs, choice: DeviceChoice) -> Result<()> {
    if !args.overwrite && args.out.exists() {
        bail!(
            "{}: already exists; pass --overwrite to replace it",
            args.out.display()
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("{}: the output folder does not exist", dir.display());
    }
    let decoder = match (args.decoder, &args.vae) {
        (Some(DecoderArg::Standard), _) | (None, None) => DecoderChoice::Standard,
        _ => DecoderChoice::Asymmetric,
    };
    let loaded = imaging::load(&args.image)?;
    let mask = imaging::load(&args.mask)?;
    let mask = image::DynamicImage::ImageRgba8(mask.rgba).to_luma8();
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 4_294_967_296)
            .unwrap_or(0)
    });

    if !args.model.is_dir() {
        bail!(
            "{}: no such model folder. Inpainting needs a diffusers Stable Diffusion 1.x folder \
             ({}), e.g. stable-diffusion-v1-5/stable-diffusion-inpainting, and for the \
             asymmetric decoder --vae with cross-attention/asymmetric-autoencoder-kl-x-1-5; see \
             weights/README.md",
            args.model.display(),
            inpaint::REQUIRED
        );
    }
    let selected = device::select(choice)?;
    eprintln!(
        "loading {} on {}",
        args.model.display(),
        selected.description
    );
    let models = InpaintModels::load(&args.model, args.vae.as_deref(), decoder, &selected)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let req = InpaintRequest {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        steps: args.steps,
        guidance: args.guidance,
        strength: args.strength,
        scheduler: args.scheduler,
        seed,
        latents,
        region: match args.region {
            RegionArg::Auto => Region::Auto,
            RegionArg::Full => Region::Full,
            RegionArg::Crop => Region::Crop,
        },
        crop_padding: args.crop_padding,
        mask_blur: args.mask_blur,
        paste_back: args.paste_back == OnOff::On,
        decoder,
        eta: 0.0,
    };
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:8} {bar:30} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let cancel = CancelToken::new();
    let result = inpaint::run(&models, &loaded.rgba, &mask, &req, &progress, &cancel);
    bar.finish_and_clear();
    let out = result?;
    for note in &out.notes {
        eprintln!("note: {note}");
    }
    let (w, h) = out.image.dimensions();
    let text = vec![
        ("parameters", inpaint::a1111_parameters(&req, &models, w, h)),
        (
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    imaging::save_png(&args.out, &out.image, loaded.has_alpha, &text)?;
    eprintln!(
        "wrote {} ({w}x{h}, seed {seed}) in {:.1}s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
