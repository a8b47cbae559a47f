//! The LoRAs of one run: those of the request (`--lora FILE[:WEIGHT]`) and the prompt's
//! `<lora:NAME:WEIGHT>` tags (looked up in the LoRA folder), merged into copies of the UNet and
//! the text encoder for this run only; the prompts without their tags.

use std::path::{Path, PathBuf};

use crate::lora::{self, LoraSpec, keys::Net};
use crate::models::clip::ClipTextModel;
use crate::models::unet::UNet2DConditionModel;
use crate::prompts::{EmbeddingDb, extra};
use crate::weights::WeightsError;

/// The networks and prompts a run uses once its LoRAs are applied.
pub struct Networks {
    /// The UNet with the LoRAs' UNet layers, when any.
    pub unet: Option<UNet2DConditionModel>,
    pub text_encoder: Option<ClipTextModel>,
    pub prompt: String,
    pub negative_prompt: String,
    /// Every LoRA applied, with its weights (for the PNG parameters).
    pub loras: Vec<LoraSpec>,
    /// The textual-inversion embeddings prompts may name.
    pub embeddings: Option<EmbeddingDb>,
}

/// `NAME.safetensors` in `dir` or a folder below it (A1111 looks in subfolders too).
pub fn find_lora(dir: &Path, name: &str) -> Option<PathBuf> {
    let direct = dir.join(format!("{name}.safetensors"));
    if direct.is_file() {
        return Some(direct);
    }
    crate::files::files_with_extension(dir, "safetensors")
        .into_iter()
        .find(|p| p.file_stem().is_some_and(|s| s == name))
}

/// The prompts without tags and every LoRA to apply, each file found; an error names a tag
/// whose file is not there. A LoRA tag in the negative prompt is removed and not applied (as
/// A1111 does), with a note.
pub fn resolve(
    prompt: &str,
    negative: &str,
    loras: &[LoraSpec],
    lora_dir: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<(String, String, Vec<LoraSpec>), String> {
    let (prompt, tags, ignored) = extra::extract(prompt).map_err(|e| format!("--prompt: {e}"))?;
    let (negative, neg_tags, neg_ignored) =
        extra::extract(negative).map_err(|e| format!("--negative-prompt: {e}"))?;
    for t in ignored.iter().chain(&neg_ignored) {
        notes.push(format!(
            "{t}: only LoRA tags are supported; the tag was ignored"
        ));
    }
    if !neg_tags.is_empty() {
        notes.push("LoRA tags in the negative prompt are not applied".into());
    }
    let mut specs = loras.to_vec();
    for t in tags {
        let dir =
            lora_dir.ok_or_else(|| format!("<lora:{}>: no LoRA folder (--lora-dir)", t.name))?;
        let path = find_lora(dir, &t.name).ok_or_else(|| {
            format!(
                "<lora:{}>: no {}.safetensors in {} (--lora-dir)",
                t.name,
                t.name,
                dir.display()
            )
        })?;
        specs.push(LoraSpec {
            path,
            te: t.te,
            unet: t.unet,
        });
    }
    for s in &specs {
        if !s.path.is_file() {
            return Err(format!("{}: no such LoRA file", s.path.display()));
        }
    }
    Ok((prompt, negative, specs))
}

/// Applies the resolved LoRAs to copies of the UNet and the text encoder.
pub fn apply(
    unet: &UNet2DConditionModel,
    text_encoder: &ClipTextModel,
    prompt: String,
    negative_prompt: String,
    loras: Vec<LoraSpec>,
) -> Result<Networks, WeightsError> {
    let files = lora::open_all(&loras)?;
    Ok(Networks {
        unet: lora::patch_net(unet, &files, Net::Unet)?,
        text_encoder: lora::patch_net(text_encoder, &files, Net::Text)?,
        prompt,
        negative_prompt,
        loras,
        embeddings: None,
    })
}

/// What A1111 writes for a run's LoRAs: the prompt with a `<lora:NAME:TE[:UNET]>` tag for each
/// `--lora` file (tags already in the prompt stay), and `Lora hashes` (`NAME: short hash`).
pub fn a1111_text(
    prompt: &str,
    loras: &[LoraSpec],
    lora_dir: Option<&Path>,
) -> (String, Option<String>) {
    let name = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut text = prompt.to_string();
    for s in loras {
        let w = if s.te == s.unet {
            format!("{}", s.te)
        } else {
            format!("{}:{}", s.te, s.unet)
        };
        text.push_str(&format!(" <lora:{}:{w}>", name(&s.path)));
    }
    let Ok((_, _, all)) = resolve(prompt, "", loras, lora_dir, &mut Vec::new()) else {
        return (text, None);
    };
    let hashes: Vec<String> = all
        .iter()
        .filter_map(|s| {
            Some(format!(
                "{}: {}",
                name(&s.path),
                lora::short_hash(&s.path).ok()?
            ))
        })
        .collect();
    (text, (!hashes.is_empty()).then(|| hashes.join(", ")))
}

/// A1111's `TI hashes` (`NAME: short hash`, the first 12 hex digits of the file's SHA-256) of
/// the embeddings the prompts use.
pub fn ti_hashes(
    tok: &crate::models::tokenizer::ClipTokenizer,
    dim: usize,
    dir: &Path,
    prompts: &[&str],
) -> Option<String> {
    use sha2::{Digest, Sha256};
    let db = EmbeddingDb::load(dir, tok, dim, &mut Vec::new());
    if db.is_empty() {
        return None;
    }
    let mut used: Vec<usize> = Vec::new();
    for p in prompts {
        let Ok((text, _, _)) = extra::extract(p) else {
            continue;
        };
        for c in crate::prompts::prepare(tok, &text, Some(&db)).chunks {
            for &(_, i) in &c.fixes {
                if !used.contains(&i) {
                    used.push(i);
                }
            }
        }
    }
    let hashes: Vec<String> = used
        .iter()
        .filter_map(|&i| {
            let e = &db.list[i];
            let bytes = std::fs::read(&e.path).ok()?;
            let hex: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Some(format!("{}: {}", e.name, &hex[..12]))
        })
        .collect();
    (!hashes.is_empty()).then(|| hashes.join(", "))
}
