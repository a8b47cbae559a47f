//! Networks, with field names that mirror the reference state-dict names.

pub mod asym_decoder;
pub mod attention;
pub mod augan;
pub mod check;
pub mod clip;
pub mod ldm;
pub mod tokenizer;
pub mod unet;
pub mod vae;
