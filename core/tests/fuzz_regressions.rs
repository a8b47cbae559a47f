//! Replays every committed fuzz input (the seed corpora and each crasher found, once fixed)
//! through the same harnesses the libFuzzer targets run (`fuzz/src/harness.rs`, included by
//! path): each input must give an error that names its file, or a result that keeps the
//! harness's invariants; never a panic. `tools/fuzz/run.sh` runs the targets themselves.

#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no inputs", dir.display());
    for p in inputs {
        let data = std::fs::read(&p).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{}: the harness failed on this input", p.display());
        }
    }
}

#[test]
fn safetensors_inputs() {
    replay("safetensors", harness::safetensors);
}

#[test]
fn ldm_key_inputs() {
    replay("ldm_keys", harness::ldm_keys);
}

#[test]
fn config_inputs() {
    replay("configs", harness::configs);
}

#[test]
fn image_inputs() {
    replay("image_load", harness::image_load);
}

#[test]
fn png_text_inputs() {
    replay("png_text", harness::png_text);
}

#[test]
fn tokenizer_inputs() {
    replay("tokenizer", harness::tokenizer);
}

#[test]
fn prompt_inputs() {
    replay("prompt", harness::prompt);
}

#[test]
fn lora_inputs() {
    replay("lora", harness::lora);
}
