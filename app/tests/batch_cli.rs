//! `clearpaint batch inpaint` / `batch weather` over folders of mixed images with the tiny
//! model fixtures: matching masks, skips, failures, report, exit status, resuming after a real
//! kill, and shards.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use image::{GenericImageView, GrayImage, Luma, Rgba, RgbaImage};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn clearpaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .output()
        .expect("run clearpaint")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn picture(w: u32, h: u32, k: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([((x * k) % 256) as u8, ((y * 3 + k) % 256) as u8, 90, 255])
    })
}

fn mask(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        Luma([if x > w / 4 && x < w / 2 && y > h / 4 && y < h / 2 {
            255
        } else {
            0
        }])
    })
}

/// Ten inputs: png / jpg / webp / bmp of several sizes, one in a subfolder, one corrupt, one
/// without a mask; masks named `stem.png` or `stem_mask.png`.
fn make_folder(root: &Path) -> (PathBuf, PathBuf) {
    let (images, masks) = (root.join("images"), root.join("masks"));
    std::fs::create_dir_all(images.join("sub")).unwrap();
    std::fs::create_dir_all(masks.join("sub")).unwrap();
    let sizes = [
        (40, 32),
        (33, 17),
        (64, 48),
        (24, 24),
        (50, 30),
        (16, 40),
        (48, 48),
    ];
    for (i, (w, h)) in sizes.iter().enumerate() {
        let img = picture(*w, *h, i as u32 + 1);
        let name = match i % 4 {
            0 => format!("img{i}.png"),
            1 => format!("img{i}.jpg"),
            2 => format!("img{i}.webp"),
            _ => format!("img{i}.bmp"),
        };
        let path = images.join(&name);
        if name.ends_with(".jpg") || name.ends_with(".bmp") {
            image::DynamicImage::ImageRgba8(img)
                .to_rgb8()
                .save(&path)
                .unwrap();
        } else {
            img.save(&path).unwrap();
        }
        let mname = if i % 2 == 0 {
            format!("img{i}.png")
        } else {
            format!("img{i}_mask.png")
        };
        mask(*w, *h).save(masks.join(mname)).unwrap();
    }
    picture(32, 32, 9)
        .save(images.join("sub/nested.png"))
        .unwrap();
    mask(32, 32).save(masks.join("sub/nested.png")).unwrap();
    std::fs::write(
        images.join("corrupt.jpg"),
        b"\xff\xd8\xff\xe0 this is not a jpeg",
    )
    .unwrap();
    mask(20, 20).save(masks.join("corrupt.png")).unwrap();
    picture(20, 20, 3).save(images.join("nomask.png")).unwrap();
    std::fs::write(images.join("notes.txt"), b"not an image").unwrap();
    (images, masks)
}

fn inpaint_args<'a>(images: &'a str, masks: &'a str, out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec![
        "batch",
        "inpaint",
        "--model",
        model,
        "--images",
        images,
        "--masks",
        masks,
        "--out",
        out,
        "--recursive",
        "--steps",
        "2",
        "--seed",
        "5",
        "--scheduler",
        "ddim",
        "--prompt",
        "x",
    ]
}

/// The files under `out`, but the shard reports in `out/_reports/`.
fn outputs(out: &Path) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.path() == out.join("_reports") {
                    continue;
                }
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    set.insert(
                        e.path()
                            .strip_prefix(out)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
    }
    set
}

#[test]
fn batch_inpaint_outputs_skips_failures_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = make_folder(dir.path());
    let out = dir.path().join("out");
    let report = dir.path().join("report.json");
    let model = fixtures().join("tiny_sd_inpaint9");
    let mut a = inpaint_args(s(&images), s(&masks), s(&out), s(&model));
    a.extend(["--report", s(&report)]);
    let o = clearpaint(&a);
    assert!(!o.status.success(), "a failed file makes the run fail");
    let e = err(&o);
    assert!(e.contains("done 8, skipped 1, failed 1"), "{e}");
    assert!(e.contains("warning: nomask.png: no mask, skipped"), "{e}");
    let expected: BTreeSet<String> = [
        "img0.png",
        "img1.png",
        "img2.png",
        "img3.png",
        "img4.png",
        "img5.png",
        "img6.png",
        "sub/nested.png",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(outputs(&out), expected);
    assert_eq!(
        image::open(out.join("img1.png")).unwrap().dimensions(),
        (33, 17)
    );
    assert_eq!(
        image::open(out.join("img5.png")).unwrap().dimensions(),
        (16, 40)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["done"].as_array().unwrap().len(), 8);
    assert_eq!(r["skipped"][0]["file"], "nomask.png");
    assert_eq!(r["failed"][0]["file"], "corrupt.jpg");
    assert!(
        r["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt.jpg")
    );
    // Per-image seeds are recorded and differ between files.
    let seed_of = |p: &Path| {
        let t = clearpaint_core::imaging::png_text(p).unwrap();
        let params = t.into_iter().find(|(k, _)| k == "parameters").unwrap().1;
        params
            .split("Seed: ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(
        seed_of(&out.join("img0.png")),
        seed_of(&out.join("img2.png"))
    );
    // Inputs untouched.
    assert!(!images.join("img0.png.tmp").exists());

    // A re-run skips what exists; the corrupt file still fails.
    let o = clearpaint(&a);
    assert!(
        err(&o).contains("done 0, skipped 9, failed 1"),
        "{}",
        err(&o)
    );

    // --out inside --images is refused.
    let inside = images.join("results");
    let o = clearpaint(&inpaint_args(s(&images), s(&masks), s(&inside), s(&model)));
    assert!(!o.status.success());
    assert!(err(&o).contains("inside the input folder"), "{}", err(&o));
    assert!(!inside.exists());
}

#[test]
fn a_killed_batch_resumes_without_rewriting_or_truncating() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for i in 0..8 {
        picture(128, 96, i + 1)
            .save(images.join(format!("p{i}.png")))
            .unwrap();
    }
    let m = dir.path().join("mask.png");
    mask(128, 96).save(&m).unwrap();
    let out = dir.path().join("out");
    let model = fixtures().join("tiny_sd_inpaint9");
    let mut a = inpaint_args(s(&images), s(&m), s(&out), s(&model));
    let i = a.iter().position(|x| *x == "2").unwrap();
    a[i] = "40";
    a.extend(["--region", "full"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(&a)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for at least one output, then kill mid-run.
    let start = std::time::Instant::now();
    while outputs(&out).iter().filter(|n| n.ends_with(".png")).count() < 1 {
        assert!(start.elapsed().as_secs() < 120, "no output appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<(PathBuf, std::time::SystemTime)> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    assert!(
        !first.is_empty() && first.len() < 8,
        "killed part way: {} outputs",
        first.len()
    );
    for (p, _) in &first {
        assert_eq!(
            image::open(p).unwrap().dimensions(),
            (128, 96),
            "{} is complete",
            p.display()
        );
    }
    let o = clearpaint(&a);
    assert!(o.status.success(), "{}", err(&o));
    let all: BTreeSet<String> = (0..8).map(|i| format!("p{i}.png")).collect();
    assert_eq!(
        outputs(&out),
        all,
        "exactly the full set, no stray temporary files"
    );
    for (p, t) in &first {
        assert_eq!(
            std::fs::metadata(p).unwrap().modified().unwrap(),
            *t,
            "{} was written twice",
            p.display()
        );
    }
}

#[test]
fn shards_cover_every_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("a")).unwrap();
    for i in 0..12 {
        let p = if i % 3 == 0 {
            input.join(format!("a/n{i}.png"))
        } else {
            input.join(format!("n{i}.png"))
        };
        picture(24, 16, i + 1).save(p).unwrap();
    }
    let model = fixtures().join("augan_tiny.safetensors");
    let mut seen: Vec<String> = Vec::new();
    for k in 0..3 {
        let out = dir.path().join(format!("out{k}"));
        let shard = format!("{k}/3");
        let o = clearpaint(&[
            "batch",
            "weather",
            "--model",
            s(&model),
            "--input",
            s(&input),
            "--out",
            s(&out),
            "--recursive",
            "--size",
            "16x32",
            "--shard",
            &shard,
            "--uncertainty",
        ]);
        assert!(o.status.success(), "{}", err(&o));
        for f in outputs(&out) {
            if !f.ends_with("_uncertainty.png") {
                assert!(outputs(&out).contains(&f.replace(".png", "_uncertainty.png")));
                seen.push(f);
            }
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert_eq!(unique.len(), 12);
}

/// `Seed: N` of a PNG's parameters.
fn seed_of(path: &Path) -> String {
    let text = clearpaint_core::imaging::png_text(path).unwrap();
    let params = &text.iter().find(|(k, _)| k == "parameters").unwrap().1;
    params
        .split(", ")
        .find_map(|f| f.strip_prefix("Seed: "))
        .unwrap()
        .to_string()
}

#[test]
fn batch_generate_writes_one_image_per_prompt_line_resumes_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(
        &prompts,
        "a red fox\n\n# skipped\na blue boat <lora:no_such_lora:0.5>\n(snowy hills:1.2)\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let model = fixtures().join("tiny_sd_inpaint4");
    let args = [
        "batch",
        "generate",
        "--model",
        s(&model),
        "--prompts",
        s(&prompts),
        "--out",
        s(&out),
        "--width",
        "40",
        "--height",
        "32",
        "--steps",
        "2",
        "--seed",
        "9",
    ];
    let o = clearpaint(&args);
    // The prompt naming a missing LoRA fails alone; the others are written.
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("00004.png") && e.contains("no_such_lora"), "{e}");
    let written = outputs(&out);
    assert_eq!(
        written,
        ["00001.png", "00005.png"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let fox = std::fs::read(out.join("00001.png")).unwrap();

    // Re-running skips what exists.
    let o = clearpaint(&args);
    assert!(err(&o).contains("skipped 00001.png"), "{}", err(&o));
    assert_eq!(std::fs::read(out.join("00001.png")).unwrap(), fox);

    // Any image is reproduced alone by `generate` with the seed in its PNG.
    let seed = seed_of(&out.join("00001.png"));
    let alone = dir.path().join("alone.png");
    let o = clearpaint(&[
        "generate",
        "--model",
        s(&model),
        "--prompt",
        "a red fox",
        "--width",
        "40",
        "--height",
        "32",
        "--steps",
        "2",
        "--seed",
        &seed,
        "--out",
        s(&alone),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let a = image::open(&alone).unwrap().to_rgb8();
    let b = image::open(out.join("00001.png")).unwrap().to_rgb8();
    assert_eq!(a, b);

    // Several images a prompt, each its own seed; a bad prompts file is one line.
    let out2 = dir.path().join("out2");
    std::fs::write(&prompts, "a red fox\n").unwrap();
    let o = clearpaint(&[
        "batch",
        "generate",
        "--model",
        s(&model),
        "--prompts",
        s(&prompts),
        "--out",
        s(&out2),
        "--width",
        "40",
        "--height",
        "32",
        "--steps",
        "1",
        "--images-per-prompt",
        "2",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_ne!(
        seed_of(&out2.join("00001-1.png")),
        seed_of(&out2.join("00001-2.png"))
    );
    std::fs::write(&prompts, "# nothing\n").unwrap();
    let o = clearpaint(&[
        "batch",
        "generate",
        "--model",
        s(&model),
        "--prompts",
        s(&prompts),
        "--out",
        s(&out2),
    ]);
    assert!(
        !o.status.success() && err(&o).contains("no prompts"),
        "{}",
        err(&o)
    );
}

/// `batch weather` of `input` into `out` as task `k` of 4 started by an engine (its variables).
fn weather_task(input: &Path, out: &Path, envs: &[(&str, String)], extra: &[&str]) -> Output {
    let model = fixtures().join("augan_tiny.safetensors");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clearpaint"));
    cmd.args([
        "batch",
        "weather",
        "--model",
        s(&model),
        "--input",
        s(input),
    ])
    .args(["--out", s(out), "--size", "16x32", "--shard", "env"])
    .args(extra)
    .env("CLEARPAINT_DEVICE", "cpu")
    .env("CLEARPAINT_PRECISION", "f32"); // f32 references: auto may be bf16
    for k in common::INDEX_VARS {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run clearpaint")
}

#[test]
fn shard_env_reads_each_engines_variables_and_four_tasks_cover_every_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..10 {
        picture(24, 16, i + 1)
            .save(input.join(format!("n{i}.png")))
            .unwrap();
    }
    let engines = common::engines();
    for (name, vars, extra) in engines {
        let mut done = Vec::new();
        for k in 0..4 {
            let out = dir.path().join(name.replace(' ', "_")).join(k.to_string());
            let o = weather_task(&input, &out, &vars(k), extra);
            assert!(o.status.success(), "{name} task {k}: {}", err(&o));
            assert!(
                err(&o).contains(&format!("shard {k}/4 from {name}")),
                "{}",
                err(&o)
            );
            done.extend(outputs(&out));
        }
        let unique: BTreeSet<&String> = done.iter().collect();
        assert_eq!((done.len(), unique.len()), (10, 10), "{name}: {done:?}");
    }
    // The Kubernetes count is not in its environment: without --shards, a one-line error.
    let o = weather_task(
        &input,
        &dir.path().join("k"),
        &[("JOB_COMPLETION_INDEX", "0".into())],
        &[],
    );
    assert!(
        !o.status.success() && err(&o).contains("--shards"),
        "{}",
        err(&o)
    );
    let o = weather_task(&input, &dir.path().join("none"), &[], &[]);
    assert!(err(&o).contains("no array-job variables"), "{}", err(&o));
}
