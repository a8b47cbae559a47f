//! `clearpaint weather` end to end, with the AU-GAN parity fixture as the model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{GenericImageView, ImageFormat, Rgba, RgbaImage};

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures/augan_tiny.safetensors")
}

fn clearpaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .output()
        .expect("run clearpaint")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A night-ish test picture: dark gradient with a few bright "lights".
fn night(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        let light = ((x as i32 - w as i32 / 3).pow(2) + (y as i32 - h as i32 / 2).pow(2)) < 400;
        if light {
            Rgba([250, 240, 200, 255])
        } else {
            Rgba([
                (x * 40 / w) as u8,
                (y * 30 / h) as u8,
                40 + (x * 20 / w) as u8,
                255,
            ])
        }
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn jpeg_comes_back_at_its_size_with_uncertainty_map() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("street.jpg");
    image::DynamicImage::ImageRgba8(night(1000, 700))
        .to_rgb8()
        .save_with_format(&input, ImageFormat::Jpeg)
        .unwrap();
    let out = dir.path().join("out");
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&input),
        "--out",
        s(&out),
        "--uncertainty",
        "--overlay",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let result = image::open(out.join("street.png")).unwrap();
    assert_eq!(result.dimensions(), (1000, 700));
    let sigma = image::open(out.join("street_uncertainty.png")).unwrap();
    assert_eq!(sigma.dimensions(), (1000, 700));
    let overlay = image::open(out.join("street_overlay.png")).unwrap();
    assert_eq!(overlay.dimensions(), (1000, 700));

    // The network changed the picture (it is not a copy of the input).
    let src = image::open(&input).unwrap().to_rgb8();
    let res = result.to_rgb8();
    let diff: u64 = src
        .pixels()
        .zip(res.pixels())
        .map(|(a, b)| {
            (0..3)
                .map(|c| (a[c] as i64 - b[c] as i64).unsigned_abs())
                .sum::<u64>()
        })
        .sum();
    assert!(diff > 1000 * 700, "output too close to the input");

    // σ map pixels are plasma colours (blue channel high at low σ, never all gray).
    let sig = sigma.to_rgb8();
    assert!(sig.pixels().any(|p| p[0] != p[1] || p[1] != p[2]));

    let text = clearpaint_core::imaging::png_text(out.join("street.png")).unwrap();
    let get = |k: &str| {
        text.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("clearpaint:model").as_deref(),
        Some("AU-GAN augan_tiny.safetensors")
    );
    assert_eq!(get("clearpaint:size").as_deref(), Some("256x512"));
    assert_eq!(get("clearpaint:source").as_deref(), Some("street.jpg"));
}

#[test]
fn folders_alpha_and_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let mut with_alpha = night(90, 50);
    with_alpha.put_pixel(3, 4, Rgba([10, 10, 10, 0]));
    with_alpha.save(inputs.join("a.png")).unwrap();
    image::DynamicImage::ImageRgba8(night(64, 64))
        .to_rgb8()
        .save(inputs.join("b.png"))
        .unwrap();
    std::fs::write(
        inputs.join("broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    std::fs::write(inputs.join("notes.txt"), b"ignored: not an image").unwrap();
    let out = dir.path().join("out");
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&inputs),
        "--out",
        s(&out),
        "--size",
        "32x64",
    ]);
    assert!(!o.status.success(), "a failed image must fail the run");
    let err = stderr(&o);
    let broken: Vec<&str> = err.lines().filter(|l| l.contains("broken.jpg")).collect();
    assert_eq!(broken.len(), 1, "{err}");
    assert!(broken[0].starts_with("error: "), "{err}");
    assert!(err.contains("2 of 3 image(s) written"), "{err}");
    assert!(!out.join("broken.png").exists());

    let a = image::open(out.join("a.png")).unwrap();
    assert_eq!(a.dimensions(), (90, 50));
    assert_eq!(a.color(), image::ColorType::Rgba8, "alpha is kept");
    assert_eq!(a.to_rgba8().get_pixel(3, 4)[3], 0);
    let b = image::open(out.join("b.png")).unwrap();
    assert_eq!(b.dimensions(), (64, 64));
    assert_eq!(b.color(), image::ColorType::Rgb8);
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn existing_outputs_are_not_overwritten_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.png");
    night(40, 40).save(&input).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("x.png"), b"precious").unwrap();
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&input),
        "--out",
        s(&out),
        "--size",
        "32x32",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists; pass --overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(out.join("x.png")).unwrap(), b"precious");
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&input),
        "--out",
        s(&out),
        "--size",
        "32x32",
        "--overwrite",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(out.join("x.png")).unwrap().dimensions(),
        (40, 40)
    );
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.png");
    night(16, 16).save(&input).unwrap();
    let out = dir.path().join("out");

    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&input),
        "--out",
        s(&out),
        "--size",
        "30x64",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("multiples of 4"), "{}", stderr(&o));

    let missing = dir.path().join("nope.safetensors");
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&missing),
        s(&input),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("nope.safetensors"), "{err}");

    // The output "folder" is a file.
    let file_out = dir.path().join("file");
    std::fs::write(&file_out, b"x").unwrap();
    let o = clearpaint(&[
        "weather",
        "--model",
        s(&model()),
        s(&input),
        "--out",
        s(&file_out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("file"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file_out).unwrap(), b"x");

    // A weights file that is not AU-GAN.
    let other = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures/loader_block_bf16.safetensors");
    let o = clearpaint(&["weather", "--model", s(&other), s(&input), "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not an AU-GAN weights file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn day_to_night_runs_the_other_generator_of_the_same_file() {
    use clearpaint_core::models::augan::{AuganGenerator, Direction};
    use clearpaint_core::pipelines::weather::{self, WeatherRequest};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("day.png");
    night(64, 40).save(&input).unwrap();
    let m = model();
    let run = |direction: &str, out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut a = vec!["weather", "--model", s(&m), s(&input), "--out", s(&out)];
        a.extend(["--size", "32x64", "--direction", direction]);
        a.extend(extra);
        (clearpaint(&a), out)
    };
    let (o, nd) = run("night-to-day", "nd", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, dn) = run("day-to-night", "dn", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("day-to-night"), "{}", stderr(&o));
    let got = image::open(dn.join("day.png")).unwrap().to_rgba8();
    assert_ne!(got, image::open(nd.join("day.png")).unwrap().to_rgba8());
    // Exactly the pipeline's day-to-night result.
    let dev = burn::tensor::Device::flex();
    let (g, _) = AuganGenerator::load_direction(model(), Direction::DayToNight, &dev).unwrap();
    let req = WeatherRequest {
        size: "32x64".parse().unwrap(),
        uncertainty: false,
    };
    let want = weather::run(&g, &dev, &image::open(&input).unwrap().to_rgba8(), &req).unwrap();
    assert_eq!(got, want.image);
    // The day-to-night generator has no uncertainty head: a one-line error, nothing written.
    let (o, out) = run("day-to-night", "dn_sigma", &["--uncertainty"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only the night-to-day generator"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("day.png").exists());
    let (o, _) = run("sideways", "x", &[]);
    assert!(!o.status.success() && stderr(&o).contains("night-to-day, day-to-night"));
}
