//! A1111 prompts (tools/reference/make_prompt_fixtures.py): emphasis syntax, escapes, BREAK
//! and long prompts give A1111's runs and chunks exactly, and its embeddings (CLIP with the
//! real vocabulary and formula weights) within tolerance, on flex and wgpu.

use burn::tensor::Device;
use clearpaint_core::models::clip::{self, ClipTextModel};
use clearpaint_core::models::tokenizer::ClipTokenizer;
use clearpaint_core::pipelines::prompt::TextModels;
use clearpaint_core::prompts::{self, EmbeddingDb};
use clearpaint_core::testing::{
    assert_close, fixture, test_devices, to_vec, write_formula_weights_as,
};
use clearpaint_core::weights::SafetensorsFile;
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("prompt_a1111.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn prompt_list(r: &Value) -> &Vec<Value> {
    r["prompts"].as_array().unwrap()
}

/// Equal to the last bit but one: serde_json's default float parsing may be 1 ulp off.
fn same_weights(ours: &[f64], reference: &[f64], text: &str) {
    assert_eq!(ours.len(), reference.len(), "weights of {text:?}");
    for (a, b) in ours.iter().zip(reference) {
        assert!(
            (a - b).abs() <= 1e-15 * b.abs(),
            "weights of {text:?}: {a} vs {b}"
        );
    }
}

#[test]
fn runs_and_chunks_are_a1111s_exactly() {
    let r = reference();
    let tok = ClipTokenizer::bundled();
    assert!(prompt_list(&r).len() >= 30);
    for p in prompt_list(&r) {
        let text = p["prompt"].as_str().unwrap();
        let runs: Vec<(String, f64)> = p["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_f64().unwrap()))
            .collect();
        let ours = prompts::parse(text);
        let texts = |r: &[(String, f64)]| r.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&ours), texts(&runs), "runs of {text:?}");
        let w = |r: &[(String, f64)]| r.iter().map(|x| x.1).collect::<Vec<_>>();
        same_weights(&w(&ours), &w(&runs), text);
        let chunked = prompts::prepare(&tok, text, None);
        let ids: Vec<Vec<u32>> = serde_json::from_value(p["ids"].clone()).unwrap();
        let weights: Vec<Vec<f64>> = serde_json::from_value(p["weights"].clone()).unwrap();
        let ours_ids: Vec<Vec<u32>> = chunked.chunks.iter().map(|c| c.ids.clone()).collect();
        let ours_w: Vec<Vec<f64>> = chunked.chunks.iter().map(|c| c.weights.clone()).collect();
        assert_eq!(ours_ids, ids, "chunk ids of {text:?}");
        assert_eq!(ours_w.len(), weights.len(), "chunks of {text:?}");
        for (a, b) in ours_w.iter().zip(&weights) {
            same_weights(a, b, text);
        }
        assert_eq!(chunked.dropped, 0);
    }
}

/// The fixture's CLIP (real vocabulary size, tiny widths) with formula weights, as a
/// transformers folder.
fn encoder_folder(r: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::to_string(&r["config"]).unwrap();
    std::fs::write(dir.path().join("config.json"), &config).unwrap();
    let c: clip::ClipTextConfig = serde_json::from_str(&config).unwrap();
    write_formula_weights_as(
        ClipTextModel::new(&c, &Device::flex()),
        &dir.path().join("model.safetensors"),
        safetensors::Dtype::F32,
        |k| k.to_string(),
    );
    dir
}

#[test]
fn embeddings_and_padded_contexts_match_a1111() {
    let r = reference();
    let io = SafetensorsFile::open(fixture("prompt_a1111_io.safetensors")).unwrap();
    let dir = encoder_folder(&r);
    let tok = ClipTokenizer::bundled();
    for dev in test_devices() {
        let loaded = clip::load_folder(dir.path(), &dev.device).unwrap();
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        let text = TextModels {
            tokenizer: &tok,
            encoder: &loaded.model,
            device: &dev.device,
            embeddings: None,
        };
        // A1111's own float32 arithmetic is the reference: 1e-5 on the CPU.
        let tol = if dev.name == "flex" {
            1e-5
        } else {
            dev.tolerance
        };
        for (i, p) in prompt_list(&r).iter().enumerate() {
            let prompt = p["prompt"].as_str().unwrap();
            let key = format!("z{i}");
            let z = text.embed(prompt, &mut Vec::new(), "the prompt");
            assert_eq!(
                z.dims().to_vec(),
                io.entry(&key).unwrap().shape,
                "{prompt:?}"
            );
            let what = format!("embedding of {prompt:?} on {}", dev.name);
            assert_close(&what, &to_vec(z), &io.read_f32(&key).unwrap(), tol);
        }
        for (j, pair) in r["pairs"].as_array().unwrap().iter().enumerate() {
            let (p, n) = (
                pair["prompt"].as_str().unwrap(),
                pair["negative"].as_str().unwrap(),
            );
            let key = format!("pair{j}");
            let ctx = text.context(p, n, true, &mut Vec::new());
            assert_eq!(
                ctx.dims().to_vec(),
                io.entry(&key).unwrap().shape,
                "pair {j}"
            );
            let what = format!("context of pair {j} on {}", dev.name);
            assert_close(&what, &to_vec(ctx), &io.read_f32(&key).unwrap(), tol);
        }
    }
}

#[test]
fn a_prompt_past_the_chunk_limit_drops_the_rest_and_says_how_much() {
    let tok = ClipTokenizer::bundled();
    let limit = prompts::MAX_CHUNKS * prompts::CHUNK;
    let chunked = prompts::prepare(&tok, &"word ".repeat(limit + 30), None);
    assert_eq!(chunked.chunks.len(), prompts::MAX_CHUNKS);
    assert_eq!(chunked.dropped, 30);
}

#[test]
fn textual_inversion_embeddings_are_placed_and_encoded_as_a1111_does() {
    let r = reference();
    let io = SafetensorsFile::open(fixture("prompt_a1111_io.safetensors")).unwrap();
    let dir = encoder_folder(&r);
    let tok = ClipTokenizer::bundled();
    let mut notes = Vec::new();
    let db = EmbeddingDb::load(&fixture("embeddings"), &tok, 16, &mut notes);
    let names: Vec<&str> = db.list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bigembed", "cat-toy", "mystyle"]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("sdxl_thing") && notes[0].contains("SDXL"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("wide") && notes[1].contains("16 wide"),
        "{notes:?}"
    );
    for dev in test_devices() {
        let loaded = clip::load_folder(dir.path(), &dev.device).unwrap();
        let text = TextModels {
            tokenizer: &tok,
            encoder: &loaded.model,
            device: &dev.device,
            embeddings: Some(&db),
        };
        let tol = if dev.name == "flex" {
            1e-5
        } else {
            dev.tolerance
        };
        for (i, p) in r["ti_prompts"].as_array().unwrap().iter().enumerate() {
            let prompt = p["prompt"].as_str().unwrap();
            let chunked = prompts::prepare(&tok, prompt, Some(&db));
            let ids: Vec<Vec<u32>> = serde_json::from_value(p["ids"].clone()).unwrap();
            let ours: Vec<Vec<u32>> = chunked.chunks.iter().map(|c| c.ids.clone()).collect();
            assert_eq!(ours, ids, "ids of {prompt:?}");
            let fixes: Vec<Vec<(usize, String)>> =
                serde_json::from_value(p["fixes"].clone()).unwrap();
            let ours: Vec<Vec<(usize, String)>> = chunked
                .chunks
                .iter()
                .map(|c| {
                    c.fixes
                        .iter()
                        .map(|&(at, e)| (at, db.list[e].name.clone()))
                        .collect()
                })
                .collect();
            assert_eq!(ours, fixes, "embeddings of {prompt:?}");
            let z = text.embed(prompt, &mut Vec::new(), "the prompt");
            let what = format!("embedding of {prompt:?} on {}", dev.name);
            assert_close(
                &what,
                &to_vec(z),
                &io.read_f32(&format!("ti{i}")).unwrap(),
                tol,
            );
        }
    }
}
