//! The inpainting pipeline end to end against diffusers' StableDiffusionInpaintPipeline
//! (tools/reference/make_pipeline_fixtures.py): tiny random pipelines saved by diffusers,
//! the same latents, strength 1, full region, no blur or paste-back; every scheduler but Euler
//! Ancestral, 9- and 4-channel UNets, guidance 1 and 7.5, asymmetric and standard decoders.

use burn::tensor::Device;
use clearpaint_core::device::{self, DeviceChoice, Selected};
use clearpaint_core::pipelines::inpaint::{self, DecoderChoice, InpaintModels};
use clearpaint_core::progress::{CancelToken, NoProgress};
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::testing::{fixture, pipeline_inputs, pipeline_request, rel_err};
use clearpaint_core::weights::SafetensorsFile;

fn load(ch: usize, decoder: DecoderChoice, selected: &Selected) -> InpaintModels {
    InpaintModels::load(
        &fixture(&format!("tiny_sd_inpaint{ch}")),
        Some(&fixture("vae_asym_tiny")),
        decoder,
        selected,
    )
    .unwrap()
}

#[test]
fn matches_diffusers_for_every_scheduler_unet_guidance_and_decoder() {
    let io = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    let cpu = device::cpu();
    let mut worst = 0i64;
    for ch in [9, 4] {
        for (decoder, dname) in [
            (DecoderChoice::Asymmetric, "asymmetric"),
            (DecoderChoice::Standard, "standard"),
        ] {
            let models = load(ch, decoder, &cpu);
            for kind in [
                SchedulerKind::Ddim,
                SchedulerKind::Pndm,
                SchedulerKind::Euler,
                SchedulerKind::DpmPp2m,
                SchedulerKind::DpmPp2mKarras,
            ] {
                for g in [1.0, 7.5] {
                    let req = pipeline_request(kind, g, decoder, latents.clone());
                    let out = inpaint::run(
                        &models,
                        &image,
                        &mask,
                        &req,
                        &NoProgress,
                        &CancelToken::new(),
                    )
                    .unwrap();
                    assert_eq!(out.image.dimensions(), (40, 32));
                    let key = format!("out.{ch}.{}.{g:?}.{dname}", kind.name());
                    let want = io.read_ints(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
                    let mut max = 0i64;
                    for (i, p) in out.image.pixels().enumerate() {
                        for c in 0..3 {
                            max = max.max((p[c] as i64 - want[i * 3 + c]).abs());
                        }
                    }
                    eprintln!("{key}: max diff {max}/255");
                    assert!(max <= 2, "{key}: max pixel difference {max}/255 > 2");
                    worst = worst.max(max);
                }
            }
        }
    }
    eprintln!("worst: {worst}/255");
}

#[test]
fn wgpu_agrees_with_flex() {
    let io = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    let gpu = device::select(DeviceChoice::Gpu).expect("wgpu adapter");
    let cpu = device::cpu();
    let req = pipeline_request(
        SchedulerKind::DpmPp2m,
        7.5,
        DecoderChoice::Asymmetric,
        latents,
    );
    let run = |s: &Selected| {
        let models = load(9, DecoderChoice::Asymmetric, s);
        let out = inpaint::run(
            &models,
            &image,
            &mask,
            &req,
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
        out.image
            .pixels()
            .flat_map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
            .collect::<Vec<f32>>()
    };
    let (a, b) = (run(&cpu), run(&gpu));
    let err = rel_err(&b, &a);
    eprintln!("wgpu vs flex: {err:.3e}");
    assert!(err <= 1e-3, "{err}");
    let _ = Device::flex();
}

#[test]
fn cancelling_stops_within_a_step() {
    let io = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    let models = load(9, DecoderChoice::Standard, &device::cpu());
    let mut req = pipeline_request(SchedulerKind::Ddim, 7.5, DecoderChoice::Standard, latents);
    req.steps = 20;
    let cancel = CancelToken::new();
    let steps = std::sync::atomic::AtomicUsize::new(0);
    let progress = |stage: &str, done: usize, _total: usize| {
        if stage == "denoise" {
            steps.store(done, std::sync::atomic::Ordering::SeqCst);
            if done == 3 {
                cancel.cancel();
            }
        }
    };
    let r = inpaint::run(&models, &image, &mask, &req, &progress, &cancel);
    assert!(matches!(r, Err(inpaint::InpaintError::Cancelled)));
    assert_eq!(
        steps.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "stopped at the next step"
    );
}
