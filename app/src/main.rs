//! The `clearpaint` binary: a thin CLI over `clearpaint-core`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use clearpaint_core::device::{self, DEVICE_ENV, DeviceChoice};
use clearpaint_core::precision::{PRECISION_ENV, Precision};

mod batch;
mod bench;
mod bench_quality;
mod bench_small;
mod generate;
mod inpaint;
mod weather;
mod weights_cmd;

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

    /// Float precision: auto (f16 on a GPU with shader-f16, for the models checked in it: the
    /// UNet, the text encoder and the VAE decoders so far; on the CPU bf16 where its bf16 dot
    /// products outrun f32, else f32: see `devices`), f32, f16 (GPU only), bf16 (CPU only:
    /// those models' weights in bf16, sums in f32).
    #[arg(long, global = true, env = PRECISION_ENV, value_parser = parse_precision, default_value = "auto")]
    precision: Precision,

    #[command(subcommand)]
    command: Option<Command>,

    /// Image to open in the desktop app.
    #[arg(value_name = "IMAGE")]
    image: Option<PathBuf>,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: device::DeviceError| e.to_string())
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
        .map_err(|e: clearpaint_core::precision::PrecisionError| e.to_string())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the compute devices found and say which one each --device choice uses.
    Devices,
    /// Inpaint / locally edit an image with Stable Diffusion 1.x and the asymmetric decoder.
    Inpaint(Box<inpaint::InpaintArgs>),
    /// Text-to-image with Stable Diffusion 1.x (the asymmetric decoder without condition with
    /// --vae).
    Generate(Box<generate::GenerateArgs>),
    /// Image-to-image with Stable Diffusion 1.x (--strength: how much to change). For a
    /// region only, use `inpaint --strength`.
    Img2img(Box<generate::Img2ImgArgs>),
    /// Process whole folders (resumable, shardable): `batch inpaint`, `batch weather`.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Time the workloads (median / min / max over repeated runs).
    Bench(bench::BenchArgs),
    /// Night / rainy night to day with AU-GAN (optionally with its uncertainty map).
    Weather(weather::WeatherArgs),
    /// Weights: list the known models, check, fetch from the Hub, summarise, test-load.
    #[command(subcommand)]
    Weights(weights_cmd::WeightsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    clearpaint::placement::set_precision(cli.precision);
    let Some(command) = &cli.command else {
        return match clearpaint::gui::run(cli.image.clone(), cli.device) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    };
    let result = match command {
        Command::Devices => devices(cli.device),
        Command::Weights(cmd) => weights_cmd::run(cmd, cli.device),
        Command::Weather(args) => weather::run(args, cli.device),
        Command::Inpaint(args) => inpaint::run(args, cli.device),
        Command::Generate(args) => generate::run(args, cli.device),
        Command::Img2img(args) => generate::run_img2img(args, cli.device),
        Command::Batch(cmd) => batch::run(cmd, cli.device),
        Command::Bench(args) => bench::run(args, cli.device),
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
        let f16 = if a.shader_f16 { "f16" } else { "no f16" };
        println!(
            "  [{i}] {} ({}, {}{driver}, {f16}, {})",
            a.name,
            a.backend,
            a.kind.name(),
            runtime_line(a)
        );
    }
    println!("cpu:");
    println!(
        "  flex (burn's CPU backend, {} threads; bf16: {})",
        num_threads(),
        clearpaint_core::precision::CpuBf16::detect().describe()
    );
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
    println!();
    precisions(choice, &adapters);
    Ok(())
}

/// The compiler burn runs on `a` and the cooperative-matrix shapes its driver offers.
fn runtime_line(a: &device::AdapterInfo) -> String {
    let runtime = match clearpaint_core::gpu::open(&a.device_kind) {
        Ok((d, _)) => clearpaint_core::gpu::runtime(&d),
        Err(e) => return format!("cannot start: {e}"),
    };
    let Some(r) = runtime else {
        return "not a wgpu device".into();
    };
    let shown = r.cooperative_matrices.iter().take(3).cloned();
    let coop = match r.cooperative_matrices.len() {
        0 => "no cooperative matrices".to_string(),
        n if n <= 3 => format!(
            "cooperative matrices {}",
            shown.collect::<Vec<_>>().join(", ")
        ),
        n => format!(
            "cooperative matrices {}, ... ({n} shapes)",
            shown.collect::<Vec<_>>().join(", ")
        ),
    };
    format!("{} compiler, {coop}", r.compiler.name())
}

/// What each --precision gives on the device `choice` picks.
fn precisions(choice: DeviceChoice, adapters: &[device::AdapterInfo]) {
    let picked = device::decide(choice, adapters).ok().flatten();
    let mut selected = device::cpu();
    if let Some(i) = picked {
        selected.is_cpu = false;
        selected.shader_f16 = adapters[i].shader_f16;
        selected.description = format!("gpu: {}", adapters[i].name);
    }
    println!("precision on --device {choice}:");
    let current = clearpaint::placement::precision();
    for p in Precision::ALL {
        let gives = match p.resolve(&selected) {
            Ok(clearpaint_core::precision::Half::On) => {
                "f16 for the UNet, text encoder and VAE decoders (checked against diffusers' fp16), f32 for the rest"
                    .to_string()
            }
            Ok(clearpaint_core::precision::Half::Bf16) => {
                let kernels = if clearpaint_core::cpu::bf16_kernels_used() {
                    "on the bf16 dot products, f32 sums"
                } else {
                    "on the f32 kernels"
                };
                format!(
                    "bf16 weights for the UNet, text encoder and VAE decoders (checked against PyTorch's bf16 autocast), products {kernels}; f32 for the rest"
                )
            }
            Ok(clearpaint_core::precision::Half::Off) => "f32".to_string(),
            Err(e) => format!("unavailable: {e}"),
        };
        let mark = if p == current { "  <- selected" } else { "" };
        println!("{:>5} -> {gives}{mark}", p.name());
    }
}

fn num_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
