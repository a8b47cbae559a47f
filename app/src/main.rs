//! The `clearpaint` binary: a thin CLI over `clearpaint-core`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use clearpaint_core::device::{self, DEVICE_ENV, DeviceChoice};
use clearpaint_core::weights::{self, SafetensorsFile};

mod batch;
mod bench;
mod inpaint;
mod weather;

#[derive(Parser, Debug)]
#[command(
    name = "clearpaint",
    version,
    about = "Generative image editing: Stable Diffusion 1.x inpainting with an asymmetric \
             VQGAN decoder, and AU-GAN night-to-day translation",
    after_help = "With no command, the desktop app opens (optionally with IMAGE)."
)]
struct Cli {
    /// Where models run: auto (a hardware GPU if present, else CPU), gpu (wgpu, any adapter
    /// incl. software), cpu (burn flex).
    #[arg(long, global = true, env = DEVICE_ENV, value_parser = parse_device, default_value = "auto")]
    device: DeviceChoice,

    #[command(subcommand)]
    command: Option<Command>,

    /// Image to open in the desktop app.
    #[arg(value_name = "IMAGE")]
    image: Option<PathBuf>,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: device::DeviceError| e.to_string())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the compute devices found and say which one each --device choice uses.
    Devices,
    /// Inpaint / locally edit an image with Stable Diffusion 1.x and the asymmetric decoder.
    Inpaint(Box<inpaint::InpaintArgs>),
    /// Process whole folders (resumable, shardable): `batch inpaint`, `batch weather`.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Time the workloads (median / min / max over repeated runs).
    Bench(bench::BenchArgs),
    /// Night / rainy night to day with AU-GAN (optionally with its uncertainty map).
    Weather(weather::WeatherArgs),
    /// Check weight files or diffusers model folders: open, validate, and summarise them.
    Weights {
        /// `.safetensors` files, component folders (with config.json) or pipeline folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = &cli.command else {
        return match clearpaint::gui::run(cli.image.clone()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    };
    let result = match command {
        Command::Devices => devices(cli.device),
        Command::Weights { paths } => weights_cmd(paths),
        Command::Weather(args) => weather::run(args, cli.device),
        Command::Inpaint(args) => inpaint::run(args, cli.device),
        Command::Batch(cmd) => batch::run(cmd, cli.device),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn devices(choice: DeviceChoice) -> Result<()> {
    let adapters = device::list_adapters();
    println!("wgpu adapters:");
    if adapters.is_empty() {
        println!("  (none: no Vulkan/Metal/DX12/GL driver answered)");
    }
    for (i, a) in adapters.iter().enumerate() {
        let driver = if a.driver.is_empty() {
            String::new()
        } else {
            format!(", driver {}", a.driver)
        };
        println!(
            "  [{i}] {} ({}, {}{driver})",
            a.name,
            a.backend,
            a.kind.name()
        );
    }
    println!("cpu:");
    println!("  flex (burn's CPU backend, {} threads)", num_threads());
    println!();
    for c in DeviceChoice::ALL {
        let picked = match device::decide(c, &adapters) {
            Ok(None) => "cpu (flex)".to_string(),
            Ok(Some(i)) => format!(
                "gpu: {} ({}, {})",
                adapters[i].name,
                adapters[i].backend,
                adapters[i].kind.name()
            ),
            Err(e) => format!("unavailable: {e}"),
        };
        let why = match (c, device::decide(c, &adapters)) {
            (DeviceChoice::Auto, Ok(None)) if !adapters.is_empty() => {
                " (only software adapters: flex is faster on a CPU)"
            }
            (DeviceChoice::Auto, Ok(None)) => " (no GPU adapter)",
            _ => "",
        };
        let mark = if c == choice { "  <- selected" } else { "" };
        println!("{:>5} -> {picked}{why}{mark}", c.name());
    }
    Ok(())
}

fn num_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn weights_cmd(paths: &[PathBuf]) -> Result<()> {
    let mut failed = 0usize;
    for path in paths {
        if let Err(e) = inspect(path) {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} path(s) could not be read", paths.len());
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
            anyhow::bail!(
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
