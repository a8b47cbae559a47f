//! Networks, with field names that mirror the reference state-dict names.

pub mod asym_decoder;
pub mod augan;
pub mod vae;
