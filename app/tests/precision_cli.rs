//! `--precision` end to end: the tiny inpainting pipeline with the asymmetric decoder on wgpu
//! (lavapipe here) in f16 and in f32, and the refusals where f16 cannot run.

use std::path::Path;
use std::process::{Command, Output};

use image::{GrayImage, Luma, Rgba, RgbaImage};

#[allow(dead_code)]
mod common;
use common::{fixtures, s};

fn clearpaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(args)
        .env_remove("CLEARPAINT_PRECISION")
        .output()
        .expect("run clearpaint")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs the tiny pipeline on `device` at `precision`; the output image.
fn inpaint(dir: &Path, device: &str, precision: &str) -> (RgbaImage, String) {
    let (img, mask) = (dir.join("in.png"), dir.join("mask.png"));
    RgbaImage::from_fn(48, 40, |x, y| {
        Rgba([(x * 5) as u8, (y * 6) as u8, ((x + y) * 3) as u8, 255])
    })
    .save(&img)
    .unwrap();
    GrayImage::from_fn(48, 40, |x, y| {
        Luma([if (10..34).contains(&x) && (8..30).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(&mask)
    .unwrap();
    let out = dir.join(format!("out_{device}_{precision}.png"));
    let (model, vae) = (
        fixtures().join("tiny_sd_inpaint9"),
        fixtures().join("vae_asym_tiny"),
    );
    let o = clearpaint(&[
        "--device",
        device,
        "--precision",
        precision,
        "inpaint",
        "--model",
        s(&model),
        "--vae",
        s(&vae),
        "--image",
        s(&img),
        "--mask",
        s(&mask),
        "--out",
        s(&out),
        "--prompt",
        "a red fox",
        "--steps",
        "2",
        "--seed",
        "7",
    ]);
    assert!(o.status.success(), "{precision}: {}", err(&o));
    (image::open(&out).unwrap().to_rgba8(), err(&o))
}

#[test]
fn f16_decodes_close_to_f32_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    half_close_to_f32(dir.path(), "gpu", "f16", 3);
}

/// `precision` on `device` names itself and differs from f32 only by rounding (at most
/// `levels`), but does differ (it really ran).
fn half_close_to_f32(dir: &Path, device: &str, precision: &str, levels: i32) {
    let (half, log_half) = inpaint(dir, device, precision);
    let (full, log32) = inpaint(dir, device, "f32");
    assert!(
        log_half.contains(precision),
        "the {precision} run names its precision: {log_half}"
    );
    assert!(!log32.contains(precision), "{log32}");
    let diffs: Vec<i32> = half
        .as_raw()
        .iter()
        .zip(full.as_raw())
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .collect();
    let max = *diffs.iter().max().unwrap();
    let changed = diffs.iter().filter(|&&d| d > 0).count();
    assert!(changed > 0, "{precision} and f32 outputs are identical");
    assert!(
        max <= levels,
        "{precision} output differs from f32 by up to {max} levels"
    );
}

#[test]
fn bf16_on_the_cpu_is_close_to_f32_and_refused_on_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    // bf16 keeps 8 mantissa bits to f16's 11: its rounding is 8x coarser (13 levels measured
    // at most on these pixels; the bound measured against PyTorch is bf16_parity.rs's).
    half_close_to_f32(dir.path(), "cpu", "bf16", 20);
    let o = clearpaint(&["--device", "gpu", "--precision", "bf16", "devices"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("bf16 -> unavailable"), "{out}");
    assert!(
        out.contains("bf16: "),
        "devices says what the CPU has: {out}"
    );
}

/// On the CPU, `auto` is bf16 where the bf16 dot products are used (measured faster than f32
/// FMAs, or asked for with CLEARPAINT_BF16_KERNELS=on) and f32 otherwise; `devices` says what
/// the CPU has, how fast, and what `auto` picks.
#[test]
fn auto_on_the_cpu_follows_the_bf16_dot_products() {
    let devices = |kernels: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_clearpaint"))
            .args(["--device", "cpu", "devices"])
            .env("CLEARPAINT_BF16_KERNELS", kernels)
            .env_remove("CLEARPAINT_PRECISION")
            .output()
            .expect("run clearpaint");
        assert!(o.status.success(), "{}", err(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let auto = |out: &str| {
        let mut lines = out.lines().skip_while(|l| !l.starts_with("precision on"));
        let line = lines.find(|l| l.trim_start().starts_with("auto ->"));
        line.unwrap_or_else(|| panic!("an auto line: {out}"))
            .to_string()
    };
    let off = devices("off");
    assert!(auto(&off).contains("-> f32"), "{off}");
    let on = devices("on");
    if clearpaint_core::cpu::bf16_kernels_available() {
        assert!(
            auto(&on).contains("-> bf16") && auto(&on).contains("dot products"),
            "{on}"
        );
        assert!(on.contains("x the f32 FMA rate"), "{on}");
    } else {
        assert!(auto(&on).contains("-> f32"), "{on}");
        assert!(on.contains("no bf16 dot products"), "{on}");
    }
}

/// `devices` names the compiler burn runs on each adapter (WGSL by default; SPIR-V on Vulkan
/// with the `spirv` feature) and the driver's cooperative-matrix shapes (none on lavapipe).
#[test]
fn devices_names_the_compiler_each_adapter_runs() {
    let o = clearpaint(&["--device", "gpu", "devices"]);
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("llvmpipe"))
        .unwrap_or_else(|| panic!("lavapipe listed: {out}"));
    let compiler = if cfg!(feature = "spirv") {
        "SPIR-V compiler"
    } else {
        "WGSL compiler"
    };
    assert!(line.contains(compiler), "{line}");
    assert!(line.contains("cooperative matrices"), "{line}");
}

#[test]
fn f16_where_it_cannot_run_is_a_one_line_error() {
    let o = clearpaint(&["--device", "cpu", "--precision", "f16", "devices"]);
    assert!(
        o.status.success(),
        "devices lists what f16 would do: {}",
        err(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("f16 -> unavailable"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("in.png");
    RgbaImage::new(16, 16).save(&img).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let o = clearpaint(&[
        "--device",
        "cpu",
        "--precision",
        "f16",
        "inpaint",
        "--model",
        s(&model),
        "--image",
        s(&img),
        "--mask",
        s(&img),
        "--out",
        s(&dir.path().join("out.png")),
        "--prompt",
        "x",
    ]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("f16") && e.contains("CPU"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!dir.path().join("out.png").exists());
    let o = clearpaint(&["--precision", "half-ish", "devices"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("half-ish"), "{}", err(&o));
}
