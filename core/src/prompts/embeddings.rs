//! Textual-inversion embeddings, as A1111's `modules/textual_inversion/textual_inversion.py`
//! uses them: each `.safetensors` in the embeddings folder is named by its file stem; where the
//! stem's tokens appear in a prompt, they are replaced by the file's vectors (one CLIP token
//! each). Files: A1111's `emb_params [n, D]`, or diffusers' one tensor `{"<token>": [D] or
//! [n, D]}`. SDXL files (`clip_l` / `clip_g`) and vectors of another width are skipped with a
//! note, as A1111 skips them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::models::tokenizer::ClipTokenizer;
use crate::weights::SafetensorsFile;

/// The most vectors one embedding may have (a chunk holds 75 tokens).
pub const MAX_VECTORS: usize = 75;

/// One embedding: its name, `n` vectors of width `dim` (row-major) and its file.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub name: String,
    pub vectors: Vec<f32>,
    pub n: usize,
    pub path: PathBuf,
}

/// The embeddings of a folder, looked up by the token ids of their names.
#[derive(Debug, Default)]
pub struct EmbeddingDb {
    pub list: Vec<Embedding>,
    /// First token id of a name -> (the name's ids, index in `list`), longest first.
    by_first: HashMap<u32, Vec<(Vec<u32>, usize)>>,
}

/// The vectors of one file, or why it is skipped.
fn vectors(path: &Path, dim: usize) -> Result<(Vec<f32>, usize), String> {
    let f = SafetensorsFile::open(path).map_err(|e| e.problem())?;
    if f.entry("clip_l").is_some() || f.entry("clip_g").is_some() {
        return Err("an SDXL embedding (clip_l / clip_g)".into());
    }
    let key = if f.entry("emb_params").is_some() {
        "emb_params".to_string()
    } else if f.len() == 1 {
        f.keys().next().unwrap_or_default().to_string()
    } else {
        return Err("neither emb_params nor a single tensor".into());
    };
    let shape = f.entry(&key).map(|e| e.shape.clone()).unwrap_or_default();
    let n = match shape[..] {
        [d] if d == dim => 1,
        [n, d] if d == dim => n,
        _ => {
            return Err(format!(
                "vectors of shape {shape:?}, this model's are {dim} wide"
            ));
        }
    };
    if n == 0 || n > MAX_VECTORS {
        return Err(format!("{n} vectors (1 to {MAX_VECTORS} fit a prompt)"));
    }
    let v = f.read_f32(&key).map_err(|e| e.problem())?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err("non-finite values".into());
    }
    Ok((v, n))
}

impl EmbeddingDb {
    /// Every `.safetensors` in `dir` (and folders below it) whose vectors are `dim` wide; the
    /// others are listed in `notes`. A folder that does not exist holds no embeddings.
    pub fn load(dir: &Path, tok: &ClipTokenizer, dim: usize, notes: &mut Vec<String>) -> Self {
        let mut db = EmbeddingDb::default();
        let files = crate::files::files_with_extension(dir, "safetensors");
        for path in files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match vectors(&path, dim) {
                Ok((vectors, n)) => db.add(
                    tok,
                    Embedding {
                        name,
                        vectors,
                        n,
                        path,
                    },
                ),
                Err(e) => notes.push(format!("{}: skipped: {e}", path.display())),
            }
        }
        db
    }

    /// Adds an embedding under the ids of its name (the first of two with one name wins).
    pub fn add(&mut self, tok: &ClipTokenizer, e: Embedding) {
        let ids = tok.tokenize(&e.name);
        let ids = ids[1..ids.len() - 1].to_vec();
        if ids.is_empty() || self.list.iter().any(|o| o.name == e.name) {
            return;
        }
        let slot = self.by_first.entry(ids[0]).or_default();
        slot.push((ids, self.list.len()));
        slot.sort_by_key(|(ids, _)| std::cmp::Reverse(ids.len()));
        self.list.push(e);
    }

    /// The embedding whose name's ids start at `tokens[pos]`, and how many ids that is.
    pub fn find(&self, tokens: &[u32], pos: usize) -> Option<(usize, usize)> {
        self.by_first
            .get(&tokens[pos])?
            .iter()
            .find_map(|(ids, i)| tokens[pos..].starts_with(ids).then_some((*i, ids.len())))
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
