//! clearpaint-core: everything that computes. No UI, no printing, no process exits.
//!
//! * [`batch`]: planning folder runs (matching masks, shards, seeds, reports).
//! * [`classical`]: inpainting without weights (PatchMatch, Telea).
//! * [`cpu`]: faster CPU paths for the flex backend (convolutions as large GEMMs).
//! * [`device`]: where models run (wgpu GPU or the flex CPU backend).
//! * [`files`]: atomic file writes with the umask's mode.
//! * [`imaging`]: image files in and out (atomic PNG writes), image <-> tensor.
//! * [`kernels`]: hand-written WGSL kernels for the GPU path, with their CPU references.
//! * [`noise`]: seeded noise, the same on every device.
//! * [`pipelines`]: request -> result flows shared by the CLI and the GUI.
//! * [`precision`]: f32 or half precision, per device and per model.
//! * [`schedulers`]: DDIM, PNDM, Euler (ancestral), DPM++ 2M (Karras), as diffusers.
//! * [`models`]: the networks (CLIP, UNet, VAEs, the asymmetric decoder, AU-GAN).
//! * [`weights`]: safetensors files and diffusers folders into burn modules, with a report.
//! * [`testing`]: helpers the parity tests share (reading reference fixtures, comparing).
//!
//! `ARCHITECTURE.md` at the repository root gives the layers and the dependency rules.

pub mod batch;
pub mod classical;
pub mod cpu;
pub mod device;
pub mod files;
pub mod gpu;
pub mod imaging;
pub mod kernels;
pub mod lora;
pub mod models;
pub mod noise;
pub mod pipelines;
pub mod precision;
pub mod progress;
pub mod prompts;
pub mod schedulers;
pub mod shard;
pub mod testing;
pub mod weights;
