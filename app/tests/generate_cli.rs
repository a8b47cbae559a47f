//! `clearpaint generate` end to end: the tiny 4-channel pipeline with the fixture's latents
//! gives diffusers' StableDiffusionPipeline image (make_generate_fixtures.py) within 1/255, with
//! A1111's txt2img parameters; a bad size is an error and nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn clearpaint(command: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .arg(command)
        .args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .output()
        .expect("run clearpaint")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixture's io file and its latents written as a `--latents` file.
fn latents_file(dir: &Path) -> (clearpaint_core::weights::SafetensorsFile, PathBuf) {
    let io =
        clearpaint_core::weights::SafetensorsFile::open(fixtures().join("generate_io.safetensors"))
            .unwrap();
    let bytes: Vec<u8> = io
        .read_f32("latents")
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 4, 4, 5], &bytes)
            .unwrap();
    let latents = dir.join("latents.safetensors");
    safetensors::serialize_to_file([("latents", view)], None, &latents).unwrap();
    (io, latents)
}

fn parameters(path: &Path) -> String {
    let text = clearpaint_core::imaging::png_text(path).unwrap();
    text.into_iter().find(|(k, _)| k == "parameters").unwrap().1
}

#[test]
fn img2img_matches_diffusers_and_records_the_strength() {
    let dir = tempfile::tempdir().unwrap();
    let (io, latents) = latents_file(dir.path());
    let px: Vec<u8> = io
        .read_ints("image")
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let input = dir.path().join("in.png");
    image::RgbImage::from_raw(40, 32, px)
        .unwrap()
        .save(&input)
        .unwrap();
    let out = dir.path().join("out.png");
    let model = fixtures().join("tiny_sd_inpaint4");
    let o = clearpaint(
        "img2img",
        &[
            "--model",
            s(&model),
            "--image",
            s(&input),
            "--prompt",
            "a red fox in the snow",
            "--negative-prompt",
            "blurry",
            "--strength",
            "0.6",
            "--steps",
            "5",
            "--scheduler",
            "ddim",
            "--latents",
            s(&latents),
            "--out",
            s(&out),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    let want = io.read_ints("img2img.ddim.standard").unwrap();
    let max = img
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as i64 - b).abs())
        .max()
        .unwrap();
    assert!(max <= 1, "max pixel difference {max}/255");
    assert!(
        parameters(&out).contains("Denoising strength: 0.6"),
        "{}",
        parameters(&out)
    );
}

#[test]
fn generate_matches_diffusers_and_writes_a1111_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (io, latents) = latents_file(dir.path());
    let out = dir.path().join("fox.png");
    let model = fixtures().join("tiny_sd_inpaint4");
    let o = clearpaint(
        "generate",
        &[
            "--model",
            s(&model),
            "--prompt",
            "a red fox in the snow",
            "--negative-prompt",
            "blurry",
            "--width",
            "40",
            "--height",
            "32",
            "--steps",
            "4",
            "--guidance",
            "7.5",
            "--scheduler",
            "euler",
            "--latents",
            s(&latents),
            "--seed",
            "3",
            "--out",
            s(&out),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (40, 32));
    let want = io.read_ints("out.euler.7.5.standard").unwrap();
    let max = img
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as i64 - b).abs())
        .max()
        .unwrap();
    assert!(max <= 1, "max pixel difference {max}/255");
    let params = parameters(&out);
    assert!(
        params.starts_with("a red fox in the snow\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, CFG scale: 7.5, Seed: 3, Size: 40x32"),
        "{params}"
    );
}

#[test]
fn a_size_that_is_not_a_multiple_of_8_is_an_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let model = fixtures().join("tiny_sd_inpaint4");
    let o = clearpaint(
        "generate",
        &[
            "--model",
            s(&model),
            "--width",
            "100",
            "--height",
            "30",
            "--out",
            s(&out),
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--width 100") && e.contains("multiple of 8"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn img2img_with_a_mask_reworks_only_the_masked_part_as_diffusers_inpainting() {
    let dir = tempfile::tempdir().unwrap();
    let (io, latents) = latents_file(dir.path());
    let pio =
        clearpaint_core::weights::SafetensorsFile::open(fixtures().join("pipeline_io.safetensors"))
            .unwrap();
    let px: Vec<u8> = io
        .read_ints("image")
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let input = dir.path().join("in.png");
    let src = image::RgbImage::from_raw(40, 32, px).unwrap();
    src.save(&input).unwrap();
    let m: Vec<u8> = pio
        .read_ints("mask")
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let mask = image::GrayImage::from_raw(40, 32, m).unwrap();
    let mask_path = dir.path().join("mask.png");
    mask.save(&mask_path).unwrap();
    let out = dir.path().join("out.png");
    let model = fixtures().join("tiny_sd_inpaint4");
    let vae = fixtures().join("vae_asym_tiny");
    let o = clearpaint(
        "img2img",
        &[
            "--model",
            s(&model),
            "--vae",
            s(&vae),
            "--image",
            s(&input),
            "--mask",
            s(&mask_path),
            "--prompt",
            "a red fox in the snow",
            "--negative-prompt",
            "blurry",
            "--strength",
            "0.6",
            "--steps",
            "5",
            "--scheduler",
            "ddim",
            "--latents",
            s(&latents),
            "--out",
            s(&out),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    let want = io.read_ints("img2img_masked.ddim.asymmetric").unwrap();
    // Away from the mask's edge (farther than the 4-pixel feather): diffusers' result inside,
    // the input exactly outside.
    let all_within = |x: u32, y: u32, v: u8| {
        (-5i32..=5).all(|dy| {
            (-5i32..=5).all(|dx| {
                let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                !(0..40).contains(&xx)
                    || !(0..32).contains(&yy)
                    || mask.get_pixel(xx as u32, yy as u32)[0] == v
            })
        })
    };
    let (mut inside, mut outside) = (0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if all_within(x, y, 255) {
            inside += 1;
            for c in 0..3 {
                let w = want[((y * 40 + x) * 3 + c) as usize];
                assert!(
                    (p[c as usize] as i64 - w).abs() <= 1,
                    "({x}, {y}): {p:?} vs {w}"
                );
            }
        } else if all_within(x, y, 0) {
            outside += 1;
            assert_eq!(
                p,
                src.get_pixel(x, y),
                "({x}, {y}) changed outside the mask"
            );
        }
    }
    assert!(
        inside > 20 && outside > 200,
        "{inside} inside, {outside} outside"
    );
    let params = parameters(&out);
    assert!(
        params.contains("Denoising strength: 0.6") && params.contains("Mask blur: 4"),
        "{params}"
    );
}
