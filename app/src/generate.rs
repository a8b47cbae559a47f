//! `clearpaint generate`: Stable Diffusion 1.x text-to-image, decoded by the model's VAE or the
//! asymmetric decoder without its condition (`--vae`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::imaging;
use clearpaint_core::pipelines::generate::{self, GenerateRequest};
use clearpaint_core::pipelines::inpaint::InpaintRequest;
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

/// A1111's txt2img `parameters` text.
fn parameters(req: &InpaintRequest, model: &str, w: u32, h: u32) -> String {
    let mut s = req.prompt.clone();
    if !req.negative_prompt.is_empty() {
        s.push_str(&format!("\nNegative prompt: {}", req.negative_prompt));
    }
    s.push_str(&format!(
        "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {w}x{h}, Model: {model}, Version: clearpaint {}",
        req.steps,
        req.scheduler.a1111_name(),
        req.guidance,
        req.seed,
        env!("CARGO_PKG_VERSION")
    ));
    s
}

pub fn run(args: &GenerateArgs, choice: DeviceChoice) -> Result<()> {
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
    let bar = ProgressBar::new(req.base.steps as u64);
    step_bar(&bar);
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = generate::run(&models, &req, &progress, &CancelToken::new());
    bar.finish_and_clear();
    let out = result?;
    for note in &out.notes {
        eprintln!("note: {note}");
    }
    let text = [
        (
            "parameters",
            parameters(&req.base, &models.model_name, args.width, args.height),
        ),
        (
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    imaging::save_png(&args.out, &out.image, false, &text)?;
    eprintln!(
        "wrote {} ({}x{}, seed {seed}) in {:.1}s",
        args.out.display(),
        args.width,
        args.height,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
