//! Bad input never costs a user their work (the reliability issue): prompts outside Latin-1
//! reach the PNG, outputs get the umask's mode, a broken model is an error rather than a silent
//! classical fill, hostile configs and non-finite numbers are refused with one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `clearpaint ARGS` under `umask` (through the shell, which sets it for the child).
fn clearpaint_umask(umask: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_clearpaint"))
        .args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32"); // f32 references: auto may be bf16
    cmd.output().expect("run clearpaint")
}

fn clearpaint(args: &[&str]) -> Output {
    clearpaint_umask("022", args)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `inpaint` on the sample image with `model` and extra arguments, writing `out`.
fn inpaint(model: &Path, out: &Path, extra: &[&str]) -> Output {
    let (ip, mp) = (
        assets().join("sample.png"),
        assets().join("sample_mask.png"),
    );
    let mut a = vec![
        "inpaint",
        "--model",
        s(model),
        "--image",
        s(&ip),
        "--mask",
        s(&mp),
        "--out",
        s(out),
        "--region",
        "crop",
    ];
    if !extra.iter().any(|x| x.starts_with("--steps")) {
        a.extend_from_slice(&["--steps", "2"]);
    }
    a.extend_from_slice(extra);
    clearpaint(&a)
}

/// `DIR/images/` holding the sample image as `a.png`, for batch runs.
fn one_image_folder(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(assets().join("sample.png"), images.join("a.png")).unwrap();
    images
}

/// The text chunks of a PNG as the `png` crate reads them (tEXt and iTXt).
fn png_texts(path: &Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(path).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for t in &info.utf8_text {
        out.push((t.keyword.clone(), t.get_text().unwrap()));
    }
    out
}

/// A copy of the tiny 9-channel pipeline in `dir`, changed by `edit`.
fn broken_model(dir: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
    let m = dir.join("model");
    copy_dir(&fixtures().join("tiny_sd_inpaint9"), &m);
    edit(&m);
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn set_json(path: &Path, key: &str, value: serde_json::Value) {
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    j[key] = value;
    std::fs::write(path, j.to_string()).unwrap();
}

#[test]
fn a_japanese_prompt_round_trips_into_the_png_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let prompt = "青い空の下の緑の丘 — “curly quotes” 🌄";
    let o = inpaint(
        &fixtures().join("tiny_sd_inpaint9"),
        &out,
        &["--prompt", prompt, "--seed", "3"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let texts = png_texts(&out);
    let params = texts
        .iter()
        .find(|(k, _)| k == "parameters")
        .map(|(_, v)| v.clone())
        .expect("a parameters chunk");
    assert!(params.starts_with(prompt), "{params}");
    // A Latin-1 prompt is still a plain tEXt chunk, as A1111 writes it.
    let plain = dir.path().join("plain.png");
    let o = inpaint(
        &fixtures().join("tiny_sd_inpaint9"),
        &plain,
        &["--prompt", "green hills", "--seed", "3"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let file = std::fs::File::open(&plain).unwrap();
    let info = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    assert!(info.info().utf8_text.is_empty());
}

#[cfg(unix)]
#[test]
fn outputs_and_reports_get_the_mode_the_umask_gives() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (ip, mp) = (
        assets().join("sample.png"),
        assets().join("sample_mask.png"),
    );
    for (umask, want) in [("022", 0o644), ("027", 0o640)] {
        let out = dir.path().join(format!("out{umask}.png"));
        let o = clearpaint_umask(
            umask,
            &[
                "inpaint",
                "--engine",
                "classical",
                "--image",
                s(&ip),
                "--mask",
                s(&mp),
                "--out",
                s(&out),
            ],
        );
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(mode(&out), want, "umask {umask}");
    }
    // A batch's images and its JSON report.
    let images = one_image_folder(dir.path());
    let (outd, report) = (dir.path().join("batch"), dir.path().join("report.json"));
    let o = clearpaint_umask(
        "022",
        &[
            "batch",
            "inpaint",
            "--engine",
            "classical",
            "--images",
            s(&images),
            "--masks",
            s(&mp),
            "--out",
            s(&outd),
            "--report",
            s(&report),
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(mode(&outd.join("a.png")), 0o644);
    assert_eq!(mode(&report), 0o644);
}

#[test]
fn a_named_model_that_is_broken_is_an_error_not_a_classical_fill() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "truncated",
            Box::new(|m: &Path| {
                let f = m.join("unet/diffusion_pytorch_model.safetensors");
                let bytes = std::fs::read(&f).unwrap();
                std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "diffusion_pytorch_model.safetensors",
        ),
        (
            "garbage",
            Box::new(|m: &Path| {
                std::fs::write(m.join("text_encoder/model.safetensors"), b"not a file").unwrap();
            }),
            "model.safetensors",
        ),
        (
            "zero groups",
            Box::new(|m: &Path| {
                set_json(&m.join("unet/config.json"), "norm_num_groups", 0.into());
            }),
            "norm_num_groups",
        ),
    ];
    for (name, edit, names) in cases {
        let case = dir.path().join(name.replace(' ', "_"));
        let model = broken_model(&case, edit);
        let out = case.join("out.png");
        let o = inpaint(&model, &out, &[]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(!e.contains("panicked"), "{name}: {e}");
        assert!(!e.contains("classical"), "{name}: {e}");
        let last = e
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("");
        assert!(last.contains(names), "{name}: {e}");
        assert!(!out.exists(), "{name}");
        // A batch refuses before any image is processed.
        let images = one_image_folder(&case);
        let outd = case.join("batch");
        let mp = assets().join("sample_mask.png");
        let o = clearpaint(&[
            "batch",
            "inpaint",
            "--model",
            s(&model),
            "--images",
            s(&images),
            "--masks",
            s(&mp),
            "--out",
            s(&outd),
        ]);
        assert_eq!(o.status.code(), Some(1), "batch {name}: {}", err(&o));
        assert!(!outd.join("a.png").exists(), "batch {name}");
    }
    // In a batch, a named model that does not exist is an error too.
    let images = one_image_folder(dir.path());
    let mp = assets().join("sample_mask.png");
    let outd = dir.path().join("batch");
    let o = clearpaint(&[
        "batch",
        "inpaint",
        "--model",
        s(&dir.path().join("nope")),
        "--images",
        s(&images),
        "--masks",
        s(&mp),
        "--out",
        s(&outd),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("no such model"), "{}", err(&o));
    assert!(!outd.join("a.png").exists());
}

#[test]
fn hostile_configs_are_refused_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, serde_json::Value); 4] = [
        (
            "unet/config.json",
            "block_out_channels",
            serde_json::json!([1_000_000_000, 64]),
        ),
        (
            "unet/config.json",
            "block_out_channels",
            serde_json::json!([]),
        ),
        (
            "vae/config.json",
            "latent_channels",
            serde_json::json!(1_000_000_000u64),
        ),
        (
            "text_encoder/config.json",
            "num_hidden_layers",
            serde_json::json!(1_000_000_000u64),
        ),
    ];
    for (i, (file, key, value)) in cases.into_iter().enumerate() {
        let case = dir.path().join(format!("c{i}"));
        let model = broken_model(&case, |m| set_json(&m.join(file), key, value.clone()));
        let out = case.join("out.png");
        let o = inpaint(&model, &out, &["--engine", "diffusion"]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{file} {key}: {e}");
        assert!(e.contains(file) && e.contains(key), "{file} {key}: {e}");
        assert!(!out.exists());
    }
}

#[test]
fn non_finite_and_out_of_range_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let model = fixtures().join("tiny_sd_inpaint9");
    for (flag, value) in [
        ("--guidance", "NaN"),
        ("--guidance", "inf"),
        ("--guidance", "-1"),
        ("--strength", "NaN"),
        ("--strength", "1.5"),
        ("--steps", "100000"),
        ("--mask-blur", "100000"),
        ("--crop-padding", "4000000"),
    ] {
        let arg = format!("{flag}={value}");
        let o = inpaint(&model, &out, &[&arg]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {e}");
        assert!(e.contains(flag), "{flag} {value}: {e}");
        assert_eq!(
            e.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{e}"
        );
        assert!(!e.contains("loading"), "refused before loading: {e}");
        assert!(!out.exists(), "{flag} {value}");
    }
}

#[test]
fn a_decompression_bomb_is_refused_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    // A PNG whose header claims 60000x60000 pixels (14.4 GB as RGBA) and next to no data.
    let bomb = dir.path().join("bomb.png");
    {
        let f = std::fs::File::create(&bomb).unwrap();
        let mut enc = png::Encoder::new(f, 60000, 60000);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        // The start of a zlib stream: the decoder sees the size before any pixel data.
        w.write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x62, 0x00])
            .unwrap();
        std::mem::forget(w); // no more data, no IEND
    }
    let out = dir.path().join("out.png");
    let mp = assets().join("sample_mask.png");
    let o = clearpaint(&[
        "inpaint",
        "--engine",
        "classical",
        "--image",
        s(&bomb),
        "--mask",
        s(&mp),
        "--out",
        s(&out),
    ]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("bomb.png")
            && e.contains("60000x60000")
            && e.contains("CLEARPAINT_MAX_IMAGE_PIXELS"),
        "{e}"
    );
    assert!(!out.exists());
}
