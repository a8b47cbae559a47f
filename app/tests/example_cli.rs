//! `clearpaint inpaint --example` and `batch inpaint --example` end to end: the tiny
//! Paint-by-Example folder with the fixture's latents gives diffusers' PaintByExamplePipeline
//! image (make_example_fixtures.py) within 1/255, with the exemplar in the PNG's parameters;
//! the wrong kind of folder and the classical engine are one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clearpaint_core::weights::SafetensorsFile;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn clearpaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .output()
        .expect("run clearpaint")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The `[h, w, 3]` bytes of `key` in `io`, saved as a PNG at `path`.
fn save_rgb(io: &SafetensorsFile, key: &str, path: &Path) {
    let e = io.entry(key).unwrap();
    let px: Vec<u8> = io
        .read_ints(key)
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    image::RgbImage::from_raw(e.shape[1] as u32, e.shape[0] as u32, px)
        .unwrap()
        .save(path)
        .unwrap();
}

/// Image, mask, exemplar and latents files in `dir`.
fn inputs(dir: &Path) -> [PathBuf; 4] {
    let pio = SafetensorsFile::open(fixtures().join("pipeline_io.safetensors")).unwrap();
    let io = SafetensorsFile::open(fixtures().join("example_io.safetensors")).unwrap();
    let (image, mask, example, latents) = (
        dir.join("in.png"),
        dir.join("mask.png"),
        dir.join("ref.png"),
        dir.join("latents.safetensors"),
    );
    save_rgb(&pio, "image", &image);
    let m: Vec<u8> = pio
        .read_ints("mask")
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    image::GrayImage::from_raw(40, 32, m)
        .unwrap()
        .save(&mask)
        .unwrap();
    save_rgb(&io, "exemplar", &example);
    let bytes: Vec<u8> = pio
        .read_f32("latents")
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 4, 4, 5], &bytes)
            .unwrap();
    safetensors::serialize_to_file([("latents", view)], None, &latents).unwrap();
    [image, mask, example, latents]
}

fn max_diff(path: &Path, key: &str) -> i64 {
    let io = SafetensorsFile::open(fixtures().join("example_io.safetensors")).unwrap();
    let want = io.read_ints(key).unwrap();
    let got = image::open(path).unwrap().to_rgb8();
    got.as_raw()
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as i64 - b).abs())
        .max()
        .unwrap()
}

#[test]
fn inpaint_with_an_exemplar_matches_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let [image, mask, example, latents] = inputs(dir.path());
    let out = dir.path().join("out.png");
    let model = fixtures().join("tiny_pbe");
    let vae = fixtures().join("vae_asym_tiny");
    let o = clearpaint(&[
        "inpaint",
        "--model",
        s(&model),
        "--vae",
        s(&vae),
        "--image",
        s(&image),
        "--mask",
        s(&mask),
        "--example",
        s(&example),
        "--latents",
        s(&latents),
        "--steps",
        "4",
        "--guidance",
        "5",
        "--scheduler",
        "ddim",
        "--region",
        "full",
        "--paste-back",
        "off",
        "--seed",
        "3",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let max = max_diff(&out, "out.ddim.5.0.asymmetric");
    assert!(max <= 1, "max pixel difference {max}/255");
    let text = clearpaint_core::imaging::png_text(&out).unwrap();
    let params = &text.iter().find(|(k, _)| k == "parameters").unwrap().1;
    assert!(
        params.contains("Exemplar: ref.png") && params.contains("Sampler: DDIM"),
        "{params}"
    );
    assert!(params.contains("Decoder: asymmetric VQGAN"), "{params}");
}

#[test]
fn batch_inpaint_with_an_exemplar_and_wrong_folders() {
    let dir = tempfile::tempdir().unwrap();
    let [image, mask, example, _] = inputs(dir.path());
    let (images, masks, outs) = (
        dir.path().join("images"),
        dir.path().join("masks"),
        dir.path().join("outs"),
    );
    for d in [&images, &masks] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(&image, images.join("a.png")).unwrap();
    std::fs::copy(&mask, masks.join("a.png")).unwrap();
    let model = fixtures().join("tiny_pbe");
    let o = clearpaint(&[
        "batch",
        "inpaint",
        "--model",
        s(&model),
        "--images",
        s(&images),
        "--masks",
        s(&masks),
        "--out",
        s(&outs),
        "--example",
        s(&example),
        "--steps",
        "2",
        "--seed",
        "1",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let text = clearpaint_core::imaging::png_text(outs.join("a.png")).unwrap();
    assert!(
        text.iter()
            .any(|(k, v)| k == "clearpaint:engine" && v == "paint-by-example")
    );

    // An SD folder given for --example, a Paint-by-Example folder without it, the classical
    // engine with an exemplar: one line each, naming the folder or the option.
    let out = dir.path().join("x.png");
    let sd = fixtures().join("tiny_sd_inpaint9");
    let base = [
        "inpaint",
        "--image",
        s(&image),
        "--mask",
        s(&mask),
        "--out",
        s(&out),
        "--steps",
        "1",
    ];
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["--model", s(&sd), "--example", s(&example)],
            "no image_encoder/",
        ),
        (
            vec!["--model", s(&model), "--engine", "diffusion"],
            "--example REF.png",
        ),
        (
            vec![
                "--model",
                s(&model),
                "--example",
                s(&example),
                "--engine",
                "classical",
            ],
            "--example needs the diffusion engine",
        ),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let o = clearpaint(&args);
        let e = err(&o);
        assert!(!o.status.success() && e.contains(want), "{args:?}: {e}");
        assert!(!out.exists());
    }
}
