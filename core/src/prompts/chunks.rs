//! A1111's long-prompt handling (`modules/sd_hijack_clip.py`, `tokenize_line`), reimplemented:
//! the weighted runs of a prompt are tokenized run by run and packed into chunks of 75 tokens,
//! each sent to CLIP as its own 77-token sequence (BOS, 75, EOS; padding after the first EOS).
//!
//! - `BREAK` closes the current chunk (padded to 75).
//! - A chunk that is full in the middle of text moves the words after its last comma into the
//!   next chunk when that comma is within the last 20 tokens (A1111's default
//!   `comma_padding_backtrack`), so a phrase is not cut in two.
//! - Every token keeps its run's weight; BOS, EOS and padding have weight 1.
//! - A textual-inversion embedding's name becomes as many placeholder tokens as it has vectors
//!   (starting a new chunk if they do not fit), recorded as a fix: where its vectors go. (When
//!   comma backtracking moves the words after a comma to the next chunk, their fixes move with
//!   them; A1111 leaves them behind in the old chunk.)

use crate::models::tokenizer::{ClipTokenizer, MAX_LEN};

use super::attention::{Run, is_break};
use super::embeddings::EmbeddingDb;

/// Tokens per chunk between BOS and EOS.
pub const CHUNK: usize = MAX_LEN - 2;
/// A1111's default `comma_padding_backtrack`.
pub const COMMA_BACKTRACK: usize = 20;
/// The most chunks a prompt may have (1200 tokens); the rest is dropped with a note.
pub const MAX_CHUNKS: usize = 16;

/// One 77-token CLIP input, the weight of each position, and the embeddings placed in it
/// (position of the first vector, index in the [`EmbeddingDb`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub ids: Vec<u32>,
    pub weights: Vec<f64>,
    pub fixes: Vec<(usize, usize)>,
}

/// A prompt as chunks, with how many of its tokens they hold and how many did not fit in
/// [`MAX_CHUNKS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Chunked {
    pub chunks: Vec<Chunk>,
    pub tokens: usize,
    pub dropped: usize,
}

struct Packer<'a> {
    tok: &'a ClipTokenizer,
    chunks: Vec<Chunk>,
    ids: Vec<u32>,
    weights: Vec<f64>,
    last_comma: Option<usize>,
    /// Embeddings in the current chunk: (offset among its prompt tokens, index).
    fixes: Vec<(usize, usize)>,
    /// Prompt tokens in each closed chunk.
    lens: Vec<usize>,
}

impl Packer<'_> {
    /// Closes the current chunk: padded to 75 with EOS, then BOS / EOS around, then the
    /// positions after the first EOS set to the pad token (A1111's `process_tokens`).
    fn next_chunk(&mut self) {
        let (eos, pad) = (self.tok.eos_id(), self.tok.pad_id());
        let mut ids = Vec::with_capacity(MAX_LEN);
        ids.push(self.tok.bos_id());
        self.lens.push(self.ids.len());
        ids.append(&mut self.ids);
        ids.resize(MAX_LEN - 1, eos);
        ids.push(eos);
        // (A1111 does this only where the pad token is not EOS: SD 2.x, tiny test models.)
        if pad != eos
            && let Some(first) = ids.iter().position(|&i| i == eos)
        {
            ids[first + 1..].iter_mut().for_each(|i| *i = pad);
        }
        let mut weights = Vec::with_capacity(MAX_LEN);
        weights.push(1.0);
        weights.append(&mut self.weights);
        weights.resize(MAX_LEN, 1.0);
        let fixes = self.fixes.drain(..).map(|(o, i)| (o + 1, i)).collect();
        self.chunks.push(Chunk {
            ids,
            weights,
            fixes,
        });
        self.last_comma = None;
    }

    /// What A1111 does before each token: note a comma; when the chunk is full, move the
    /// words after a recent comma to the next chunk; close a full chunk.
    fn before(&mut self, token: u32, comma: Option<u32>) {
        if Some(token) == comma {
            self.last_comma = Some(self.ids.len());
        } else if let Some(c) = self.last_comma
            && self.ids.len() == CHUNK
            && self.ids.len() - c <= COMMA_BACKTRACK
        {
            let ids = self.ids.split_off(c + 1);
            let weights = self.weights.split_off(c + 1);
            let (keep, moved): (Vec<_>, Vec<_>) = self.fixes.iter().partition(|f| f.0 <= c);
            self.fixes = keep;
            self.next_chunk();
            self.ids = ids;
            self.weights = weights;
            self.fixes = moved.into_iter().map(|(o, i)| (o - c - 1, i)).collect();
        }
        if self.ids.len() == CHUNK {
            self.next_chunk();
        }
    }

    /// One run's tokens, with embeddings where their names appear.
    fn run(&mut self, tokens: &[u32], weight: f64, comma: Option<u32>, db: Option<&EmbeddingDb>) {
        let mut pos = 0;
        while pos < tokens.len() {
            self.before(tokens[pos], comma);
            let Some((i, len)) = db.and_then(|db| db.find(tokens, pos)) else {
                self.ids.push(tokens[pos]);
                self.weights.push(weight);
                pos += 1;
                continue;
            };
            let n = db.map_or(0, |db| db.list[i].n);
            if self.ids.len() + n > CHUNK {
                self.next_chunk();
            }
            self.fixes.push((self.ids.len(), i));
            self.ids.extend(std::iter::repeat_n(0, n));
            self.weights.extend(std::iter::repeat_n(weight, n));
            pos += len;
        }
    }
}

/// The chunks of a parsed prompt, with the embeddings of `db` where their names appear.
pub fn chunk(tok: &ClipTokenizer, runs: &[Run], db: Option<&EmbeddingDb>) -> Chunked {
    let comma = match tok.tokenize(",").as_slice() {
        [_, c, _] => Some(*c),
        _ => None,
    };
    let mut p = Packer {
        tok,
        chunks: Vec::new(),
        ids: Vec::new(),
        weights: Vec::new(),
        last_comma: None,
        fixes: Vec::new(),
        lens: Vec::new(),
    };
    for run in runs {
        if is_break(run) {
            p.next_chunk();
            continue;
        }
        let ids = tok.tokenize(&run.0);
        p.run(&ids[1..ids.len() - 1], run.1, comma, db);
    }
    if !p.ids.is_empty() || p.chunks.is_empty() {
        p.next_chunk();
    }
    let mut chunks = p.chunks;
    let tokens = p.lens.iter().take(MAX_CHUNKS).sum();
    let dropped = p.lens.iter().skip(MAX_CHUNKS).sum();
    chunks.truncate(MAX_CHUNKS);
    Chunked {
        chunks,
        tokens,
        dropped,
    }
}
