//! The LoRA panel: the LoRA folder's files, each with a checkbox and a weight; the
//! embeddings folder; and under the prompt, its length in tokens and the words past the limit.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clearpaint_core::files::files_with_extension;
use clearpaint_core::lora::LoraSpec;
use clearpaint_core::models::tokenizer::ClipTokenizer;
use clearpaint_core::prompts::{self, CHUNK, MAX_CHUNKS};
use eframe::egui;

use super::app::ClearpaintApp;

/// One LoRA file of the folder: whether it is used and its weight (text encoder and UNet).
#[derive(Debug, Clone)]
pub struct LoraEntry {
    pub path: PathBuf,
    pub on: bool,
    pub weight: f64,
}

/// The LoRA and embedding folders and the LoRAs found.
#[derive(Debug, Clone)]
pub struct LoraPanel {
    pub dir: String,
    pub embedding_dir: String,
    pub found: Vec<LoraEntry>,
    /// The last prompt counted and its count (tokenizing runs only when the prompt changes,
    /// not every frame).
    counted: Option<(String, (String, Option<String>))>,
}

impl Default for LoraPanel {
    fn default() -> Self {
        LoraPanel {
            dir: "weights/loras".into(),
            embedding_dir: "weights/embeddings".into(),
            found: Vec::new(),
            counted: None,
        }
    }
}

impl LoraPanel {
    /// Lists the folder again, keeping the choice and weight of files still there.
    pub fn refresh(&mut self) {
        let old = std::mem::take(&mut self.found);
        self.found = files_with_extension(Path::new(&self.dir), "safetensors")
            .into_iter()
            .map(|path| {
                let prev = old.iter().find(|e| e.path == path);
                LoraEntry {
                    on: prev.is_some_and(|e| e.on),
                    weight: prev.map_or(1.0, |e| e.weight),
                    path,
                }
            })
            .collect();
    }

    /// [`token_count`] of `prompt`, remembered until the prompt changes.
    pub fn count(&mut self, prompt: &str) -> (String, Option<String>) {
        match &self.counted {
            Some((p, c)) if p == prompt => c.clone(),
            _ => {
                let c = token_count(prompt);
                self.counted = Some((prompt.to_string(), c.clone()));
                c
            }
        }
    }

    /// The LoRAs switched on.
    pub fn specs(&self) -> Vec<LoraSpec> {
        self.found
            .iter()
            .filter(|e| e.on)
            .map(|e| LoraSpec {
                path: e.path.clone(),
                te: e.weight,
                unet: e.weight,
            })
            .collect()
    }
}

fn tokenizer() -> &'static ClipTokenizer {
    static TOK: OnceLock<ClipTokenizer> = OnceLock::new();
    TOK.get_or_init(ClipTokenizer::bundled)
}

/// "N tokens" for a prompt, and the words past the limit when there are any.
pub fn token_count(prompt: &str) -> (String, Option<String>) {
    let text = prompts::extra::extract(prompt).map_or_else(|_| prompt.to_string(), |t| t.0);
    let tok = tokenizer();
    let c = prompts::prepare(tok, &text, None);
    let n = c.tokens + c.dropped;
    let label = format!("{n} tokens, {} chunk(s) of {CHUNK}", c.chunks.len());
    if c.dropped == 0 {
        return (label, None);
    }
    let all: Vec<u32> = prompts::parse(&text)
        .iter()
        .filter(|r| !prompts::attention::is_break(r))
        .flat_map(|r| {
            let ids = tok.tokenize(&r.0);
            ids[1..ids.len() - 1].to_vec()
        })
        .collect();
    let past = tok.decode(&all[all.len().saturating_sub(c.dropped)..]);
    let limit = MAX_CHUNKS * CHUNK;
    (label, Some(format!("past {limit} tokens, dropped: {past}")))
}

impl ClearpaintApp {
    /// The LoRA folder's files with their checkboxes and weights, and the embeddings folder.
    pub(super) fn loras_section(&mut self, ui: &mut egui::Ui) {
        let p = &mut self.loras;
        ui.separator();
        egui::CollapsingHeader::new("LoRAs and embeddings")
            .default_open(false)
            .show(ui, |ui| {
                let l_dir = ui.label("LoRA folder");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut p.dir).desired_width(150.0))
                        .labelled_by(l_dir.id);
                    if ui.button("Refresh").clicked() {
                        p.refresh();
                    }
                });
                if p.found.is_empty() {
                    ui.weak("no .safetensors LoRAs in this folder");
                }
                for e in &mut p.found {
                    let name = e.path.file_stem().unwrap_or_default().to_string_lossy();
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut e.on, name.as_ref());
                        let w = egui::Slider::new(&mut e.weight, -2.0..=2.0).text("weight");
                        ui.add_enabled(e.on, w);
                    });
                }
                let l_emb = ui.label("Embeddings folder");
                ui.add(egui::TextEdit::singleline(&mut p.embedding_dir))
                    .labelled_by(l_emb.id);
            });
    }
}
