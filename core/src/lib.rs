//! clearpaint-core: everything that computes. No UI, no printing, no process exits.
//!
//! * [`device`]: where models run (wgpu GPU or the flex CPU backend).
//! * [`models`]: the networks (AU-GAN, ...).
//! * [`weights`]: safetensors files and diffusers folders into burn modules, with a report.
//! * [`testing`]: helpers the parity tests share (reading reference fixtures, comparing).

pub mod device;
pub mod models;
pub mod testing;
pub mod weights;
