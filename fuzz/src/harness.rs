//! One function per fuzz target: each takes arbitrary bytes, feeds them to a reader of user
//! files the way the CLI and the app do, and checks what must hold for any input (an error
//! that names the file and says what is wrong, never a panic; round trips that keep the text).
//!
//! Used by the libFuzzer targets in `fuzz/fuzz_targets/` and replayed over the committed
//! corpus and crashers by `core/tests/fuzz_regressions.rs`, which includes this file by path:
//! keep it to `std`, `clearpaint_core`, `image` and `serde_json`.

use std::path::{Path, PathBuf};

use clearpaint_core::imaging;
use clearpaint_core::models::check::{ModelKind, check_component, check_file, guess_kind};
use clearpaint_core::models::clip::ClipTextConfig;
use clearpaint_core::models::tokenizer::{ClipTokenizer, MAX_LEN};
use clearpaint_core::models::unet::UNetConfig;
use clearpaint_core::models::vae::{VaeConfig, VaeConfigJson};
use clearpaint_core::models::{check::check_pipeline, ldm};
use clearpaint_core::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};
use clearpaint_core::weights::SafetensorsFile;

/// The committed fixtures (random-weight models in the real layouts).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

/// A scratch folder of this process and thread: each input overwrites its files.
fn scratch() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let d = std::env::temp_dir().join(format!("clearpaint-fuzz-{}-{thread}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch folder");
    d
}

fn put(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("scratch write");
}

/// An error must name the file it is about.
fn names(err: &str, path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "error does not name {name}: {err}");
}

/// `.safetensors` as `--model`, `--vae`, `--latents` and `clearpaint check` open it: the header,
/// offsets, dtypes and shapes validated, every tensor read, then what `check` infers from it.
pub fn safetensors(data: &[u8]) {
    let path = scratch().join("fuzz.safetensors");
    put(&path, data);
    open_and_check(&path);
}

fn open_and_check(path: &Path) {
    let file = match SafetensorsFile::open(path) {
        Ok(f) => f,
        Err(e) => return names(&e.to_string(), path),
    };
    let keys: Vec<String> = file.keys().map(str::to_string).collect();
    for k in &keys {
        let entry = file.entry(k).expect("listed key has an entry").clone();
        let elems: usize = entry.shape.iter().product();
        match file.read_f32(k) {
            Ok(v) => assert_eq!(v.len(), elems, "{k}: read {} of {elems}", v.len()),
            Err(e) => names(&e.to_string(), path),
        }
        if let Ok(v) = file.read_ints(k) {
            assert_eq!(v.len(), elems, "{k}: read {} ints of {elems}", v.len());
        }
    }
    let _ = guess_kind(std::slice::from_ref(&file));
    if ldm::is_ldm_checkpoint(&file) {
        for r in [
            ldm::unet_config(&file).map(|c| c.validate()),
            ldm::vae_config(&file).map(|c| c.validate()),
            ldm::text_config(&file).map(|c| c.validate()),
        ] {
            match r {
                Ok(v) => assert_eq!(v, Ok(()), "an inferred config must be a valid one"),
                Err(e) => names(&e.to_string(), path),
            }
        }
    }
    drop(file);
    for part in check_file(path, None) {
        let _ = part.ok();
    }
}

/// The single-file checkpoint key inference, fed a tensor list: one `key d0,d1,...` per line
/// (a `.safetensors` of zeros with those keys and shapes is written, at most 4M elements).
pub fn ldm_keys(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for line in text.lines() {
        let Some((key, dims)) = line.rsplit_once(' ') else {
            continue;
        };
        let shape: Option<Vec<usize>> = dims
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().ok())
            .collect();
        let Some(shape) = shape else { continue };
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return;
        };
        if offset / 2 + n > 4 << 20 {
            return;
        }
        header.insert(
            key.to_string(),
            serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}),
        );
        offset += 2 * n;
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes.resize(bytes.len() + offset, 0);
    let path = scratch().join("fuzz-ldm.safetensors");
    put(&path, &bytes);
    open_and_check(&path);
}

/// Every JSON reader: the first byte picks which file the rest is. Component configs are
/// checked in a folder beside the fixture's real weights, as `clearpaint check` and loading
/// read them: a hostile config is refused before the model is built.
pub fn configs(data: &[u8]) {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(json);
    match which % 10 {
        0 => {
            if let Ok(c) = serde_json::from_str::<UNetConfig>(&text) {
                let _ = c.validate();
            }
        }
        1 => {
            if let Ok(j) = serde_json::from_str::<VaeConfigJson>(&text) {
                let _ = VaeConfig::from_json(&j);
            }
        }
        2 => {
            if let Ok(c) = serde_json::from_str::<ClipTextConfig>(&text) {
                let _ = c.validate();
            }
        }
        3 => scheduler(&text),
        4 => pipeline(json, which),
        5 => tokenizer_folder(json, which),
        6 => component(json, "unet_tiny_inpaint", ModelKind::UNet),
        7 => component(json, "vae_kl_tiny", ModelKind::Vae),
        8 => component(json, "clip_tiny", ModelKind::TextEncoder),
        _ => component(json, "vae_asym_tiny", ModelKind::AsymmetricVae),
    }
}

/// A scheduler config that validates must give finite noise levels for any step count.
fn scheduler(text: &str) {
    let Ok(c) = serde_json::from_str::<SchedulerConfig>(text) else {
        return;
    };
    if c.validate().is_err() {
        return;
    }
    let ac = c.alphas_cumprod();
    assert!(
        ac.iter().all(|a| a.is_finite()),
        "non-finite alphas_cumprod"
    );
    for kind in SchedulerKind::ALL {
        let mut s = Scheduler::new(kind, c.clone());
        for n in [1, 7, c.num_train_timesteps] {
            s.set_timesteps(n);
            assert!(
                s.init_noise_sigma().is_finite(),
                "{kind:?}: non-finite sigma"
            );
        }
    }
}

/// `model_index.json` and `scheduler/scheduler_config.json` of a pipeline folder.
fn pipeline(json: &[u8], which: u8) {
    let dir = scratch().join("pipeline");
    std::fs::create_dir_all(dir.join("scheduler")).unwrap();
    for sub in ["unet", "vae", "text_encoder", "tokenizer"] {
        let target = dir.join(sub);
        if !target.exists() {
            let src = fixtures().join("tiny_sd_inpaint9").join(sub);
            std::os::unix::fs::symlink(src, target).unwrap();
        }
    }
    let (file, other) = if which & 0x10 == 0 {
        (
            dir.join("model_index.json"),
            dir.join("scheduler/scheduler_config.json"),
        )
    } else {
        (
            dir.join("scheduler/scheduler_config.json"),
            dir.join("model_index.json"),
        )
    };
    put(&file, json);
    let _ = std::fs::remove_file(other);
    for part in check_pipeline(&dir) {
        for p in &part.problems {
            assert!(!p.is_empty());
        }
    }
}

/// A tokenizer folder: `tokenizer.json` alone, `tokenizer_config.json` beside the fixture's
/// `tokenizer.json`, or `vocab.json` + `merges.txt` (the bytes split at the first NUL);
/// whatever loads must encode to 77 ids in its vocabulary.
fn tokenizer_folder(bytes: &[u8], which: u8) {
    let src = fixtures().join("tiny_sd_inpaint9/tokenizer");
    let dir = scratch().join("tokenizer");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    match (which >> 4) % 3 {
        0 => put(&dir.join("tokenizer.json"), bytes),
        1 => {
            std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
            put(&dir.join("tokenizer_config.json"), bytes);
        }
        _ => {
            let cut = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            put(&dir.join("vocab.json"), &bytes[..cut]);
            put(&dir.join("merges.txt"), bytes.get(cut + 1..).unwrap_or(&[]));
        }
    }
    match ClipTokenizer::from_folder(&dir) {
        Ok(t) => {
            let e = t.encode("a photo of a cat, with a hat");
            assert_eq!(e.ids.len(), MAX_LEN);
            assert!(e.ids.iter().all(|&i| (i as usize) < t.vocab_len()));
        }
        Err(e) => assert!(!e.problem.is_empty()),
    }
}

/// A component folder with a hostile `config.json` and the fixture's weights.
fn component(json: &[u8], fixture: &str, kind: ModelKind) {
    let src = fixtures().join(fixture);
    let dir = scratch().join(fixture);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let target = dir.join(p.file_name().unwrap());
        if p.extension().is_some_and(|e| e == "safetensors") && !target.exists() {
            std::os::unix::fs::symlink(&p, &target).unwrap();
        }
    }
    put(&dir.join("config.json"), json);
    let _ = check_component(&dir, Some(kind)).ok();
}

/// `--image` / `--mask` and the batch and app loaders: any bytes under any image extension;
/// what loads becomes a mask for a small image as the pipelines prepare it.
pub fn image_load(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let ext = ["png", "jpg", "webp", "bmp", "tiff", "jpeg"][which as usize % 6];
    let path = scratch().join(format!("fuzz.{ext}"));
    put(&path, bytes);
    match imaging::load(&path) {
        Ok(loaded) => {
            let (w, h) = loaded.rgba.dimensions();
            assert!(w > 0 && h > 0, "an empty image loaded");
            let mask = image::DynamicImage::ImageRgba8(loaded.rgba).to_luma8();
            let mut notes = Vec::new();
            let m = clearpaint_core::pipelines::region::prepare_mask(&mask, 24, 16, &mut notes);
            assert_eq!(m.dimensions(), (24, 16));
            assert!(m.pixels().all(|p| p[0] == 0 || p[0] == 255));
        }
        Err(e) => names(&e.to_string(), &path),
    }
    let _ = imaging::png_text(&path);
}

/// The PNG metadata writer: any prompt text (and any keyword) is written and read back
/// unchanged (NULs dropped: no PNG text chunk can hold them), or refused with an error.
pub fn png_text(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let cut = (split as usize).min(text.len());
    let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap();
    let (key, value) = text.split_at(cut);
    let key = if key.is_empty() { "parameters" } else { key };
    let img = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 255]));
    let path = scratch().join("fuzz-out.png");
    let _ = std::fs::remove_file(&path);
    match imaging::save_png(&path, &img, false, &[(key, value.to_string())]) {
        Ok(()) => {
            let back = imaging::png_text(&path).expect("our own PNG reads back");
            let want: String = value.chars().filter(|&c| c != '\0').collect();
            assert_eq!(back, vec![(key.to_string(), want)]);
            let loaded = imaging::load(&path).expect("our own PNG loads");
            assert_eq!(loaded.rgba.dimensions(), (3, 2));
        }
        Err(e) => {
            names(&e.to_string(), &path);
            assert!(!path.exists(), "a refused write left a file");
        }
    }
}

/// The bundled CLIP tokenizer on arbitrary UTF-8: 77 ids, BOS first, EOS after the kept
/// tokens, every id in the vocabulary.
pub fn tokenizer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    thread_local! {
        static TOK: ClipTokenizer = ClipTokenizer::bundled();
    }
    TOK.with(|t| {
        let e = t.encode(text);
        assert_eq!(e.ids.len(), MAX_LEN);
        assert!(e.ids.iter().all(|&i| (i as usize) < t.vocab_len()));
        let all = t.tokenize(text);
        let kept = (all.len() - 2).min(MAX_LEN - 2);
        assert_eq!(e.dropped, all.len() - 2 - kept);
        assert_eq!(e.ids[..1 + kept], all[..1 + kept]);
        assert_eq!(
            e.ids[1 + kept],
            all[all.len() - 1],
            "EOS after the kept tokens"
        );
        assert!(e.ids[2 + kept..].iter().all(|&i| i == t.pad_id()));
    });
}

/// The A1111 prompt parser and chunker on arbitrary UTF-8: equal-weight runs merged, every
/// chunk 77 ids (BOS first) with 77 weights, no prompt token lost except those counted as
/// dropped past the chunk limit; `check` refuses exactly the non-finite weights.
pub fn prompt(data: &[u8]) {
    use clearpaint_core::prompts;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let runs = prompts::parse(text);
    assert!(!runs.is_empty());
    assert!(runs.windows(2).all(|w| w[0].1 != w[1].1), "unmerged runs");
    let finite = runs.iter().all(|r| r.1.is_finite());
    assert_eq!(prompts::check(text).is_ok(), finite);
    thread_local! {
        static TOK: ClipTokenizer = ClipTokenizer::bundled();
    }
    TOK.with(|t| {
        let c = prompts::chunk(t, &runs, None);
        assert!(!c.chunks.is_empty() && c.chunks.len() <= prompts::MAX_CHUNKS);
        for ch in &c.chunks {
            assert_eq!((ch.ids.len(), ch.weights.len()), (MAX_LEN, MAX_LEN));
            assert_eq!(ch.ids[0], t.bos_id());
            assert!(ch.ids.iter().all(|&i| (i as usize) < t.vocab_len()));
        }
        let total: usize = runs
            .iter()
            .filter(|r| !prompts::attention::is_break(r))
            .map(|r| t.tokenize(&r.0).len() - 2)
            .sum();
        assert_eq!(c.tokens + c.dropped, total, "prompt tokens lost");
    });
}

/// A LoRA file as `--lora` reads it: opened, its layers' ΔW built and merged into the tiny
/// pipeline's UNet and text encoder; any failure is an error naming the file.
pub fn lora(data: &[u8]) {
    use clearpaint_core::lora::{self, LoraSpec, keys::Net};
    use clearpaint_core::models::{clip, unet};
    thread_local! {
        static NETS: (unet::UNet2DConditionModel, clip::ClipTextModel) = {
            let base = fixtures().join("tiny_sd_inpaint9");
            let d = burn::tensor::Device::flex();
            (
                unet::load_folder(base.join("unet"), &d).unwrap().model,
                clip::load_folder(base.join("text_encoder"), &d).unwrap().model,
            )
        };
    }
    let path = scratch().join("fuzz-lora.safetensors");
    put(&path, data);
    let spec = LoraSpec {
        path: path.clone(),
        te: 0.5,
        unet: 1.0,
    };
    let files = match lora::open_all(std::slice::from_ref(&spec)) {
        Ok(f) => f,
        Err(e) => return names(&e.to_string(), &path),
    };
    NETS.with(|(u, te)| {
        if let Err(e) = lora::patch_net(u, &files, Net::Unet) {
            names(&e.to_string(), &path);
        }
        if let Err(e) = lora::patch_net(te, &files, Net::Text) {
            names(&e.to_string(), &path);
        }
    });
}
