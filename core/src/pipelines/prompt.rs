//! Prompts to the UNet's text context, as A1111 computes it: the prompt's chunks
//! (`crate::prompts`) each encoded by CLIP, weighted per token with the mean restored
//! (A1111's default "Original" emphasis), and joined along the token axis; for
//! classifier-free guidance stacked as `[negative, prompt]`, the shorter padded with the empty
//! prompt's chunk so both have as many. A plain prompt of up to 75 tokens is one chunk with
//! every weight 1: exactly the 77-token embedding diffusers computes.

use burn::tensor::{Device, Tensor, TensorData};

use crate::models::clip::{self, ClipTextModel};
use crate::models::tokenizer::{ClipTokenizer, MAX_LEN};
use crate::prompts::{self, Chunk, EmbeddingDb, MAX_CHUNKS};

/// The text encoder and its tokenizer, as a pipeline holds them, and the textual-inversion
/// embeddings prompts may name.
pub struct TextModels<'a> {
    pub tokenizer: &'a ClipTokenizer,
    pub encoder: &'a ClipTextModel,
    pub device: &'a Device,
    pub embeddings: Option<&'a EmbeddingDb>,
}

impl TextModels<'_> {
    /// `[1, 77 x chunks, hidden]` embeddings of one prompt; `what` names it in the note about
    /// dropped tokens.
    pub fn embed(&self, prompt: &str, notes: &mut Vec<String>, what: &str) -> Tensor<3> {
        let chunked = prompts::prepare(self.tokenizer, prompt, self.embeddings);
        if chunked.dropped > 0 {
            notes.push(format!(
                "{what} is longer than {} tokens: the last {} token(s) were dropped",
                MAX_CHUNKS * prompts::CHUNK,
                chunked.dropped
            ));
        }
        let parts = chunked.chunks.iter().map(|c| self.embed_chunk(c)).collect();
        Tensor::cat(parts, 1)
    }

    /// One chunk through CLIP, then A1111's emphasis: `z * w`, rescaled so the mean of the
    /// chunk's embedding is what it was before weighting.
    fn embed_chunk(&self, c: &Chunk) -> Tensor<3> {
        let ids = clip::ids_tensor(std::slice::from_ref(&c.ids), self.device);
        let z = match self.embeddings {
            Some(db) if !c.fixes.is_empty() => {
                let mut tokens = self.encoder.token_embeddings(ids);
                let dim = tokens.dims()[2];
                for &(at, i) in &c.fixes {
                    // As A1111's EmbeddingsWithFixes: the vectors that fit before the end.
                    let n = db.list[i].n.min(MAX_LEN - at);
                    let v = db.list[i].vectors[..n * dim].to_vec();
                    let v = Tensor::<3>::from_data(TensorData::new(v, [1, n, dim]), self.device);
                    tokens = tokens.slice_assign([0..1, at..at + n, 0..dim], v);
                }
                self.encoder.forward_tokens(tokens, 0)
            }
            _ => self.encoder.forward(ids),
        };
        if c.weights.iter().all(|&w| w == 1.0) {
            return z;
        }
        let w: Vec<f32> = c.weights.iter().map(|&w| w as f32).collect();
        let w = Tensor::<3>::from_data(TensorData::new(w, [1, MAX_LEN, 1]), self.device);
        let before = z.clone().mean();
        let weighted = z * w;
        let after = weighted.clone().mean();
        weighted * (before / after).reshape([1, 1, 1])
    }

    /// The UNet's context: `[negative, prompt]` (batch 2) with guidance, `[prompt]` without.
    pub fn context(
        &self,
        prompt: &str,
        negative: &str,
        guidance: bool,
        notes: &mut Vec<String>,
    ) -> Tensor<3> {
        let cond = self.embed(prompt, notes, "the prompt");
        if !guidance {
            return cond;
        }
        let uncond = self.embed(negative, notes, "the negative prompt");
        let (c, u) = (cond.dims()[1], uncond.dims()[1]);
        let pad = |t: Tensor<3>, to: usize| {
            if t.dims()[1] >= to {
                return t;
            }
            let empty = self.embed("", &mut Vec::new(), "");
            let repeats = (to - t.dims()[1]) / MAX_LEN;
            Tensor::cat(vec![t, empty.repeat_dim(1, repeats)], 1)
        };
        let (cond, uncond) = (pad(cond, u), pad(uncond, c));
        Tensor::cat(vec![uncond, cond], 0)
    }
}
