//! Networks, with field names that mirror the reference state-dict names.

pub mod asym_decoder;
pub mod attention;
pub mod augan;
pub mod check;
pub mod clip;
pub mod clip_image;
pub mod clip_vision;
pub mod ldm;
pub mod paint_by_example;
pub mod tokenizer;
pub mod unet;
pub mod vae;

/// The limits a config's sizes are checked against before anything is allocated, so a hostile
/// `config.json` (10^9 channels, 0 groups) is an error naming the field, never an abort or an
/// out-of-memory. They are far above every released SD 1.x / 2.x / XL and CLIP config.
pub mod limits {
    /// Channels of any layer.
    pub const CHANNELS: usize = 8192;
    /// Input / output / latent channels of a network.
    pub const IO_CHANNELS: usize = 64;
    /// Blocks per network, layers per block.
    pub const BLOCKS: usize = 16;
    pub const LAYERS: usize = 128;
    /// A token vocabulary and a sequence.
    pub const VOCAB: usize = 1 << 20;
    pub const POSITIONS: usize = 8192;
    /// A feed-forward width.
    pub const FF: usize = 65536;

    /// `name` = `v` within `lo..=hi`.
    pub fn check(name: &str, v: usize, lo: usize, hi: usize) -> Result<(), String> {
        if v < lo || v > hi {
            return Err(format!("{name} = {v} is outside {lo}..={hi}"));
        }
        Ok(())
    }

    /// Every entry of `v` within `lo..=hi`, and `1..=BLOCKS` entries.
    pub fn check_all(name: &str, v: &[usize], lo: usize, hi: usize) -> Result<(), String> {
        check(&format!("the length of {name}"), v.len(), 1, BLOCKS)?;
        for &x in v {
            check(name, x, lo, hi)?;
        }
        Ok(())
    }

    /// A positive, finite epsilon.
    pub fn check_eps(name: &str, v: f64) -> Result<(), String> {
        if !(v.is_finite() && v > 0.0 && v < 1.0) {
            return Err(format!("{name} = {v} is not a small positive number"));
        }
        Ok(())
    }
}
