//! The CLIP tokenizer against transformers' CLIPTokenizer on the real 49408-token vocabulary
//! (tools/reference/make_tokenizer_fixture.py), from the bundled vocabulary and from the two
//! folder layouts (vocab.json + merges.txt, tokenizer.json).

use clearpaint_core::models::tokenizer::{ClipTokenizer, MAX_LEN};
use clearpaint_core::testing::fixture;

struct Case {
    prompt: String,
    ids: Vec<u32>,
    padded: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("clip_tokenizer_ids.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |x: &serde_json::Value| {
        x.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect()
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            prompt: c["prompt"].as_str().unwrap().to_string(),
            ids: ids(&c["ids"]),
            padded: ids(&c["padded"]),
        })
        .collect()
}

fn check(tok: &ClipTokenizer, label: &str) {
    let cases = cases();
    assert!(cases.len() >= 30);
    for c in &cases {
        assert_eq!(tok.tokenize(&c.prompt), c.ids, "{label}: {:?}", c.prompt);
        let enc = tok.encode(&c.prompt);
        assert_eq!(enc.ids, c.padded, "{label} (padded): {:?}", c.prompt);
        assert_eq!(enc.ids.len(), MAX_LEN);
        assert_eq!(
            enc.dropped,
            c.ids.len().saturating_sub(MAX_LEN),
            "{:?}",
            c.prompt
        );
    }
}

#[test]
fn bundled_vocabulary_matches_transformers() {
    let tok = ClipTokenizer::bundled();
    assert_eq!(tok.vocab_size(), 49408);
    check(&tok, "bundled");
    // Long prompts say how much was cut.
    let long = tok.encode(&"word ".repeat(100));
    assert_eq!(long.dropped, 25);
}

/// Writes the bundled vocabulary in the diffusers folder layout and as tokenizer.json.
fn write_folders(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::io::Read;
    let mut gz = Vec::new();
    std::fs::File::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/clip/bpe_simple_vocab_16e6.txt.gz"),
    )
    .unwrap()
    .read_to_end(&mut gz)
    .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let merges: Vec<&str> = text.split('\n').skip(1).take(49152 - 256 - 2).collect();
    let tok = ClipTokenizer::bundled();
    // Rebuild the token list in id order from the bundled tokenizer's own encoding of bytes.
    let mut vocab = serde_json::Map::new();
    // GPT-2 byte characters in vocabulary order: printable bytes first, then the others
    // mapped to 256, 257, ...
    let bytes: Vec<char> = {
        let mut printable: Vec<u32> = (33u32..=126)
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut chars = printable.clone();
        let mut n = 0;
        for b in 0..256u32 {
            if !printable.contains(&b) {
                printable.push(b);
                chars.push(256 + n);
                n += 1;
            }
        }
        chars
            .into_iter()
            .map(|c| char::from_u32(c).unwrap())
            .collect()
    };
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    tokens.extend(bytes.iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), serde_json::json!(i));
    }
    assert_eq!(vocab.len(), tok.vocab_size());
    let a = dir.join("diffusers");
    std::fs::create_dir(&a).unwrap();
    std::fs::write(a.join("vocab.json"), serde_json::to_string(&vocab).unwrap()).unwrap();
    std::fs::write(
        a.join("merges.txt"),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )
    .unwrap();
    std::fs::write(
        a.join("tokenizer_config.json"),
        r#"{"pad_token": "<|endoftext|>", "model_max_length": 77}"#,
    )
    .unwrap();
    let b = dir.join("transformers5");
    std::fs::create_dir(&b).unwrap();
    let tj = serde_json::json!({"model": {"type": "BPE", "vocab": vocab, "merges": merges}});
    std::fs::write(
        b.join("tokenizer.json"),
        serde_json::to_string(&tj).unwrap(),
    )
    .unwrap();
    (a, b)
}

#[test]
fn folder_layouts_match_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let (diffusers, tf5) = write_folders(dir.path());
    check(
        &ClipTokenizer::from_folder(&diffusers).unwrap(),
        "vocab.json + merges.txt",
    );
    check(&ClipTokenizer::from_folder(&tf5).unwrap(), "tokenizer.json");
}

#[test]
fn pad_token_comes_from_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (diffusers, _) = write_folders(dir.path());
    // SD 2.x folders pad with "!" (id 0).
    std::fs::write(
        diffusers.join("tokenizer_config.json"),
        r#"{"pad_token": {"content": "!"}}"#,
    )
    .unwrap();
    let tok = ClipTokenizer::from_folder(&diffusers).unwrap();
    assert_eq!(tok.pad_id(), 0);
    let enc = tok.encode("a cat");
    assert_eq!(&enc.ids[..4], &[49406, 320, 2368, 49407]);
    assert!(enc.ids[4..].iter().all(|&i| i == 0));
}

#[test]
fn missing_tokenizer_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = ClipTokenizer::from_folder(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vocab.json + merges.txt or tokenizer.json"),
        "{err}"
    );
    std::fs::write(dir.path().join("vocab.json"), "[1, 2]").unwrap();
    std::fs::write(dir.path().join("merges.txt"), "#version: 0.2\n").unwrap();
    let err = ClipTokenizer::from_folder(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vocab.json") && err.contains("not a token"),
        "{err}"
    );
    // A broken folder tokenizer is an error, never silently replaced by the bundled one...
    assert!(ClipTokenizer::from_folder_or_bundled(Some(dir.path())).is_err());
    // ...but a folder without one (or no folder) uses the bundled vocabulary.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        ClipTokenizer::from_folder_or_bundled(Some(empty.path()))
            .unwrap()
            .vocab_size(),
        49408
    );
    assert_eq!(
        ClipTokenizer::from_folder_or_bundled(None)
            .unwrap()
            .vocab_size(),
        49408
    );
}

#[test]
fn decode_gives_back_the_normalised_text() {
    let tok = clearpaint_core::models::tokenizer::ClipTokenizer::bundled();
    for (text, want) in [
        ("A Photo of a CAT", "a photo of a cat"),
        ("café, 猫の写真 🐈!", "café , 猫の写真 🐈!"),
        ("", ""),
    ] {
        assert_eq!(tok.decode(&tok.tokenize(text)), want, "{text:?}");
    }
}
