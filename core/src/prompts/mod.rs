//! Prompt text to CLIP inputs, as A1111 reads prompts: emphasis syntax (`attention.rs`) and
//! prompts of any length in 75-token chunks (`chunks.rs`). Pure text: the embedding of the
//! chunks and their weighting are in `pipelines/prompt.rs`.

pub mod attention;
pub mod chunks;
pub mod embeddings;
pub mod extra;

use crate::models::tokenizer::ClipTokenizer;

pub use attention::{Run, parse};
pub use chunks::{CHUNK, Chunk, Chunked, MAX_CHUNKS, chunk};

pub use embeddings::EmbeddingDb;

/// A prompt's chunks: parsed for emphasis and `BREAK`, tokenized and packed, with the
/// embeddings of `db` where their names appear.
pub fn prepare(tok: &ClipTokenizer, prompt: &str, db: Option<&EmbeddingDb>) -> Chunked {
    chunk(tok, &parse(prompt), db)
}

/// A prompt's weights must be finite numbers (`(a:1e999)` is not); the error quotes the text.
pub fn check(prompt: &str) -> Result<(), String> {
    match parse(prompt).into_iter().find(|r| !r.1.is_finite()) {
        Some((text, w)) => Err(format!(
            "the weight of {text:?} is {w}: not a finite number"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_weight_that_overflows_is_refused_with_the_text() {
        let huge = format!("a (cat:1{}) b", "0".repeat(400));
        let e = super::check(&huge).unwrap_err();
        assert!(e.contains("\"cat\"") && e.contains("inf"), "{e}");
        assert!(super::check("a (cat:1.3) [dog]").is_ok());
    }
}
