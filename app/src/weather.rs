//! `clearpaint weather`: night / rainy-night → day with AU-GAN, over files and folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::imaging;
use clearpaint_core::models::augan::{AuganGenerator, Direction};
use clearpaint_core::pipelines::weather::{self, DEFAULT_SIZE, WeatherRequest, WorkSize};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct WeatherArgs {
    /// AU-GAN weights (.safetensors, converted with weights/convert_augan_tf.py).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Images, or folders of images (not recursive).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created if missing). Outputs are named after the inputs: NAME.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Working size HxW of the network (multiples of 4); images are resized to it and back.
    #[arg(long, value_name = "HxW", default_value_t = DEFAULT_SIZE)]
    pub size: WorkSize,
    /// night-to-day (generatorA2B, with its uncertainty map) or day-to-night (generatorB2A,
    /// when the file holds it: to add night to a training set).
    #[arg(long, default_value = "night-to-day", value_parser = parse_direction)]
    pub direction: Direction,
    /// Also write the uncertainty map (plasma colormap, σ 0..3) as NAME_uncertainty.png.
    #[arg(long)]
    pub uncertainty: bool,
    /// Also write the uncertainty map blended over the output as NAME_overlay.png.
    #[arg(long)]
    pub overlay: bool,
    /// Replace existing output files (default: refuse, so nothing is lost).
    #[arg(long)]
    pub overwrite: bool,
}

/// Expands folders into their image files (sorted), keeps files as given.
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && imaging::is_image_path(f))
                .collect();
            if found.is_empty() {
                bail!("{}: no images in this folder", p.display());
            }
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(out)
}

/// The output files of one input.
struct Outputs {
    image: PathBuf,
    sigma: Option<PathBuf>,
    overlay: Option<PathBuf>,
}

fn plan(inputs: &[PathBuf], args: &WeatherArgs) -> Result<Vec<Outputs>> {
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    let mut plans = Vec::new();
    for input in inputs {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "image".into());
        let o = Outputs {
            image: args.out.join(format!("{stem}.png")),
            sigma: args
                .uncertainty
                .then(|| args.out.join(format!("{stem}_uncertainty.png"))),
            overlay: args
                .overlay
                .then(|| args.out.join(format!("{stem}_overlay.png"))),
        };
        for path in [Some(&o.image), o.sigma.as_ref(), o.overlay.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(other) = seen.insert(path.clone(), input) {
                bail!(
                    "{} and {} would both be written to {}; rename one or run them separately",
                    other.display(),
                    input.display(),
                    path.display()
                );
            }
            if !args.overwrite && path.exists() {
                bail!(
                    "{}: already exists; pass --overwrite to replace it",
                    path.display()
                );
            }
        }
        plans.push(o);
    }
    Ok(plans)
}

pub fn run(args: &WeatherArgs, choice: DeviceChoice) -> Result<()> {
    let inputs = collect_inputs(&args.inputs)?;
    let plans = plan(&inputs, args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;

    let selected = clearpaint::placement::select(choice)?;
    let (model, _) = AuganGenerator::load_direction(&args.model, args.direction, &selected.device)?;
    let want_sigma = args.uncertainty || args.overlay;
    if want_sigma && args.direction == Direction::DayToNight {
        bail!("--uncertainty / --overlay: only the night-to-day generator has an uncertainty head");
    }
    if want_sigma && !model.has_uncertainty() {
        bail!(
            "{}: this AU-GAN file has no uncertainty head, so --uncertainty / --overlay are \
             unavailable",
            args.model.display()
        );
    }
    eprintln!(
        "AU-GAN {} on {} at {}, {} image(s)",
        args.direction.name(),
        selected.description,
        args.size,
        inputs.len()
    );
    let request = WeatherRequest {
        size: args.size,
        uncertainty: want_sigma,
    };
    let model_name = args
        .model
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let text = |kind: &str, input: &Path| {
        vec![
            (
                "Software",
                format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "clearpaint:operation",
                format!("weather night-to-day ({kind})"),
            ),
            ("clearpaint:model", format!("AU-GAN {model_name}")),
            ("clearpaint:size", args.size.to_string()),
            (
                "clearpaint:source",
                input
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default(),
            ),
        ]
    };

    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut failed = 0usize;
    for (input, out) in inputs.iter().zip(&plans) {
        bar.set_message(
            input
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let result = (|| -> Result<()> {
            let loaded = imaging::load(input)?;
            let result = weather::run(&model, &selected.device, &loaded.rgba, &request)?;
            imaging::save_png(
                &out.image,
                &result.image,
                loaded.has_alpha,
                &text("image", input),
            )?;
            if let (Some(path), Some(img)) = (&out.sigma, result.sigma_image()) {
                imaging::save_png(path, &img, false, &text("uncertainty", input))?;
            }
            if let (Some(path), Some(img)) = (&out.overlay, result.overlay()) {
                imaging::save_png(path, &img, loaded.has_alpha, &text("overlay", input))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            bar.suspend(|| eprintln!("error: {e:#}"));
            failed += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let done = inputs.len() - failed;
    eprintln!(
        "{done} of {} image(s) written to {}",
        inputs.len(),
        args.out.display()
    );
    if failed > 0 {
        bail!("{failed} image(s) failed");
    }
    Ok(())
}

pub fn parse_direction(s: &str) -> Result<Direction, String> {
    s.parse()
}
