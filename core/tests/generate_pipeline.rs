//! Text-to-image against diffusers' StableDiffusionPipeline (make_generate_fixtures.py): the
//! tiny 4-channel pipeline, the same initial latents, three schedulers, guidance on and off,
//! the folder's VAE and the asymmetric decoder without condition; and a 9-channel model
//! generating with A1111's all-masked conditioning.

use clearpaint_core::device;
use clearpaint_core::pipelines::generate::{self, GenerateRequest};
use clearpaint_core::pipelines::inpaint::{DecoderChoice, InpaintModels, InpaintRequest};
use clearpaint_core::progress::{CancelToken, NoProgress};
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::testing::fixture;
use clearpaint_core::weights::SafetensorsFile;

fn request(kind: SchedulerKind, guidance: f64, latents: Vec<f32>) -> GenerateRequest {
    GenerateRequest {
        base: InpaintRequest {
            prompt: "a red fox in the snow".into(),
            negative_prompt: "blurry".into(),
            steps: 4,
            guidance,
            scheduler: kind,
            latents: Some(latents),
            ..InpaintRequest::default()
        },
        width: 40,
        height: 32,
    }
}

/// The largest difference of an RGB channel from the reference's `[h, w, 3]` bytes.
fn max_diff(img: &image::RgbaImage, want: &[i64]) -> i64 {
    img.pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .zip(want)
        .map(|(v, w)| (v as i64 - w).abs())
        .max()
        .unwrap()
}

#[test]
fn matches_diffusers_for_schedulers_guidance_and_decoders() {
    let io = SafetensorsFile::open(fixture("generate_io.safetensors")).unwrap();
    let latents = io.read_f32("latents").unwrap();
    let cpu = device::cpu();
    for (decoder, dname) in [
        (DecoderChoice::Asymmetric, "asymmetric"),
        (DecoderChoice::Standard, "standard"),
    ] {
        let asym = fixture("vae_asym_tiny");
        let vae = (decoder == DecoderChoice::Asymmetric).then_some(asym.as_path());
        let models = InpaintModels::load(&fixture("tiny_sd_inpaint4"), vae, decoder, &cpu).unwrap();
        for kind in [
            SchedulerKind::Ddim,
            SchedulerKind::Euler,
            SchedulerKind::DpmPp2mKarras,
        ] {
            for g in [1.0, 7.5] {
                let out = generate::run(
                    &models,
                    &request(kind, g, latents.clone()),
                    &NoProgress,
                    &CancelToken::new(),
                )
                .unwrap();
                assert_eq!(out.image.dimensions(), (40, 32));
                let key = format!("out.{}.{g:?}.{dname}", kind.name());
                let want = io.read_ints(&key).unwrap();
                let max = max_diff(&out.image, &want);
                eprintln!("{key}: max diff {max}/255");
                assert!(max <= 1, "{key}: max pixel difference {max}/255");
            }
        }
    }
}

#[test]
fn a_nine_channel_model_generates_and_sizes_are_checked() {
    let cpu = device::cpu();
    let models = InpaintModels::load(
        &fixture("tiny_sd_inpaint9"),
        None,
        DecoderChoice::Standard,
        &cpu,
    )
    .unwrap();
    let mut req = request(SchedulerKind::Ddim, 7.5, vec![0.5; 4 * 4 * 5]);
    let a = generate::run(&models, &req, &NoProgress, &CancelToken::new())
        .unwrap()
        .image;
    req.base.prompt = "a blue boat".into();
    let b = generate::run(&models, &req, &NoProgress, &CancelToken::new())
        .unwrap()
        .image;
    assert_eq!(a.dimensions(), (40, 32));
    assert_ne!(a, b, "the prompt changed nothing");
    req.width = 41;
    let e = generate::run(&models, &req, &NoProgress, &CancelToken::new())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("--width 41") && e.contains("multiple of 8"),
        "{e}"
    );
}

#[test]
fn img2img_matches_diffusers_with_both_decoders() {
    let io = SafetensorsFile::open(fixture("generate_io.safetensors")).unwrap();
    let latents = io.read_f32("latents").unwrap();
    let px = io.read_ints("image").unwrap();
    let image = image::RgbaImage::from_fn(40, 32, |x, y| {
        let i = ((y * 40 + x) * 3) as usize;
        image::Rgba([px[i] as u8, px[i + 1] as u8, px[i + 2] as u8, 255])
    });
    let cpu = device::cpu();
    for (decoder, dname) in [
        (DecoderChoice::Asymmetric, "asymmetric"),
        (DecoderChoice::Standard, "standard"),
    ] {
        let asym = fixture("vae_asym_tiny");
        let vae = (decoder == DecoderChoice::Asymmetric).then_some(asym.as_path());
        let models = InpaintModels::load(&fixture("tiny_sd_inpaint4"), vae, decoder, &cpu).unwrap();
        for kind in [SchedulerKind::Ddim, SchedulerKind::DpmPp2mKarras] {
            let mut req = request(kind, 7.5, latents.clone()).base;
            req.steps = 5;
            req.strength = 0.6;
            let out =
                generate::img2img(&models, &image, &req, &NoProgress, &CancelToken::new()).unwrap();
            let key = format!("img2img.{}.{dname}", kind.name());
            let want = io.read_ints(&key).unwrap();
            let max = max_diff(&out.image, &want);
            eprintln!("{key}: max diff {max}/255");
            assert!(max <= 1, "{key}: max pixel difference {max}/255");
        }
    }
}

#[test]
fn masked_img2img_matches_diffusers_inpainting_at_a_strength() {
    use clearpaint_core::pipelines::inpaint::{self, Region};
    let io = SafetensorsFile::open(fixture("generate_io.safetensors")).unwrap();
    let pio = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = clearpaint_core::testing::pipeline_inputs(&pio);
    let cpu = device::cpu();
    for (decoder, dname) in [
        (DecoderChoice::Asymmetric, "asymmetric"),
        (DecoderChoice::Standard, "standard"),
    ] {
        let asym = fixture("vae_asym_tiny");
        let vae = (decoder == DecoderChoice::Asymmetric).then_some(asym.as_path());
        let models = InpaintModels::load(&fixture("tiny_sd_inpaint4"), vae, decoder, &cpu).unwrap();
        for kind in [SchedulerKind::Ddim, SchedulerKind::Euler] {
            let mut req = request(kind, 7.5, latents.clone()).base;
            req.steps = 5;
            req.strength = 0.6;
            req.region = Region::Full;
            req.paste_back = false;
            req.decoder = decoder;
            let out = inpaint::run(
                &models,
                &image,
                &mask,
                &req,
                &NoProgress,
                &CancelToken::new(),
            )
            .unwrap();
            let key = format!("img2img_masked.{}.{dname}", kind.name());
            let max = max_diff(&out.image, &io.read_ints(&key).unwrap());
            eprintln!("{key}: max diff {max}/255");
            assert!(max <= 1, "{key}: max pixel difference {max}/255");
        }
    }
}
