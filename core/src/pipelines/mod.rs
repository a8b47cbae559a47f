//! Request → result flows. The CLI and the GUI call these; neither re-implements a step.
//!
//! A pipeline ([`inpaint`], [`weather`]) checks its request, prepares the working region
//! ([`region`]), the text context ([`prompt`]) and the starting latents ([`latents`]), runs the
//! shared denoising loop ([`denoise`]) and decodes; new pipelines reuse these steps rather
//! than copy them.

pub mod color;
pub mod denoise;
pub mod example;
pub mod generate;
pub mod inpaint;
pub mod latents;
pub mod models;
pub mod networks;
pub mod outpaint;
pub mod prompt;
pub mod region;
pub mod soft;
pub mod weather;
