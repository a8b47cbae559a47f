//! `clearpaint batch inpaint` / `batch weather` / `batch generate`: folders or bucket prefixes
//! in, folders or bucket prefixes out; resumable, shardable, never a partial file; each shard
//! reports to `_reports/` beside its outputs and `batch report` merges those.

pub mod bench;
mod jobs;
mod pipeline;
mod report;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use clearpaint_core::batch::{self, Report, Shard};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::models::augan::Direction;
use clearpaint_core::pipelines::weather::{DEFAULT_SIZE, WorkSize};
use clearpaint_core::shard::{self, ShardSpec};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use pipeline::Outcome;
use store::{Created, Place};

#[derive(clap::Subcommand, Debug)]
pub enum BatchCommand {
    /// Inpaint every image of a folder (or bucket prefix) with its mask.
    Inpaint(Box<BatchInpaintArgs>),
    /// Translate every image of a folder (or bucket prefix): night to day, or day to night.
    Weather(BatchWeatherArgs),
    /// Text-to-image for every prompt of a file (one a line).
    Generate(Box<BatchGenerateArgs>),
    /// Merge the shard reports under an output folder or URL: counts, failures, and the
    /// shards that have not reported (exit status 1 while any is missing or failed).
    Report(BatchReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct BatchReportArgs {
    /// The --out of the batch (folder or URL).
    #[arg(value_name = "DIR|URL")]
    pub out: String,
    /// Also write the merged summary as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
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
    /// Output folder or URL (`s3://bucket/prefix`, `gs://`, `az://`, `file://`); created;
    /// subfolders mirrored with --recursive. Credentials and endpoints come from the usual
    /// environment variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, ...).
    #[arg(long, value_name = "DIR|URL")]
    pub out: String,
    /// Also process subfolders.
    #[arg(long)]
    pub recursive: bool,
    /// Process the keys listed in this file (one a line, relative to the input; a local file
    /// or a URL) instead of listing the input: a shard of a huge bucket lists nothing.
    #[arg(long, value_name = "FILE|URL")]
    pub manifest: Option<String>,
    /// Redo images whose output exists (default: skip them, so a re-run resumes).
    #[arg(long)]
    pub overwrite: bool,
    /// Also write this run's summary (done / skipped / failed with reasons) as JSON here; every
    /// run writes one to `_reports/shard-I-of-N.json` under --out as well.
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
    /// Images read and decoded ahead of the model, and results queued for writing behind it,
    /// on other threads (0: read, run and write in turn on one thread).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub prefetch: usize,
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

    /// The output place, refused inside `input`; a local folder is created.
    fn out_place(&self, input: Option<&Place>) -> Result<Place> {
        let out = Place::parse(&self.out)?;
        match (input, &out) {
            (Some(Place::Local(i)), Place::Local(o)) => batch::check_out_not_inside(i, o)?,
            (Some(i), o) if i.contains(o) => {
                bail!("--out {o} is inside the input {i}; choose a place outside it")
            }
            _ => {}
        }
        out.probe()?;
        if let Some(dir) = out.local() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow!("{}: cannot create: {e}", dir.display()))?;
            let stale = batch::remove_stale_temp_files(dir);
            if stale > 0 {
                eprintln!("removed {stale} temporary file(s) left by an interrupted run");
            }
        }
        Ok(out)
    }

    /// Writes `bytes` at `key` under `out`: only if absent, or replacing with --overwrite.
    fn write(&self, out: &Place, key: &str, bytes: Vec<u8>) -> Result<Created> {
        if self.overwrite {
            out.put(key, bytes).map(|_| Created::Written)
        } else {
            out.create(key, bytes)
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BatchInpaintArgs {
    /// Folder or URL of images (png, jpg, jpeg, webp, bmp, tif, tiff).
    #[arg(long, value_name = "DIR|URL")]
    pub images: String,
    /// A folder (or URL prefix) of masks matched by file stem (`photo.jpg` <-> `photo.png` or
    /// `photo_mask.png`), or one mask file (or object) for every image.
    #[arg(long, value_name = "DIR|FILE|URL")]
    pub masks: String,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub opts: crate::inpaint::InpaintOptions,
}

#[derive(clap::Args, Debug)]
pub struct BatchWeatherArgs {
    /// AU-GAN weights (.safetensors, converted with weights/convert_augan_tf.py).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Folder or URL of images.
    #[arg(long, value_name = "DIR|URL")]
    pub input: String,
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

/// One image of a run: its key under the input and its output keys under --out.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub outs: Vec<String>,
    /// The mask's key (batch inpaint with a mask folder).
    pub mask: Option<String>,
}

impl Item {
    fn rel(&self) -> &Path {
        Path::new(&self.key)
    }
}

/// The output key for input `key`: the same relative path, `.png`, `suffix` before it.
fn output_key(key: &str, suffix: &str) -> String {
    batch::portable(&batch::output_for(Path::new(""), Path::new(key), suffix))
}

/// The keys of this run: the manifest's or the input's listing, this shard's share.
fn keys(input: &Place, common: &Common, shard: Option<Shard>) -> Result<Vec<String>> {
    let mut keys = match &common.manifest {
        Some(m) => {
            if common.recursive {
                bail!("--manifest lists the keys itself; drop --recursive");
            }
            let (dir, name) = match m.rsplit_once('/') {
                Some((d, n)) if m.contains("://") => (Place::parse(d)?, n.to_string()),
                _ => (Place::Local(PathBuf::new()), m.clone()),
            };
            let text = String::from_utf8(dir.read(&name)?)
                .map_err(|_| anyhow!("{m}: the manifest is not UTF-8 text"))?;
            store::read_manifest(&text, m)?
        }
        None => input.list_images(common.recursive)?,
    };
    if keys.is_empty() {
        bail!("{input}: no images (png, jpg, jpeg, webp, bmp, tif, tiff)");
    }
    if let Some(shard) = shard {
        keys.retain(|k| shard.contains(Path::new(k)));
    }
    Ok(keys)
}

/// The items of this run; for a local --out, those whose outputs exist are skipped here
/// (unless --overwrite) and recorded. Remote outputs are checked at each item's turn, so a
/// shard never lists a whole bucket.
fn plan(
    input: &Place,
    common: &Common,
    out: &Place,
    suffixes: &[&str],
    shard: Option<Shard>,
    report: &mut Report,
) -> Result<Vec<Item>> {
    let mut todo = Vec::new();
    for key in keys(input, common, shard)? {
        let outs: Vec<String> = suffixes.iter().map(|s| output_key(&key, s)).collect();
        if !common.overwrite
            && out.local().is_some()
            && outs.iter().all(|o| out.exists(o).unwrap_or(false))
        {
            report.skip(Path::new(&key), batch::OUTPUT_EXISTS);
            continue;
        }
        todo.push(Item {
            key,
            outs,
            mask: None,
        });
    }
    Ok(todo)
}

/// Whether every output of `item` is there already (so another attempt did it).
fn already_done(common: &Common, out: &Place, item: &Item) -> Result<bool> {
    if common.overwrite {
        return Ok(false);
    }
    for o in &item.outs {
        if !out.exists(o)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn files_bar(multi: &MultiProgress, n: usize) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(n as u64));
    bar.set_style(
        ProgressStyle::with_template("files    {bar:30} {pos}/{len} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A run's shared tally: the report, the bars, the start time.
pub struct Tally {
    pub report: Mutex<Report>,
    pub multi: MultiProgress,
    pub files: ProgressBar,
    started: std::time::SystemTime,
}

impl Tally {
    fn new(report: Report, n: usize) -> Tally {
        let multi = MultiProgress::new();
        let files = files_bar(&multi, n);
        Tally {
            report: Mutex::new(report),
            multi,
            files,
            started: std::time::SystemTime::now(),
        }
    }

    /// Records one item's outcome; a failure is printed above the progress bars.
    fn record(&self, item: &Item, result: Result<Outcome>) {
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        let rel = item.rel();
        match result {
            Ok(Outcome::Saved(Created::Written)) => report.done.push(item.key.clone()),
            Ok(Outcome::Saved(Created::Existed)) => report.skip(rel, batch::WRITTEN_MEANWHILE),
            Ok(Outcome::Skipped(reason)) => report.skip(rel, reason),
            Err(e) => {
                self.multi.suspend(|| eprintln!("error: {e:#}"));
                report.fail(rel, format!("{e:#}"));
            }
        }
        self.files.inc(1);
        self.files.set_message(item.key.clone());
    }

    /// Prints the summary, writes the shard report under --out (and --report), and fails when
    /// any file failed.
    fn finish(
        self,
        command: &str,
        common: &Common,
        out: &Place,
        shard: Option<Shard>,
    ) -> Result<()> {
        self.files.finish_and_clear();
        let mut report = self.report.into_inner().unwrap_or_else(|p| p.into_inner());
        report.done.sort();
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
        let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
        report::ShardReport::new(command, shard, self.started, &report).write(out)?;
        if let Some(path) = &common.report {
            report
                .write_json(path)
                .map_err(|e| anyhow!("{}: cannot write the report: {e}", path.display()))?;
        }
        if !report.failed.is_empty() {
            bail!("{} file(s) failed", report.failed.len());
        }
        Ok(())
    }
}

pub fn run(cmd: &BatchCommand, choice: DeviceChoice) -> Result<()> {
    match cmd {
        BatchCommand::Inpaint(a) => jobs::inpaint_folder(a, choice),
        BatchCommand::Weather(a) => jobs::weather_folder(a, choice),
        BatchCommand::Generate(a) => jobs::generate_prompts(a, choice),
        BatchCommand::Report(a) => report::run(&Place::parse(&a.out)?, a.json.as_deref()),
    }
}
