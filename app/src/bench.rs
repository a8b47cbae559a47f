//! `clearpaint bench`: timings of the workloads, median and spread over repeated runs after a
//! warm-up. (The model workloads side by side with PyTorch come with the benchmarks issue;
//! this measures what runs without weights.)

use std::time::Instant;

use anyhow::Result;
use clearpaint_core::classical::{Method, fill};
use clearpaint_core::device::{self, DeviceChoice};
use image::{GrayImage, Luma, Rgba, RgbaImage};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Repetitions after one warm-up run.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn stats(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(|a, b| a.total_cmp(b));
    (t[t.len() / 2], t[0], t[t.len() - 1])
}

/// Fused GroupNorm+SiLU (the WGSL kernel) vs burn's composed GroupNorm then SiLU on the
/// selected device, at a VAE decoder shape and a UNet shape (batch 2 for guidance).
fn group_norm_bench(runs: usize, choice: DeviceChoice) -> Result<()> {
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Distribution, Tensor};
    use clearpaint_core::kernels;
    let selected = device::select(choice)?;
    let dev = &selected.device;
    let fused_available = kernels::is_wgpu(dev);
    println!();
    println!("GroupNorm+SiLU on {}:", selected.description);
    for (what, shape, groups) in [
        ("VAE decoder 1x128x256x256 / 32", [1, 128, 256, 256], 32),
        ("UNet 2x320x64x64 / 32", [2, 320, 64, 64], 32),
    ] {
        let norm = GroupNormConfig::new(groups, shape[1])
            .with_epsilon(1e-6)
            .init(dev);
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), dev);
        let sync = |t: Tensor<4>| {
            let _ = t.sum().into_scalar::<f32>();
        };
        let time = |fused: bool| -> (f64, f64, f64) {
            let go = || {
                if fused {
                    kernels::group_norm_silu(x.clone(), &norm, true).expect("groups divide")
                } else {
                    kernels::group_norm_silu_reference(x.clone(), &norm, true)
                }
            };
            sync(go());
            stats(
                (0..runs)
                    .map(|_| {
                        let t = Instant::now();
                        sync(go());
                        t.elapsed().as_secs_f64()
                    })
                    .collect(),
            )
        };
        let (cm, cmin, cmax) = time(false);
        println!("  {what:36} composed {cm:8.4}s ({cmin:.4}-{cmax:.4})");
        if fused_available {
            let (fm, fmin, fmax) = time(true);
            println!(
                "  {what:36} fused    {fm:8.4}s ({fmin:.4}-{fmax:.4})  -> {:.2}x",
                cm / fm
            );
        } else {
            println!("  {what:36} fused    n/a (the kernel runs on wgpu devices; this is the CPU)");
        }
    }
    Ok(())
}

pub fn run(args: &BenchArgs, choice: DeviceChoice) -> Result<()> {
    let runs = args.runs.max(1);
    // 512x512 photo-like texture with a 10% mask (a 162x162 square).
    let img = RgbaImage::from_fn(512, 512, |x, y| {
        let v = ((x as f32 / 9.0).sin() * 40.0 + (y as f32 / 13.0).cos() * 40.0 + 120.0) as u8;
        Rgba([v, (x / 2) as u8, (y / 2) as u8, 255])
    });
    let mask = GrayImage::from_fn(512, 512, |x, y| {
        Luma([if (175..337).contains(&x) && (175..337).contains(&y) {
            255
        } else {
            0
        }])
    });
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "workload                                   median      min      max   ({runs} runs, {threads} threads)"
    );
    for (name, method) in [
        ("classical PatchMatch 512x512, 10% mask", Method::PatchMatch),
        ("classical Telea 512x512, 10% mask", Method::Telea),
    ] {
        let _ = fill(&img, &mask, method);
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let _ = fill(&img, &mask, method);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let (med, min, max) = stats(times);
        println!("{name:40} {med:8.3}s {min:8.3}s {max:8.3}s");
    }
    // The desktop app's brush: per frame, the mask update plus the overlay texture update
    // (only the touched rectangle is re-uploaded), on a 4096x4096 image. Target: < 16 ms.
    let frames = clearpaint::gui::ClearpaintApp::stroke_benchmark(4096, 60);
    let (med, min, max) = stats(frames.clone());
    let name = "app brush stroke frame 4096x4096";
    println!(
        "{name:40} {:8.2}ms {:7.2}ms {:7.2}ms   (60 frames of one stroke; target < 16 ms)",
        med, min, max
    );
    group_norm_bench(runs, choice)
}
