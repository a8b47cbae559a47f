//! `clearpaint batch inpaint` / `clearpaint batch weather`: folders in, folders out;
//! resumable, shardable, never a partial file.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clearpaint_core::batch::{self, MaskSource, Report, Shard};
use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::imaging;
use clearpaint_core::models::augan::{AuganGenerator, Direction};
use clearpaint_core::pipelines::weather::{self, DEFAULT_SIZE, WeatherRequest, WorkSize};
use clearpaint_core::shard::{self, ShardSpec};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::inpaint::{InpaintOptions, random_seed, run_one, step_bar};

#[derive(clap::Subcommand, Debug)]
pub enum BatchCommand {
    /// Inpaint every image of a folder with its mask.
    Inpaint(Box<BatchInpaintArgs>),
    /// Translate every image of a folder from night to day.
    Weather(BatchWeatherArgs),
    /// Text-to-image for every prompt of a file (one a line).
    Generate(Box<BatchGenerateArgs>),
}

#[derive(clap::Args, Debug)]
pub struct BatchGenerateArgs {
    /// A text file with one prompt a line (blank lines and `#` comments skipped); line N
    /// writes `N.png` (five digits: 00012.png), or `N-K.png` with --images-per-prompt.
    #[arg(long, value_name = "FILE")]
    pub prompts: PathBuf,
    /// Images for each prompt (each with its own seed).
    #[arg(long, default_value_t = 1)]
    pub images_per_prompt: usize,
    /// Width in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Height in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub sd: crate::inpaint::SdOptions,
}

/// Options every batch shares.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Output folder (created; subfolders mirrored with --recursive).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also process subfolders.
    #[arg(long)]
    pub recursive: bool,
    /// Redo images whose output exists (default: skip them, so a re-run resumes).
    #[arg(long)]
    pub overwrite: bool,
    /// Write the summary (done / skipped / failed with reasons) as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Process only this task's share of the files: `I/N` (0-based, 0 <= I < N), or `env`:
    /// the index and count from the array job that started it (Slurm, Kubernetes Indexed
    /// Job, AWS Batch, Cloud Run jobs, Cloud Batch). Files go to shards by a fixed hash of
    /// their relative path, the same on every machine.
    #[arg(long, value_name = "I/N|env")]
    pub shard: Option<ShardSpec>,
    /// With `--shard env`: the number of tasks, where the engine does not expose it
    /// (Kubernetes: the job's completions).
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
}

impl Common {
    /// This task's shard: `--shard I/N`, or read from the engine's environment (saying which).
    pub fn shard(&self) -> Result<Option<Shard>> {
        if self.shards.is_some() && self.shard != Some(ShardSpec::Env) {
            bail!("--shards N goes with --shard env (with --shard I/N the count is N)");
        }
        match self.shard {
            None => Ok(None),
            Some(ShardSpec::Explicit(s)) => Ok(Some(s)),
            Some(ShardSpec::Env) => {
                let (s, note) = shard::from_env(|k| std::env::var(k).ok(), self.shards)
                    .map_err(anyhow::Error::msg)?;
                eprintln!("note: {note}");
                Ok(Some(s))
            }
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BatchInpaintArgs {
    /// Folder of images (png, jpg, jpeg, webp, bmp, tif, tiff).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// A folder of masks matched by file stem (`photo.jpg` <-> `photo.png` or
    /// `photo_mask.png`), or one mask file for every image.
    #[arg(long, value_name = "DIR|FILE")]
    pub masks: PathBuf,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub opts: InpaintOptions,
}

#[derive(clap::Args, Debug)]
pub struct BatchWeatherArgs {
    /// AU-GAN weights (.safetensors, converted with weights/convert_augan_tf.py).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Folder of images.
    #[arg(long, value_name = "DIR")]
    pub input: PathBuf,
    /// night-to-day (default) or day-to-night (when the file holds generatorB2A).
    #[arg(long, default_value = "night-to-day", value_parser = crate::weather::parse_direction)]
    pub direction: Direction,
    /// Also write NAME_uncertainty.png (night-to-day only).
    #[arg(long)]
    pub uncertainty: bool,
    /// Working size HxW (multiples of 4).
    #[arg(long, value_name = "HxW", default_value_t = DEFAULT_SIZE)]
    pub size: WorkSize,
    #[command(flatten)]
    pub common: Common,
}

/// The files of this run: (relative path, outputs); those whose outputs exist are skipped
/// (unless --overwrite) and recorded in the report.
fn plan(
    input: &Path,
    common: &Common,
    suffixes: &[&str],
    report: &mut Report,
) -> Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    batch::check_out_not_inside(input, &common.out)?;
    let stale = batch::remove_stale_temp_files(&common.out);
    if stale > 0 {
        eprintln!("removed {stale} temporary file(s) left by an interrupted run");
    }
    let mut files = batch::list_images(input, common.recursive)?;
    if files.is_empty() {
        bail!(
            "{}: no images (png, jpg, jpeg, webp, bmp, tif, tiff)",
            input.display()
        );
    }
    if let Some(shard) = common.shard()? {
        files.retain(|f| shard.contains(f));
    }
    let mut todo = Vec::new();
    for rel in files {
        let outs: Vec<PathBuf> = suffixes
            .iter()
            .map(|s| batch::output_for(&common.out, &rel, s))
            .collect();
        if !common.overwrite && outs.iter().all(|o| o.exists()) {
            report.skip(&rel, "output exists (use --overwrite to redo)");
            continue;
        }
        todo.push((rel, outs));
    }
    Ok(todo)
}

fn files_bar(multi: &MultiProgress, n: usize) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(n as u64));
    bar.set_style(
        ProgressStyle::with_template("files    {bar:30} {pos}/{len} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Records one file's outcome; a failure is printed above the progress bars.
fn record(report: &mut Report, multi: &MultiProgress, rel: &Path, result: Result<()>) {
    match result {
        Ok(()) => report.done.push(batch::portable(rel)),
        Err(e) => {
            multi.suspend(|| eprintln!("error: {e:#}"));
            report.fail(rel, format!("{e:#}"));
        }
    }
}

/// Prints the summary, writes the JSON report, and fails when any file failed.
fn finish(report: &Report, common: &Common) -> Result<()> {
    eprintln!(
        "done {}, skipped {}, failed {}",
        report.done.len(),
        report.skipped.len(),
        report.failed.len()
    );
    for e in &report.skipped {
        eprintln!("  skipped {}: {}", e.file, e.reason);
    }
    for e in &report.failed {
        eprintln!("  failed {}: {}", e.file, e.reason);
    }
    if let Some(path) = &common.report {
        report
            .write_json(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", path.display()))?;
    }
    if !report.failed.is_empty() {
        bail!("{} file(s) failed", report.failed.len());
    }
    Ok(())
}

pub fn run(cmd: &BatchCommand, choice: DeviceChoice) -> Result<()> {
    match cmd {
        BatchCommand::Inpaint(a) => inpaint_folder(a, choice),
        BatchCommand::Weather(a) => weather_folder(a, choice),
        BatchCommand::Generate(a) => generate_prompts(a, choice),
    }
}

fn inpaint_folder(a: &BatchInpaintArgs, choice: DeviceChoice) -> Result<()> {
    let masks = MaskSource::from_path(&a.masks)?;
    let mut report = Report::default();
    let todo = plan(&a.images, &a.common, &[""], &mut report)?;
    let base_seed = a.opts.sd.seed.unwrap_or_else(random_seed);
    a.opts
        .request(base_seed, None)
        .validate()
        .map_err(anyhow::Error::msg)?;
    let engine = a.opts.engine(choice, false)?;
    eprintln!("base seed {base_seed}; {} image(s) to do", todo.len());
    let multi = MultiProgress::new();
    let files = files_bar(&multi, todo.len());
    let steps = multi.add(ProgressBar::new(a.opts.sd.steps as u64));
    step_bar(&steps);
    for (rel, outs) in &todo {
        files.set_message(batch::portable(rel));
        let Some(mask_path) = masks.mask_for(rel) else {
            multi.suspend(|| eprintln!("warning: {}: no mask, skipped", batch::portable(rel)));
            report.skip(rel, "no mask");
            files.inc(1);
            continue;
        };
        let result = (|| -> Result<()> {
            let loaded = imaging::load(a.images.join(rel))?;
            let mask = imaging::load(&mask_path)?;
            let mask = image::DynamicImage::ImageRgba8(mask.rgba).to_luma8();
            let seed = batch::derive_seed(base_seed, rel);
            let req = a.opts.request(seed, None);
            steps.reset();
            let (out, text) = run_one(&engine, &loaded.rgba, &mask, &req, Some(&steps))?;
            if let Some(dir) = outs[0].parent() {
                std::fs::create_dir_all(dir)?;
            }
            imaging::save_png(&outs[0], &out.image, loaded.has_alpha, &text)?;
            Ok(())
        })();
        record(&mut report, &multi, rel, result);
        files.inc(1);
    }
    steps.finish_and_clear();
    files.finish_and_clear();
    finish(&report, &a.common)
}

fn weather_folder(a: &BatchWeatherArgs, choice: DeviceChoice) -> Result<()> {
    let mut report = Report::default();
    let suffixes: &[&str] = if a.uncertainty {
        &["", "_uncertainty"]
    } else {
        &[""]
    };
    let todo = plan(&a.input, &a.common, suffixes, &mut report)?;
    let selected = device::select(choice)?;
    let (model, _) = AuganGenerator::load_direction(&a.model, a.direction, &selected.device)?;
    if a.uncertainty && a.direction == Direction::DayToNight {
        bail!("--uncertainty: only the night-to-day generator has an uncertainty head");
    }
    if a.uncertainty && !model.has_uncertainty() {
        bail!(
            "{}: this AU-GAN file has no uncertainty head",
            a.model.display()
        );
    }
    let req = WeatherRequest {
        size: a.size,
        uncertainty: a.uncertainty,
    };
    let multi = MultiProgress::new();
    let files = files_bar(&multi, todo.len());
    for (rel, outs) in &todo {
        files.set_message(batch::portable(rel));
        let result = (|| -> Result<()> {
            let loaded = imaging::load(a.input.join(rel))?;
            let out = weather::run(&model, &selected.device, &loaded.rgba, &req)?;
            if let Some(dir) = outs[0].parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = vec![
                (
                    "Software",
                    format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
                ),
                ("clearpaint:operation", "weather night-to-day".to_string()),
                ("clearpaint:size", a.size.to_string()),
            ];
            imaging::save_png(&outs[0], &out.image, loaded.has_alpha, &text)?;
            if let (Some(p), Some(img)) = (outs.get(1), out.sigma_image()) {
                imaging::save_png(p, &img, false, &text)?;
            }
            Ok(())
        })();
        record(&mut report, &multi, rel, result);
        files.inc(1);
    }
    files.finish_and_clear();
    finish(&report, &a.common)
}

/// The most images `--images-per-prompt` asks for.
const MAX_PER_PROMPT: usize = 1000;

fn generate_prompts(a: &BatchGenerateArgs, choice: DeviceChoice) -> Result<()> {
    use clearpaint_core::pipelines::generate::{self, GenerateRequest};
    if a.common.recursive {
        bail!("--recursive does not apply to batch generate (its input is one prompts file)");
    }
    if a.images_per_prompt == 0 || a.images_per_prompt > MAX_PER_PROMPT {
        bail!("--images-per-prompt must be between 1 and {MAX_PER_PROMPT}");
    }
    let prompts = batch::read_prompts(&a.prompts)?;
    let base_seed = a.sd.seed.unwrap_or_else(random_seed);
    let request = |prompt: &str, seed: u64| GenerateRequest {
        base: clearpaint_core::pipelines::inpaint::InpaintRequest {
            prompt: prompt.to_string(),
            ..a.sd.request(seed, None)
        },
        width: a.width,
        height: a.height,
    };
    // The shared options (size, steps, ...) are checked once, before any model loads.
    request("", base_seed)
        .validate()
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&a.common.out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", a.common.out.display()))?;
    let stale = batch::remove_stale_temp_files(&a.common.out);
    if stale > 0 {
        eprintln!("removed {stale} temporary file(s) left by an interrupted run");
    }
    let mut report = Report::default();
    let mut todo = Vec::new();
    let shard = a.common.shard()?;
    for p in &prompts {
        for k in 0..a.images_per_prompt {
            let rel = batch::prompt_output(p.line, k, a.images_per_prompt);
            if shard.is_some_and(|s| !s.contains(&rel)) {
                continue;
            }
            if !a.common.overwrite && a.common.out.join(&rel).exists() {
                report.skip(&rel, "output exists (use --overwrite to redo)");
                continue;
            }
            todo.push((rel, p.prompt.as_str()));
        }
    }
    let models = a.sd.load(choice)?;
    eprintln!("base seed {base_seed}; {} image(s) to do", todo.len());
    let multi = MultiProgress::new();
    let files = files_bar(&multi, todo.len());
    let steps = multi.add(ProgressBar::new(a.sd.steps as u64));
    step_bar(&steps);
    for (rel, prompt) in &todo {
        files.set_message(batch::portable(rel));
        let result = (|| -> Result<()> {
            let req = request(prompt, batch::derive_seed(base_seed, rel));
            req.validate().map_err(anyhow::Error::msg)?;
            steps.reset();
            let progress = |_: &str, done: usize, total: usize| {
                steps.set_length(total as u64);
                steps.set_position(done as u64);
            };
            let cancel = clearpaint_core::progress::CancelToken::new();
            let out = generate::run(&models, &req, &progress, &cancel)?;
            let params = generate::a1111_parameters(
                &req.base,
                &models.sd.model_name,
                a.width,
                a.height,
                false,
            );
            let text = [
                ("parameters", params),
                (
                    "Software",
                    format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
                ),
            ];
            imaging::save_png(a.common.out.join(rel), &out.image, false, &text)?;
            Ok(())
        })();
        record(&mut report, &multi, rel, result);
        files.inc(1);
    }
    steps.finish_and_clear();
    files.finish_and_clear();
    finish(&report, &a.common)
}
