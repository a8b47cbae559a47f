//! `clearpaint weights list | check | fetch | info | load`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use clearpaint::hub::{self, FetchObserver, FetchRequest, HubSettings, Manifest, Presence};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::models::check::{self, ModelKind, PartCheck};
use clearpaint_core::models::{augan::AuganGenerator, clip, ldm, unet, vae};
use clearpaint_core::weights::{self, SafetensorsFile};

#[derive(Subcommand, Debug)]
pub enum WeightsCommand {
    /// The models clearpaint knows (weights/manifest.toml) and where each is on this machine.
    List {
        /// The weights folder to look in (besides the Hugging Face cache).
        #[arg(long, default_value = "weights")]
        dir: PathBuf,
        /// Another manifest instead of the built-in one.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Validate folders or files against the architecture they claim: every key, shape and
    /// dtype. Prints OK or each problem; exits non-zero if any.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What the path must be: pipeline, checkpoint, unet, vae, asym-vae, text-encoder, augan.
        #[arg(long = "as", value_name = "KIND")]
        kind: Option<ModelKind>,
    },
    /// Download a known model (`weights list` names them) or any Hub repo (ORG/NAME) into the
    /// Hugging Face cache, with progress; an interrupted download resumes when run again.
    Fetch {
        name: String,
        /// Also make DIR/<model folder> show the files (links into the cache), e.g. `weights`.
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
        #[arg(long)]
        revision: Option<String>,
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Summarise files or folders: tensors, dtypes, parameters, top-level key groups.
    Info {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Load a model into memory as a run does, and report the time and peak resident memory.
    Load {
        path: PathBuf,
        #[arg(long = "as", value_name = "KIND")]
        kind: Option<ModelKind>,
    },
}

pub fn run(cmd: &WeightsCommand, choice: DeviceChoice) -> Result<()> {
    match cmd {
        WeightsCommand::List { dir, manifest } => list(dir, manifest.as_deref()),
        WeightsCommand::Check { paths, kind } => check_cmd(paths, *kind),
        WeightsCommand::Fetch {
            name,
            into,
            revision,
            manifest,
        } => fetch(
            name,
            into.as_deref(),
            revision.as_deref(),
            manifest.as_deref(),
        ),
        WeightsCommand::Info { paths } => info(paths),
        WeightsCommand::Load { path, kind } => load(path, *kind, choice),
    }
}

fn list(dir: &Path, manifest: Option<&Path>) -> Result<()> {
    let m = Manifest::load(manifest)?;
    let hub = HubSettings::from_env();
    println!("Hugging Face cache: {}", hub.cache.display());
    for model in &m.model {
        let size = model
            .size_gb
            .map(|g| format!(", ~{g:.1} GB"))
            .unwrap_or_default();
        println!(
            "{} ({}{size}): {}",
            model.name, model.kind, model.description
        );
        if let Some(repo) = &model.repo {
            println!("    source: {repo} (licence: {})", model.license);
        } else {
            println!("    source: {} (licence: {})", model.source, model.license);
        }
        match hub::locate(model, dir, &hub) {
            Presence::Present(p) => println!("    present: {}", p.display()),
            Presence::Partial { path, missing } => println!(
                "    incomplete: {} lacks {} (clearpaint weights fetch {})",
                path.display(),
                missing.join(", "),
                model.name
            ),
            Presence::Absent if model.repo.is_some() => {
                println!("    missing: clearpaint weights fetch {}", model.name)
            }
            Presence::Absent => println!(
                "    missing: {}",
                model.manual.as_deref().unwrap_or("see weights/README.md")
            ),
        }
    }
    Ok(())
}

fn print_part(p: &PartCheck) {
    let kind = p.kind.map(|k| k.describe()).unwrap_or("unknown model");
    if p.ok() && p.kind == Some(ModelKind::Pipeline) {
        println!("{}: OK ({kind}; components below)", p.path.display());
    } else if p.ok() {
        let dtypes: Vec<String> = p.dtypes.iter().map(|(d, n)| format!("{n} {d}")).collect();
        println!(
            "{}: OK ({kind}; {} tensors, {:.1}M parameters{})",
            p.path.display(),
            p.tensors,
            p.parameters as f64 / 1e6,
            if dtypes.is_empty() {
                String::new()
            } else {
                format!("; {}", dtypes.join(", "))
            }
        );
    } else {
        println!(
            "{}: {} problem{} ({kind})",
            p.path.display(),
            p.problems.len(),
            if p.problems.len() == 1 { "" } else { "s" }
        );
        const SHOWN: usize = 20;
        for line in p.problems.iter().take(SHOWN) {
            println!("  - {line}");
        }
        if p.problems.len() > SHOWN {
            println!("  ... and {} more", p.problems.len() - SHOWN);
        }
    }
}

fn check_cmd(paths: &[PathBuf], kind: Option<ModelKind>) -> Result<()> {
    let mut bad = 0;
    let mut total = 0;
    for path in paths {
        for part in check::check_path(path, kind) {
            print_part(&part);
            total += 1;
            if !part.ok() {
                bad += 1;
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {total} checked part(s) have problems");
    }
    Ok(())
}

/// A terminal progress bar per file.
struct Bars {
    bar: indicatif::ProgressBar,
    done: AtomicU64,
}

impl FetchObserver for Bars {
    fn file(&self, index: usize, count: usize, name: &str, size: u64, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        if size == 0 {
            self.bar
                .println(format!("[{}/{count}] {name}: cached", index + 1));
            return;
        }
        self.bar.reset();
        self.bar.set_length(size);
        self.bar.set_position(done);
        self.bar
            .set_message(format!("[{}/{count}] {name}", index + 1));
    }
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

fn fetch(
    name: &str,
    into: Option<&Path>,
    revision: Option<&str>,
    manifest: Option<&Path>,
) -> Result<()> {
    let m = Manifest::load(manifest)?;
    let (mut req, local) = match m.find(name) {
        Some(model) => (FetchRequest::for_model(model)?, model.local_dir.clone()),
        None if name.matches('/').count() == 1 => (
            FetchRequest {
                repo: name.to_string(),
                revision: "main".into(),
                files: None,
                sha256: Default::default(),
            },
            name.rsplit('/').next().unwrap_or(name).to_string(),
        ),
        None => bail!(
            "unknown model '{name}': known models are {} (or give a Hub repo id ORG/NAME)",
            m.names().join(", ")
        ),
    };
    if let Some(r) = revision {
        req.revision = r.to_string();
    }
    let hub = HubSettings::from_env();
    let bar = indicatif::ProgressBar::new(0);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("template"),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bars = Arc::new(Bars {
        bar: bar.clone(),
        done: AtomicU64::new(0),
    });
    let snapshot = hub::fetch(&hub, &req, bars)?;
    bar.finish_and_clear();
    println!("{}: downloaded to {}", req.repo, snapshot.display());
    let shown = match into {
        Some(dir) => {
            let target = dir.join(&local);
            hub::link_into(&snapshot, &target)?;
            println!("linked as {}", target.display());
            target
        }
        None => snapshot,
    };
    println!("use it with: --model {}", shown.display());
    Ok(())
}

fn info(paths: &[PathBuf]) -> Result<()> {
    let mut failed = 0usize;
    for path in paths {
        if let Err(e) = inspect(path) {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} path(s) could not be read", paths.len());
    }
    Ok(())
}

fn inspect(path: &Path) -> Result<()> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            let comp = weights::component_files(path)?;
            let files = comp.open()?;
            let _: serde_json::Value = comp.config()?;
            summarise(&path.display().to_string(), &files);
            return Ok(());
        }
        // A pipeline folder: every sub-folder with a config.json is a component.
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.json").is_file())
            .collect();
        entries.sort();
        if entries.is_empty() {
            bail!(
                "{}: no config.json here or in any sub-folder (not a diffusers model folder)",
                path.display()
            );
        }
        for e in entries {
            let comp = weights::component_files(&e)?;
            let files = comp.open()?;
            summarise(&e.display().to_string(), &files);
        }
        return Ok(());
    }
    let file = SafetensorsFile::open(path)?;
    summarise(&path.display().to_string(), std::slice::from_ref(&file));
    Ok(())
}

fn summarise(name: &str, files: &[SafetensorsFile]) {
    let mut params = 0usize;
    let mut dtypes = std::collections::BTreeMap::<String, usize>::new();
    let mut tensors = 0usize;
    for f in files {
        for k in f.keys() {
            if let Some(e) = f.entry(k) {
                params += e.shape.iter().product::<usize>();
                *dtypes.entry(format!("{:?}", e.dtype)).or_insert(0) += 1;
                tensors += 1;
            }
        }
    }
    let dtypes: Vec<String> = dtypes.iter().map(|(d, n)| format!("{n} {d}")).collect();
    println!(
        "{name}: ok, {} file(s), {tensors} tensors ({}), {:.2}M parameters",
        files.len(),
        dtypes.join(", "),
        params as f64 / 1e6
    );
    let groups: Vec<String> = weights::key_summary(files)
        .iter()
        .map(|(k, n)| format!("{k} ({n})"))
        .collect();
    println!("  top-level keys: {}", groups.join(", "));
}

/// Peak resident memory of this process so far (Linux: VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn load(path: &Path, kind: Option<ModelKind>, choice: DeviceChoice) -> Result<()> {
    let selected = clearpaint::placement::select(choice)?;
    let dev = &selected.device;
    let before = peak_rss();
    let start = Instant::now();
    let kind = match kind {
        Some(k) => k,
        None => check::check_path(path, None)
            .into_iter()
            .find_map(|p| p.kind)
            .ok_or_else(|| {
                anyhow!(
                    "{}: cannot tell what model this is; pass --as",
                    path.display()
                )
            })?,
    };
    let (params, what) = match kind {
        ModelKind::UNet => {
            let m = unet::load_folder(path, dev)?;
            (burn::module::Module::num_params(&m.model), "UNet")
        }
        ModelKind::Vae | ModelKind::AsymmetricVae => {
            let m = vae::load_folder(path, dev)?;
            (burn::module::Module::num_params(&m.model), "VAE")
        }
        ModelKind::TextEncoder => {
            let m = clip::load_folder(path, dev)?;
            (burn::module::Module::num_params(&m.model), "text encoder")
        }
        ModelKind::ImageEncoder => {
            let m = clearpaint_core::models::paint_by_example::load_folder(path, dev)?;
            (burn::module::Module::num_params(&m.model), "image encoder")
        }
        ModelKind::Checkpoint => {
            let f = SafetensorsFile::open(path)?;
            let u = ldm::load_unet(&f, dev)?;
            let v = ldm::load_vae(&f, dev)?;
            let t = ldm::load_text_encoder(&f, dev)?;
            (
                burn::module::Module::num_params(&u.model)
                    + burn::module::Module::num_params(&v.model)
                    + burn::module::Module::num_params(&t.model),
                "checkpoint (UNet + VAE + text encoder)",
            )
        }
        ModelKind::Augan => {
            let (m, _) = AuganGenerator::load(path, dev)?;
            (burn::module::Module::num_params(&m), "AU-GAN generator")
        }
        ModelKind::Pipeline => bail!(
            "{}: load one component (unet/, vae/, text_encoder/) or a single-file checkpoint",
            path.display()
        ),
    };
    let secs = start.elapsed().as_secs_f64();
    let f32_bytes = params as u64 * 4;
    println!(
        "{}: {what} loaded on {} in {secs:.1} s, {:.1}M parameters ({:.0} MiB as f32)",
        path.display(),
        selected.description,
        params as f64 / 1e6,
        f32_bytes as f64 / 1048576.0
    );
    match (peak_rss(), before) {
        (Some(peak), Some(base)) => println!(
            "peak resident memory: {:.0} MiB ({:.2}x the f32 model; {:.0} MiB before loading)",
            peak as f64 / 1048576.0,
            peak as f64 / f32_bytes as f64,
            base as f64 / 1048576.0
        ),
        _ => println!("peak resident memory: not available on this system"),
    }
    Ok(())
}
