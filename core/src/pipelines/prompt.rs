//! Prompts to the UNet's text context: tokenized (77 tokens, with a note when a prompt is cut),
//! encoded by CLIP, and for classifier-free guidance stacked as `[negative, prompt]`.

use burn::tensor::{Device, Tensor};

use crate::models::clip::{self, ClipTextModel};
use crate::models::tokenizer::ClipTokenizer;

/// The text encoder and its tokenizer, as a pipeline holds them.
pub struct TextModels<'a> {
    pub tokenizer: &'a ClipTokenizer,
    pub encoder: &'a ClipTextModel,
    pub device: &'a Device,
}

impl TextModels<'_> {
    /// `[1, 77, hidden]` embeddings of one prompt; `what` names it in the note about dropped
    /// tokens.
    pub fn embed(&self, prompt: &str, notes: &mut Vec<String>, what: &str) -> Tensor<3> {
        let enc = self.tokenizer.encode(prompt);
        if enc.dropped > 0 {
            notes.push(format!(
                "{what} is longer than 77 tokens: the last {} token(s) were dropped",
                enc.dropped
            ));
        }
        self.encoder
            .forward(clip::ids_tensor(&[enc.ids], self.device))
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
        if guidance {
            let uncond = self.embed(negative, notes, "the negative prompt");
            Tensor::cat(vec![uncond, cond], 0)
        } else {
            cond
        }
    }
}
