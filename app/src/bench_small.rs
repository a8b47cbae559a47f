//! `clearpaint bench --small`: the model workloads on the tiny fixture models
//! (`tools/reference/fixtures`: the tiny SD inpainting pipeline, the tiny VAEs) at 8x8
//! latents, loaded through the real loaders at the run's precision, so a benchmark script
//! (`tools/gpu-bench.sh --small`) can be checked end to end on a slow device. Their timings
//! mean nothing; `tools/reference/bench_torch.py --small` uses the same models.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use clearpaint_core::device::Selected;
use clearpaint_core::models::{clip, unet, vae};
use clearpaint_core::pipelines::inpaint::{DecoderChoice, InpaintModels};
use clearpaint_core::precision::Model;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures")
        .join(name)
}

/// One workload on the tiny models: per-run seconds, or `None` for a workload without a
/// small form.
pub fn workload(name: &str, runs: usize, selected: &Selected) -> Option<Result<Vec<f64>>> {
    let dev = &selected.device;
    let sync = |t: Tensor<4>| {
        let _ = t.sum().into_scalar::<f32>();
    };
    let noise = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), dev);
    let pipeline = fixture("tiny_sd_inpaint9");
    let run = || -> Result<Vec<f64>> {
        Ok(match name {
            "unet-step" => {
                let dtype = selected.half.for_model(Model::Unet);
                let m = unet::load_folder_as(pipeline.join("unet"), dev, dtype)?.model;
                let x = noise([2, 9, 8, 8]);
                let ctx = Tensor::<3>::random([2, 77, 16], Distribution::Normal(0.0, 1.0), dev);
                super::bench::timed(runs, || sync(m.forward(x.clone(), &[500.0, 500.0], &ctx)))
            }
            "text-encoder" => {
                let dtype = selected.half.for_model(Model::TextEncoder);
                let m = clip::load_folder_as(pipeline.join("text_encoder"), dev, dtype)?.model;
                let ids: Vec<i64> = (0..77).map(|i| (i * 61 % 526) as i64).collect();
                let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 77]), dev);
                super::bench::timed(runs, || {
                    let _ = m.forward(ids.clone()).sum().into_scalar::<f32>();
                })
            }
            "vae-decode" | "asym-decode" => {
                let dtype = selected.half.for_model(Model::VaeDecoder);
                let dir = if name == "vae-decode" {
                    "vae_kl_tiny"
                } else {
                    "vae_asym_tiny"
                };
                let loaded = vae::load_folder(fixture(dir), dev)?;
                let px = 8 * loaded.config.scale_factor();
                let m = loaded.model.with_decoder_dtype(dtype);
                let z = noise([1, 4, 8, 8]);
                let cond = (name == "asym-decode").then(|| {
                    let image = noise([1, 3, px, px]).clamp(-1.0, 1.0);
                    (image, noise([1, 1, px, px]).greater_elem(0.0).float())
                });
                super::bench::timed(runs, || sync(m.decode(z.clone(), cond.clone())))
            }
            "inpaint-20" => {
                let vae = fixture("vae_asym_tiny");
                let models = InpaintModels::load(
                    &pipeline,
                    Some(&vae),
                    DecoderChoice::Asymmetric,
                    selected,
                )?;
                super::bench::time_inpaint_20(runs, &models, 64)
            }
            _ => return Err(anyhow::anyhow!("{name}: no --small form")),
        })
    };
    matches!(
        name,
        "unet-step" | "text-encoder" | "vae-decode" | "asym-decode" | "inpaint-20"
    )
    .then(run)
}
