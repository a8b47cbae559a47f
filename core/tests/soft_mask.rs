//! Soft masks (`--mask-mode soft`) against differential diffusion as the paper's code runs it
//! (make_soft_fixtures.py: exx8/differential-diffusion's StableDiffusionDiffImg2ImgPipeline on
//! the tiny 4-channel pipeline, and on the tiny 9-channel one fed diffusers' inpainting
//! conditioning), the same noise, DDIM / Euler / PNDM, strength 1 and 0.7, both decoders; and a
//! black-and-white mask in soft mode giving exactly the binary run.

use clearpaint_core::device;
use clearpaint_core::pipelines::inpaint::{
    self, DecoderChoice, InpaintModels, InpaintRequest, MaskMode, Region, WorkingSize,
};
use clearpaint_core::progress::{CancelToken, NoProgress};
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::testing::{fixture, pipeline_inputs};
use clearpaint_core::weights::SafetensorsFile;

fn request(
    kind: SchedulerKind,
    strength: f64,
    decoder: DecoderChoice,
    latents: Vec<f32>,
) -> InpaintRequest {
    InpaintRequest {
        prompt: "a red fox in the snow".into(),
        negative_prompt: "blurry".into(),
        steps: 6,
        guidance: 7.5,
        strength,
        scheduler: kind,
        latents: Some(latents),
        region: Region::Full,
        size: WorkingSize::Native,
        mask_mode: MaskMode::Soft,
        paste_back: false,
        decoder,
        ..InpaintRequest::default()
    }
}

fn max_diff(img: &image::RgbaImage, want: &[i64]) -> i64 {
    img.pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .zip(want)
        .map(|(v, w)| (v as i64 - w).abs())
        .max()
        .unwrap()
}

fn models(channels: &str, decoder: DecoderChoice) -> InpaintModels {
    let asym = fixture("vae_asym_tiny");
    let vae = (decoder == DecoderChoice::Asymmetric).then_some(asym.as_path());
    let dir = fixture(&format!("tiny_sd_inpaint{channels}"));
    InpaintModels::load(&dir, vae, decoder, &device::cpu()).unwrap()
}

#[test]
fn soft_masks_match_differential_diffusion() {
    let io = SafetensorsFile::open(fixture("soft_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    for channels in ["4", "9"] {
        for (decoder, dname) in [
            (DecoderChoice::Standard, "standard"),
            (DecoderChoice::Asymmetric, "asymmetric"),
        ] {
            let models = models(channels, decoder);
            for kind in [
                SchedulerKind::Ddim,
                SchedulerKind::Euler,
                SchedulerKind::Pndm,
            ] {
                for strength in [1.0, 0.7] {
                    let req = request(kind, strength, decoder, latents.clone());
                    let out = inpaint::run(
                        &models,
                        &image,
                        &mask,
                        &req,
                        &NoProgress,
                        &CancelToken::new(),
                    )
                    .unwrap();
                    let key = format!("soft.{channels}.{}.{strength:?}.{dname}", kind.name());
                    let max = max_diff(&out.image, &io.read_ints(&key).unwrap());
                    eprintln!("{key}: max diff {max}/255");
                    assert!(max <= 1, "{key}: max pixel difference {max}/255");
                }
            }
        }
    }
}

#[test]
fn a_black_and_white_mask_in_soft_mode_is_the_binary_run() {
    let io = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    for channels in ["4", "9"] {
        let models = models(channels, DecoderChoice::Asymmetric);
        let mut req = request(
            SchedulerKind::Ddim,
            1.0,
            DecoderChoice::Asymmetric,
            latents.clone(),
        );
        req.paste_back = true;
        let run = |req: &InpaintRequest| {
            inpaint::run(
                &models,
                &image,
                &mask,
                req,
                &NoProgress,
                &CancelToken::new(),
            )
            .unwrap()
        };
        let soft = run(&req);
        req.mask_mode = MaskMode::Binary;
        let binary = run(&req);
        assert_eq!(soft.image, binary.image, "{channels}-channel");
        assert!(soft.notes.iter().any(|n| n.contains("no grey levels")));
    }
}

#[test]
fn soft_runs_keep_black_pixels_under_paste_back_and_say_so_in_the_parameters() {
    let io = SafetensorsFile::open(fixture("soft_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    let models = models("9", DecoderChoice::Asymmetric);
    let mut req = request(SchedulerKind::Ddim, 1.0, DecoderChoice::Asymmetric, latents);
    req.paste_back = true;
    req.mask_blur = 0;
    let out = inpaint::run(
        &models,
        &image,
        &mask,
        &req,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    let mut changed = 0;
    for (x, y, p) in out.image.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, image.get_pixel(x, y), "black pixel ({x}, {y}) changed");
        } else if p != image.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 0, "nothing under the mask changed");
    let params = inpaint::a1111_parameters(&req, &models, 40, 32);
    assert!(params.contains("Mask mode: soft"), "{params}");
}
