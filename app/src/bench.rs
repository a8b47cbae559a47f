//! `clearpaint bench`: timings of the workloads, median and spread over repeated runs after a
//! warm-up. (The model workloads side by side with PyTorch come with the benchmarks issue;
//! this measures what runs without weights.)

use std::time::Instant;

use anyhow::Result;
use clearpaint_core::classical::{Method, fill};
use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::precision::Model;
use image::{GrayImage, Luma, Rgba, RgbaImage};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Repetitions after one warm-up run (0 with --workload: a single cold run).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Model workloads instead of the quick ones (repeatable): conv3x3, unet-step, text-encoder,
    /// vae-encode, vae-decode, asym-decode, augan, inpaint-20, batch-weather (images/s of a
    /// folder of JPEG frames, with and without prefetch), classical-photos (the classical
    /// fill's quality on photographs next to OpenCV's), or all (all but inpaint-20,
    /// batch-weather and classical-photos).
    /// Random weights in the real architectures; nothing is downloaded.
    #[arg(long = "workload", value_name = "NAME")]
    pub workloads: Vec<String>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// The tiny fixture models at 8x8 latents (other workloads: their models at 8x8 latents),
    /// to check a benchmark script end to end on a slow device, not to time anything.
    #[arg(long)]
    pub small: bool,
}

/// The model workloads, in order.
pub const WORKLOADS: [&str; 8] = [
    "conv3x3",
    "unet-step",
    "text-encoder",
    "vae-encode",
    "vae-decode",
    "asym-decode",
    "augan",
    "inpaint-20",
];

/// Peak resident memory of this process so far (Linux VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `f` once to warm up, then `runs` times; seconds per run. `runs` = 0: one cold run,
/// no warm-up (for the workloads that take many minutes).
pub(crate) fn timed(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    if runs > 0 {
        f();
    }
    // The kernel-time breakdown covers the timed runs only.
    clearpaint_core::cpu::take_op_times();
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// One model workload on `dev`: per-run seconds.
fn model_workload(
    name: &str,
    runs: usize,
    dev: &burn::tensor::Device,
    selected: &device::Selected,
    lat: usize,
) -> Result<Vec<f64>> {
    let px = 8 * lat;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};
    use clearpaint_core::models::{augan, clip, unet, vae};
    let sync4 = |t: Tensor<4>| {
        let _ = t.sum().into_scalar::<f32>();
    };
    let noise = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), dev);
    // At the run's precision, as a pipeline would load them.
    let unet_dtype = selected.half.for_model(Model::Unet);
    let dec_dtype = selected.half.for_model(Model::VaeDecoder);
    Ok(match name {
        "conv3x3" => {
            // The UNet's most common layer: 3x3 conv 320 -> 320 on 2x320x64x64 (15.1 GFLOP).
            let conv = burn::nn::conv::Conv2dConfig::new([320, 320], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(dev);
            let x = noise([2, 320, lat, lat]);
            timed(runs, || {
                sync4(clearpaint_core::cpu::conv2d(&conv, x.clone()))
            })
        }
        "unet-step" => {
            // The real SD 1.5 inpainting UNet at 512x512 (64x64 latents), batch 2 (guidance).
            let config: unet::UNetConfig = serde_json::from_str(include_str!(
                "../../tools/reference/fixtures/unet_sd15_inpaint_config.json"
            ))?;
            let model = unet::UNet2DConditionModel::new(&config, dev).with_dtype(unet_dtype);
            let x = noise([2, 9, lat, lat]);
            let ctx = Tensor::<3>::random([2, 77, 768], Distribution::Normal(0.0, 1.0), dev);
            timed(runs, || {
                sync4(model.forward(x.clone(), &[500.0, 500.0], &ctx))
            })
        }
        "text-encoder" => {
            let model = clearpaint_core::precision::cast_module(
                clip::ClipTextModel::new(&clip::ClipTextConfig::sd1(), dev),
                selected.half.for_model(Model::TextEncoder),
            );
            let ids: Vec<i64> = (0..77).map(|i| (i * 613 % 49408) as i64).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 77]), dev);
            timed(runs, || {
                let _ = model.forward(ids.clone()).sum().into_scalar::<f32>();
            })
        }
        "vae-encode" => {
            let model = vae::AutoencoderKL::new(&vae::VaeConfig::sd1(), dev);
            let x = noise([1, 3, px, px]).clamp(-1.0, 1.0);
            timed(runs, || sync4(model.encode(x.clone()).mean))
        }
        "vae-decode" => {
            let model =
                vae::AutoencoderKL::new(&vae::VaeConfig::sd1(), dev).with_decoder_dtype(dec_dtype);
            let z = noise([1, 4, lat, lat]);
            timed(runs, || sync4(model.decode(z.clone(), None)))
        }
        "asym-decode" => {
            let model = vae::AutoencoderKL::new(&vae::VaeConfig::asymmetric_x1_5(), dev)
                .with_decoder_dtype(dec_dtype);
            let z = noise([1, 4, lat, lat]);
            let image = noise([1, 3, px, px]).clamp(-1.0, 1.0);
            let mask = noise([1, 1, px, px]).greater_elem(0.0).float();
            timed(runs, || {
                sync4(model.decode(z.clone(), Some((image.clone(), mask.clone()))))
            })
        }
        "augan" => {
            let config = augan::AuganConfig {
                ngf: 64,
                transfer: true,
                uncertainty: true,
            };
            let model = augan::AuganGenerator::new(config, dev);
            let x = noise([1, 3, 256, 512]).clamp(-1.0, 1.0);
            timed(runs, || {
                let out = model.forward(x.clone(), true);
                sync4(out.image);
            })
        }
        "inpaint-20" => inpaint_workload(runs, dev, selected, px as u32)?,
        other => anyhow::bail!(
            "unknown workload '{other}' (one of: {}, all)",
            WORKLOADS.join(", ")
        ),
    })
}

/// The `inpaint-20` workload: a 20-step 512x512 inpainting run with randomly initialised SD 1.5 models and
/// the asymmetric decoder.
fn inpaint_workload(
    runs: usize,
    dev: &burn::tensor::Device,
    selected: &device::Selected,
    px: u32,
) -> Result<Vec<f64>> {
    use clearpaint_core::models::{clip, unet, vae};
    use clearpaint_core::pipelines::inpaint::{self, InpaintModels};
    let config: unet::UNetConfig = serde_json::from_str(include_str!(
        "../../tools/reference/fixtures/unet_sd15_inpaint_config.json"
    ))?;
    let clip_config = clip::ClipTextConfig::sd1();
    let sd = inpaint::SdModels {
        unet: unet::UNet2DConditionModel::new(&config, dev)
            .with_dtype(selected.half.for_model(Model::Unet)),
        unet_config: config,
        scheduler_config: clearpaint_core::schedulers::SchedulerConfig::sd15(),
        vae: None,
        asym_vae: Some((
            vae::AutoencoderKL::new(&vae::VaeConfig::asymmetric_x1_5(), dev)
                .with_decoder_dtype(selected.half.for_model(Model::VaeDecoder)),
            vae::VaeConfig::asymmetric_x1_5(),
        )),
        device: dev.clone(),
        max_tensor_bytes: selected.max_tensor_bytes,
        model_name: "bench".into(),
    };
    let models = InpaintModels {
        sd,
        text_encoder: clearpaint_core::precision::cast_module(
            clip::ClipTextModel::new(&clip_config, dev),
            selected.half.for_model(Model::TextEncoder),
        ),
        tokenizer: clearpaint_core::models::tokenizer::ClipTokenizer::bundled(),
    };
    Ok(time_inpaint_20(runs, &models, px))
}

/// 20 inpainting steps on a `px` x `px` image with a centred square mask, the asymmetric
/// decoder: per-run seconds.
pub(crate) fn time_inpaint_20(
    runs: usize,
    models: &clearpaint_core::pipelines::inpaint::InpaintModels,
    px: u32,
) -> Vec<f64> {
    use clearpaint_core::pipelines::inpaint::{self, DecoderChoice, InpaintRequest};
    let img = RgbaImage::from_fn(px, px, |x, y| {
        Rgba([(x / 2) as u8, (y / 2) as u8, 128, 255])
    });
    let (lo, hi) = (px / 4, 3 * px / 4);
    let mask = GrayImage::from_fn(px, px, |x, y| {
        Luma([if (lo..hi).contains(&x) && (lo..hi).contains(&y) {
            255
        } else {
            0
        }])
    });
    let req = InpaintRequest {
        prompt: "a red barn".into(),
        steps: 20,
        decoder: DecoderChoice::Asymmetric,
        region: inpaint::Region::Full,
        size: clearpaint_core::pipelines::region::WorkingSize::Exact(px, px),
        ..Default::default()
    };
    let cancel = clearpaint_core::progress::CancelToken::new();
    timed(runs, || {
        let _ = inpaint::run(
            models,
            &img,
            &mask,
            &req,
            &clearpaint_core::progress::NoProgress,
            &cancel,
        )
        .expect("inpaint");
    })
}

fn model_bench(args: &BenchArgs, choice: DeviceChoice) -> Result<()> {
    let selected = clearpaint::placement::select(choice)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut names: Vec<&str> = Vec::new();
    for w in &args.workloads {
        if w == "all" {
            names.extend(WORKLOADS.iter().filter(|w| **w != "inpaint-20"));
        } else {
            names.push(w.as_str());
        }
    }
    println!(
        "model workloads on {} ({threads} threads), {} run(s) after a warm-up",
        selected.description, args.runs
    );
    println!("workload         median       min       max   peak RSS   device memory (pools)");
    let mut results = Vec::new();
    for name in names {
        if name == "classical-photos" {
            results.extend(crate::bench_quality::classical_photos()?);
            continue;
        }
        if name == "batch-weather" {
            for (setting, prefetch, ips, secs) in crate::batch::bench::weather(&selected)? {
                results.push(serde_json::json!({
                    "workload": name,
                    "setting": setting,
                    "impl": "clearpaint",
                    "device": selected.description,
                    "threads": threads,
                    "prefetch": prefetch,
                    "images_per_s": ips,
                    "total_s": secs,
                }));
            }
            continue;
        }
        selected.device.memory_cleanup();
        let times =
            match args.small {
                true => crate::bench_small::workload(name, args.runs, &selected).unwrap_or_else(
                    || model_workload(name, args.runs, &selected.device, &selected, 8),
                )?,
                false => model_workload(name, args.runs, &selected.device, &selected, 64)?,
            };
        let (med, min, max) = stats(times.clone());
        let peak = peak_rss_mib();
        // The device's pools keep their pages, so what they hold after the runs is the
        // workload's high-water mark (weights + the largest activations at once).
        let device_mib = (!selected.is_cpu)
            .then(|| selected.device.memory_pool_usage())
            .flatten()
            .map(|u| u.bytes_reserved as f64 / (1u64 << 20) as f64);
        let mib = |v: Option<f64>| v.map(|p| format!("{p:.0} MiB")).unwrap_or("n/a".into());
        println!(
            "{name:14} {med:8.3}s {min:8.3}s {max:8.3}s   {}   {}",
            mib(peak),
            mib(device_mib)
        );
        // Where the time went (clearpaint's own CPU kernels; zero on wgpu).
        let ops = clearpaint_core::cpu::take_op_times();
        let per_run = |s: f64| s / times.len() as f64;
        let kernels = per_run(ops.conv_s + ops.attention_s + ops.group_norm_s + ops.linear_s);
        if kernels > 0.0 {
            println!(
                "  per run: conv {:.3}s, attention {:.3}s, group norm {:.3}s, linear {:.3}s, \
                 the rest {:.3}s",
                per_run(ops.conv_s),
                per_run(ops.attention_s),
                per_run(ops.group_norm_s),
                per_run(ops.linear_s),
                (times.iter().sum::<f64>() / times.len() as f64 - kernels).max(0.0)
            );
        }
        results.push(serde_json::json!({
            "workload": name,
            "impl": "clearpaint",
            "device": selected.description,
            "threads": threads,
            "runs_s": times,
            "median_s": med,
            "min_s": min,
            "max_s": max,
            "peak_rss_mib": peak,
            "device_reserved_mib": device_mib,
            "precision": selected.half.name(),
            "small": args.small,
        }));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        clearpaint_core::files::write_atomic(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
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
    let selected = clearpaint::placement::select(choice)?;
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
    if !args.workloads.is_empty() {
        return model_bench(args, choice);
    }
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
