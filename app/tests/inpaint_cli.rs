//! `clearpaint inpaint` end to end on the tiny diffusers pipeline fixtures: sizes, alpha,
//! 16-bit / grayscale / EXIF-rotated inputs, mask size handling, bit-exact paste-back and crop,
//! A1111 metadata, clear errors, and no output when a run is interrupted.

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

fn picture(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
            255,
        ])
    })
}

fn rect_mask(w: u32, h: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        Luma([if x >= x0 && x < x1 && y >= y0 && y < y1 {
            255
        } else {
            0
        }])
    })
}

fn base_args<'a>(model: &'a str, image: &'a str, mask: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "inpaint",
        "--model",
        model,
        "--image",
        image,
        "--mask",
        mask,
        "--out",
        out,
        "--prompt",
        "a red fox",
        "--steps",
        "2",
        "--seed",
        "7",
        "--scheduler",
        "ddim",
    ]
}

#[test]
fn odd_size_rgba_with_bit_exact_paste_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = picture(97, 61);
    for x in 0..97 {
        img.put_pixel(x, 3, Rgba([1, 2, 3, (x * 2) as u8])); // varied alpha
    }
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    img.save(&ip).unwrap();
    let mask = rect_mask(97, 61, 20, 10, 50, 40);
    mask.save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    a.extend(["--region", "full", "--mask-blur", "0", "--paste-back", "on"]);
    let o = clearpaint(&a);
    assert!(o.status.success(), "{}", err(&o));
    let out = image::open(&op).unwrap();
    assert_eq!(out.dimensions(), (97, 61));
    assert_eq!(out.color(), image::ColorType::Rgba8);
    let out = out.to_rgba8();
    let mut changed = 0;
    for (x, y, p) in out.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, img.get_pixel(x, y), "unmasked pixel ({x}, {y}) changed");
        } else if p != img.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 100, "the masked area was not repainted");
    // A1111-style parameters.
    let text = clearpaint_core::imaging::png_text(&op).unwrap();
    let params = &text
        .iter()
        .find(|(k, _)| k == "parameters")
        .expect("parameters chunk")
        .1;
    assert!(
        params.starts_with(
            // Size is what the model ran at: 97x61 scaled to about the tiny model's 32x32.
            "a red fox\nSteps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 7, Size: 40x24"
        ),
        "{params}"
    );
}

#[test]
fn crop_mode_leaves_everything_outside_the_crop_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let img = picture(120, 90);
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    img.save(&ip).unwrap();
    rect_mask(120, 90, 60, 40, 70, 52).save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint4");
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    a.extend([
        "--region",
        "crop",
        "--crop-padding",
        "8",
        "--paste-back",
        "off",
        "--decoder",
        "standard",
    ]);
    let o = clearpaint(&a);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("working on the mask's region 26x28 at (52, 32)"),
        "{}",
        err(&o)
    );
    let out = image::open(&op).unwrap().to_rgba8();
    assert_eq!(out.dimensions(), (120, 90));
    for (x, y, p) in out.enumerate_pixels() {
        let inside = (52..78).contains(&x) && (32..60).contains(&y);
        if !inside {
            assert_eq!(
                p,
                img.get_pixel(x, y),
                "pixel ({x}, {y}) outside the crop changed"
            );
        }
    }
}

#[test]
fn sixteen_bit_gray_and_exif_rotated_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let asym = fixtures().join("vae_asym_tiny");
    // 16-bit RGB PNG.
    let img16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(48, 40, |x, y| {
        image::Rgb([x as u16 * 1300, y as u16 * 1600, 30000])
    });
    let p16 = dir.path().join("sixteen.png");
    img16.save(&p16).unwrap();
    // Grayscale PNG.
    let pg = dir.path().join("gray.png");
    GrayImage::from_fn(48, 40, |x, y| Luma([(x * 5 + y) as u8]))
        .save(&pg)
        .unwrap();
    let mp = dir.path().join("m.png");
    rect_mask(48, 40, 10, 10, 30, 30).save(&mp).unwrap();
    for (name, input) in [("sixteen", &p16), ("gray", &pg)] {
        let op = dir.path().join(format!("{name}_out.png"));
        let mut a = base_args(s(&model), s(input), s(&mp), s(&op));
        a.extend(["--vae", s(&asym)]);
        let o = clearpaint(&a);
        assert!(o.status.success(), "{name}: {}", err(&o));
        assert_eq!(image::open(&op).unwrap().dimensions(), (48, 40), "{name}");
    }
    // A JPEG stored 40 wide x 48 high with EXIF orientation 6 (rotate 90° clockwise) is 48x40 upright.
    let stored = image::DynamicImage::ImageRgba8(picture(40, 48)).to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&stored)
        .unwrap();
    let exif: Vec<u8> = [
        &b"Exif\0\0"[..],
        b"MM\0\x2a\0\0\0\x08", // big-endian TIFF header, IFD at 8
        b"\0\x01",             // one entry
        b"\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", // Orientation (0x0112), SHORT, 1, value 6
        b"\0\0\0\0",           // no next IFD
    ]
    .concat();
    let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
    with_exif.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(&exif);
    with_exif.extend_from_slice(&jpeg[2..]);
    let pj = dir.path().join("rotated.jpg");
    std::fs::write(&pj, &with_exif).unwrap();
    assert_eq!(
        clearpaint_core::imaging::load(&pj)
            .unwrap()
            .rgba
            .dimensions(),
        (48, 40)
    );
    let op = dir.path().join("rotated_out.png");
    let o = clearpaint(&base_args(s(&model), s(&pj), s(&mp), s(&op)));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(image::open(&op).unwrap().dimensions(), (48, 40));
}

#[test]
fn a_mask_of_another_size_is_resized_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    picture(64, 48).save(&ip).unwrap();
    rect_mask(32, 24, 5, 5, 20, 20).save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let o = clearpaint(&base_args(s(&model), s(&ip), s(&mp), s(&op)));
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("note: mask is 32x24, image is 64x48: the mask was resized to the image"),
        "{}",
        err(&o)
    );
    assert_eq!(image::open(&op).unwrap().dimensions(), (64, 48));
}

#[test]
fn clear_errors_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    picture(32, 32).save(&ip).unwrap();
    rect_mask(32, 32, 0, 0, 0, 0).save(&mp).unwrap(); // empty mask
    let model = fixtures().join("tiny_sd_inpaint9");
    let o = clearpaint(&base_args(s(&model), s(&ip), s(&mp), s(&op)));
    assert!(!o.status.success());
    assert!(err(&o).contains("the mask is empty"), "{}", err(&o));
    assert!(!op.exists());

    // Missing weights: which files, and where to get them.
    let o = clearpaint(&base_args(
        s(&dir.path().join("no-model")),
        s(&ip),
        s(&mp),
        s(&op),
    ));
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("no such model folder")
            && e.contains("unet/")
            && e.contains("weights/README.md"),
        "{e}"
    );

    // --decoder asymmetric without --vae.
    rect_mask(32, 32, 4, 4, 20, 20).save(&mp).unwrap();
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    a.extend(["--decoder", "asymmetric", "--engine", "diffusion"]);
    let o = clearpaint(&a);
    assert!(!o.status.success());
    assert!(err(&o).contains("needs --vae"), "{}", err(&o));

    // A corrupt image.
    std::fs::write(&ip, b"\x89PNG\r\n\x1a\n broken").unwrap();
    let o = clearpaint(&base_args(s(&model), s(&ip), s(&mp), s(&op)));
    assert!(!o.status.success());
    assert!(err(&o).contains("in.png"), "{}", err(&o));
    assert!(!op.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no stray files"
    );
}

#[test]
fn an_interrupted_run_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    picture(256, 256).save(&ip).unwrap();
    rect_mask(256, 256, 10, 10, 60, 60).save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    let i = a.iter().position(|x| *x == "2").unwrap();
    a[i] = "1000";
    a.extend(["--region", "full"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_clearpaint"))
        .args(&a)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the run ended ({status}) before it could be interrupted");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!op.exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn write_latents(path: &Path, shape: [usize; 4], values: &[f32]) {
    let header = format!(
        r#"{{"latents":{{"dtype":"F32","shape":[{},{},{},{}],"data_offsets":[0,{}]}}}}"#,
        shape[0],
        shape[1],
        shape[2],
        shape[3],
        values.len() * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn supplied_latents_fix_the_result_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, mp) = (dir.path().join("in.png"), dir.path().join("m.png"));
    picture(40, 32).save(&ip).unwrap();
    rect_mask(40, 32, 8, 8, 30, 24).save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let lat = dir.path().join("latents.safetensors");
    let values: Vec<f32> = (0..80)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0)
        .collect();
    write_latents(&lat, [1, 4, 4, 5], &values);
    let mut outs = Vec::new();
    for seed in ["1", "2"] {
        let op = dir.path().join(format!("out{seed}.png"));
        let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
        let i = a.iter().position(|x| *x == "7").unwrap();
        a[i] = seed;
        a.extend(["--latents", s(&lat), "--region", "full"]);
        let o = clearpaint(&a);
        assert!(o.status.success(), "{}", err(&o));
        outs.push(std::fs::read(&op).unwrap());
    }
    let (a, b) = (
        image::load_from_memory(&outs[0]).unwrap(),
        image::load_from_memory(&outs[1]).unwrap(),
    );
    assert_eq!(
        a.to_rgba8(),
        b.to_rgba8(),
        "the seed must not matter when latents are given"
    );

    write_latents(&lat, [1, 4, 2, 2], &values[..16]);
    let op = dir.path().join("bad.png");
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    a.extend(["--latents", s(&lat), "--region", "full"]);
    let o = clearpaint(&a);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("--latents holds 16 values; this image needs [1, 4, 4, 5]"),
        "{}",
        err(&o)
    );
    assert!(!op.exists());
}

#[test]
fn without_weights_auto_uses_the_classical_fill_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let op = dir.path().join("out.png");
    let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let (ip, mp) = (assets.join("sample.png"), assets.join("sample_mask.png"));
    // README's main command, with weights that are not there.
    let o = clearpaint(&[
        "inpaint",
        "--model",
        s(&dir.path().join("weights/stable-diffusion-inpainting")),
        "--image",
        s(&ip),
        "--mask",
        s(&mp),
        "--prompt",
        "green hills",
        "--out",
        s(&op),
        "--mask-blur",
        "0",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let stderr = err(&o);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("classical fill engine"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", err(&o));
    assert!(notes[0].contains("no such model folder"), "{}", notes[0]);
    let input = image::open(&ip).unwrap().to_rgba8();
    let mask = image::open(&mp).unwrap().to_luma8();
    let out = image::open(&op).unwrap().to_rgba8();
    assert_eq!(out.dimensions(), input.dimensions());
    let mut changed = 0;
    for (x, y, p) in out.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, input.get_pixel(x, y));
        } else if p != input.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 1000);
    // The signpost (red) is gone: few red pixels remain in the hole.
    let red = out
        .pixels()
        .filter(|p| p[0] > 170 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(red < 50, "{red} red pixels left");
    let text = clearpaint_core::imaging::png_text(&op).unwrap();
    let engine = &text
        .iter()
        .find(|(k, _)| k == "clearpaint:engine")
        .unwrap()
        .1;
    assert!(engine.starts_with("classical ("), "{engine}");
}

/// The tiny LDM checkpoint with its 1000-token embedding padded to CLIP's 49408 tokens, as a
/// real SD 1.x checkpoint has (the bundled tokenizer is used with single files).
fn padded_checkpoint(path: &Path) {
    use clearpaint_core::weights::SafetensorsFile;
    let file = SafetensorsFile::open(fixtures().join("sd15_ldm_tiny.safetensors")).unwrap();
    let emb_key = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
    let emb = file.entry(emb_key).unwrap().shape.clone();
    let raw = file.raw(emb_key).unwrap();
    let elem = raw.len() / (emb[0] * emb[1]);
    let mut padded = raw.to_vec();
    padded.resize(49408 * emb[1] * elem, 0);
    let keys: Vec<String> = file.keys().map(str::to_string).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = keys
        .iter()
        .map(|k| {
            let e = file.entry(k).unwrap();
            let view = if k == emb_key {
                safetensors::tensor::TensorView::new(e.dtype, vec![49408, emb[1]], &padded)
            } else {
                safetensors::tensor::TensorView::new(e.dtype, e.shape.clone(), file.raw(k).unwrap())
            };
            (k.clone(), view.unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn a_single_file_ldm_checkpoint_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, mp, op) = (
        dir.path().join("in.png"),
        dir.path().join("m.png"),
        dir.path().join("out.png"),
    );
    let img = picture(64, 48);
    img.save(&ip).unwrap();
    let mask = rect_mask(64, 48, 16, 8, 40, 32);
    mask.save(&mp).unwrap();
    let std_decoder = [
        "--decoder",
        "standard",
        "--mask-blur",
        "0",
        "--engine",
        "diffusion",
    ];

    // The fixture as converted: its text encoder knows 1000 tokens, the CLIP tokenizer 49408.
    let tiny = fixtures().join("sd15_ldm_tiny.safetensors");
    let mut a = base_args(s(&tiny), s(&ip), s(&mp), s(&op));
    a.extend(std_decoder);
    let o = clearpaint(&a);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("sd15_ldm_tiny.safetensors") && e.contains("49408") && e.contains("1000"),
        "{e}"
    );
    assert!(!op.exists());

    let ckpt = dir.path().join("sd15-inpainting.safetensors");
    padded_checkpoint(&ckpt);
    let mut a = base_args(s(&ckpt), s(&ip), s(&mp), s(&op));
    a.extend(std_decoder);
    let o = clearpaint(&a);
    assert!(o.status.success(), "{}", err(&o));
    let out = image::open(&op).unwrap().to_rgba8();
    let mut changed = 0;
    for (x, y, p) in out.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, img.get_pixel(x, y), "unmasked pixel ({x}, {y}) changed");
        } else if p != img.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 100, "the masked area was not repainted");
    let text = clearpaint_core::imaging::png_text(&op).unwrap();
    let params = &text.iter().find(|(k, _)| k == "parameters").unwrap().1;
    assert!(params.contains("Model: sd15-inpainting"), "{params}");
}

fn parameters(path: &Path) -> String {
    let text = clearpaint_core::imaging::png_text(path).unwrap();
    text.into_iter()
        .find(|(k, _)| k == "parameters")
        .expect("parameters")
        .1
}

/// One 32x32 run on the tiny 9-channel pipeline with `extra` arguments and `prompt`.
fn lora_run(dir: &Path, out: &str, prompt: &str, extra: &[&str]) -> (Output, PathBuf) {
    let (ip, mp, op) = (dir.join("in.png"), dir.join("m.png"), dir.join(out));
    picture(32, 32).save(&ip).unwrap();
    rect_mask(32, 32, 8, 8, 24, 24).save(&mp).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let mut a = base_args(s(&model), s(&ip), s(&mp), s(&op));
    a[10] = prompt;
    a.extend(["--region", "full"]);
    a.extend(extra);
    (clearpaint(&a), op)
}

#[test]
fn a_lora_from_a_flag_or_a_prompt_tag_changes_the_result_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let loras = fixtures().join("lora");
    let locon = format!("{}:0.7:1.3", s(&loras.join("locon.safetensors")));
    let (o, plain) = lora_run(dir.path(), "plain.png", "a red fox", &[]);
    assert!(o.status.success(), "{}", err(&o));
    let (o, flag) = lora_run(dir.path(), "flag.png", "a red fox", &["--lora", &locon]);
    assert!(o.status.success(), "{}", err(&o));
    let tag = "a red fox <lora:locon:0.7:1.3>";
    let (o, tagged) = lora_run(dir.path(), "tag.png", tag, &["--lora-dir", s(&loras)]);
    assert!(o.status.success(), "{}", err(&o));
    let px = |p: &Path| image::open(p).unwrap().to_rgba8();
    assert_ne!(px(&plain), px(&flag), "the LoRA changed nothing");
    assert_eq!(px(&flag), px(&tagged), "--lora and <lora:...> differ");
    // A1111's text: the tag in the prompt and the file's short hash (SHA-256 after the header).
    use sha2::Digest;
    let bytes = std::fs::read(loras.join("locon.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let hash: String = sha2::Sha256::digest(&bytes[8 + n..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for p in [&flag, &tagged] {
        let params = parameters(p);
        assert!(params.starts_with(tag), "{params}");
        assert!(
            params.contains(&format!("Lora hashes: \"locon: {}\"", &hash[..12])),
            "{params}"
        );
    }
}

#[test]
fn a_missing_or_foreign_lora_is_an_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let (o, out) = lora_run(dir.path(), "a.png", "a fox", &["--lora", s(&missing)]);
    assert!(
        !o.status.success() && err(&o).contains("missing.safetensors"),
        "{}",
        err(&o)
    );
    assert!(!out.exists());
    let (o, out) = lora_run(
        dir.path(),
        "b.png",
        "a fox <lora:nope:1>",
        &["--lora-dir", s(dir.path())],
    );
    assert!(
        !o.status.success() && err(&o).contains("<lora:nope>"),
        "{}",
        err(&o)
    );
    assert!(!out.exists());
    // An SDXL LoRA (LDM-style kohya names) on an SD 1.x model.
    let k = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q";
    let zeros = vec![0u8; 4 * 32];
    let views = [
        ("lora_down.weight", vec![2, 16]),
        ("lora_up.weight", vec![16, 2]),
    ]
    .map(|(p, sh)| {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, sh, &zeros).unwrap();
        (format!("{k}.{p}"), v)
    });
    let sdxl = dir.path().join("sdxl_style.safetensors");
    safetensors::serialize_to_file(views, None, &sdxl).unwrap();
    let (o, out) = lora_run(dir.path(), "c.png", "a fox", &["--lora", s(&sdxl)]);
    let e = err(&o);
    assert!(
        !o.status.success() && e.contains("sdxl_style") && e.contains("match no layer"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn a_textual_inversion_embedding_named_in_the_prompt_is_used_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let emb = fixtures().join("embeddings");
    let none = dir.path().join("no-embeddings");
    let prompt = "a photo in mystyle";
    let (o, without) = lora_run(dir.path(), "a.png", prompt, &["--embedding-dir", s(&none)]);
    assert!(o.status.success(), "{}", err(&o));
    let (o, with) = lora_run(dir.path(), "b.png", prompt, &["--embedding-dir", s(&emb)]);
    assert!(o.status.success(), "{}", err(&o));
    let px = |p: &Path| image::open(p).unwrap().to_rgba8();
    assert_ne!(px(&without), px(&with), "the embedding changed nothing");
    use sha2::Digest;
    let bytes = std::fs::read(emb.join("mystyle.safetensors")).unwrap();
    let hash: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let params = parameters(&with);
    assert!(
        params.contains(&format!("TI hashes: \"mystyle: {}\"", &hash[..12])),
        "{params}"
    );
    assert!(!parameters(&without).contains("TI hashes"));
}

#[test]
fn outpainting_extends_the_canvas_keeps_the_original_and_is_the_inpaint_of_the_prefill() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    let src = image::RgbaImage::from_fn(40, 32, |x, y| {
        image::Rgba([(x * 6) as u8, (y * 7) as u8, 120, 255])
    });
    src.save(&input).unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let run = |image: &Path, extra: &[&str], out: &Path| {
        let mut a = vec![
            "inpaint",
            "--model",
            s(&model),
            "--image",
            s(image),
            "--prompt",
            "a beach",
            "--steps",
            "2",
            "--seed",
            "5",
            "--size",
            "native",
            "--out",
            s(out),
        ];
        a.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_clearpaint"))
            .args(&a)
            .env("CLEARPAINT_DEVICE", "cpu")
            .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        image::open(out).unwrap().to_rgba8()
    };
    for fill in ["edge", "classical", "noise"] {
        let out = dir.path().join(format!("out_{fill}.png"));
        let img = run(
            &input,
            &[
                "--extend",
                "8,0,16,8",
                "--extend-fill",
                fill,
                "--mask-blur",
                "0",
            ],
            &out,
        );
        assert_eq!(img.dimensions(), (64, 40), "{fill}");
        for (x, y, p) in src.enumerate_pixels() {
            assert_eq!(
                img.get_pixel(x + 8, y),
                p,
                "{fill}: original pixel ({x}, {y}) changed"
            );
        }
    }
    // The same run as inpainting the pre-filled canvas with the border mask (the pipeline's
    // diffusers parity is tested in core/tests/inpaint_pipeline.rs).
    let (canvas, mask) = clearpaint_core::pipelines::outpaint::extend(
        &src,
        None,
        "8,0,16,8".parse().unwrap(),
        clearpaint_core::pipelines::outpaint::Prefill::Edge,
        5,
    );
    let (cp, mp) = (dir.path().join("canvas.png"), dir.path().join("border.png"));
    canvas.save(&cp).unwrap();
    mask.save(&mp).unwrap();
    let a = run(&input, &["--extend", "8,0,16,8"], &dir.path().join("a.png"));
    let b = run(&cp, &["--mask", s(&mp)], &dir.path().join("b.png"));
    assert_eq!(a, b);
    // Default feather (4 px): the original is exact beyond 4 px from the new border.
    for (x, y, p) in src.enumerate_pixels() {
        if (4..36).contains(&x) && y < 28 {
            assert_eq!(a.get_pixel(x + 8, y), p);
        }
    }
}

#[test]
fn soft_mask_mode_changes_grey_pixels_keeps_black_ones_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (image, mask) = (dir.path().join("in.png"), dir.path().join("m.png"));
    picture(48, 40).save(&image).unwrap();
    // A ramp: black on the left, grey in the middle, white on the right.
    GrayImage::from_fn(48, 40, |x, _| {
        Luma([(x.saturating_sub(8) * 8).min(255) as u8])
    })
    .save(&mask)
    .unwrap();
    let model = fixtures().join("tiny_sd_inpaint9");
    let run = |mode: &str, name: &str| {
        let out = dir.path().join(name);
        let mut a = base_args(s(&model), s(&image), s(&mask), s(&out));
        a.extend(["--region", "full", "--mask-blur", "0", "--mask-mode", mode]);
        let o = clearpaint(&a);
        assert!(o.status.success(), "{}", err(&o));
        (image::open(&out).unwrap().to_rgba8(), out)
    };
    let (soft, soft_path) = run("soft", "soft.png");
    let (binary, _) = run("binary", "binary.png");
    let input = image::open(&image).unwrap().to_rgba8();
    for (x, y, p) in soft.enumerate_pixels() {
        if x < 9 {
            assert_eq!(p, input.get_pixel(x, y), "black column {x} changed");
        }
    }
    assert_ne!(soft, binary, "grey levels change the run");
    assert!(parameters(&soft_path).contains("Mask mode: soft"));
    let out = dir.path().join("bad.png");
    let mut a = base_args(s(&model), s(&image), s(&mask), s(&out));
    a.extend(["--mask-mode", "fuzzy"]);
    let o = clearpaint(&a);
    assert!(
        !o.status.success() && err(&o).contains("binary, soft"),
        "{}",
        err(&o)
    );
    assert!(!out.exists());
}
