//! The denoising loop every Stable Diffusion pipeline runs: scale the input, add the
//! inpainting conditioning, predict the noise with classifier-free guidance, step the
//! scheduler (with seeded per-step noise for the stochastic ones), and for 4-channel local
//! editing blend the re-noised original back outside the mask.

use burn::tensor::Tensor;

use crate::models::unet::UNet2DConditionModel;
use crate::noise::gaussian_noise;
use crate::progress::{CancelToken, Progress};
use crate::schedulers::Scheduler;

/// What the loop adds to plain text-conditioned denoising.
// One value per run: boxing the tensors would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Conditioning {
    /// Text only (text-to-image, image-to-image).
    None,
    /// A 9-channel UNet: these channels (the latent mask and the masked image's latents, in
    /// the model's order) are concatenated to the scaled input at every step.
    Channels(Tensor<4>),
    /// A 4-channel UNet editing a region: after every step the original latents, noised to
    /// the next step with `noise`, replace the latents outside `mask` (1 = repaint).
    Blend {
        original: Tensor<4>,
        noise: Tensor<4>,
        mask: Tensor<4>,
    },
}

/// One denoising run's fixed inputs.
pub struct Denoise<'a> {
    pub unet: &'a UNet2DConditionModel,
    /// `[2, 77, d]` (negative, prompt) when `guidance > 1`, else `[1, 77, d]`.
    pub context: &'a Tensor<3>,
    pub guidance: f64,
    pub conditioning: Conditioning,
    /// Per-step noise for stochastic schedulers (or DDIM with eta > 0): step `i` draws from
    /// `seed + 1 + i`.
    pub step_noise: bool,
    pub seed: u64,
}

impl Denoise<'_> {
    /// Runs the scheduler's timesteps from `start` on `latents`; `None` when cancelled.
    pub fn run(
        &self,
        sched: &mut Scheduler,
        mut latents: Tensor<4>,
        start: usize,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Option<Tensor<4>> {
        let n = sched.timesteps.len();
        let total = n - start;
        for (k, i) in (start..n).enumerate() {
            if cancel.is_cancelled() {
                return None;
            }
            let eps = self.predict(sched, &latents, i);
            let step_noise = self.step_noise.then(|| {
                gaussian_noise(
                    latents.dims(),
                    self.seed.wrapping_add(1 + i as u64),
                    &latents.device(),
                )
            });
            latents = sched.step(eps, latents, step_noise);
            if let Conditioning::Blend {
                original,
                noise,
                mask,
            } = &self.conditioning
            {
                let proper = if i + 1 < n {
                    sched.add_noise(original.clone(), noise.clone(), i + 1)
                } else {
                    original.clone()
                };
                latents = proper * (mask.clone().neg() + 1.0) + latents * mask.clone();
            }
            progress.update("denoise", k + 1, total);
        }
        (!cancel.is_cancelled()).then_some(latents)
    }

    /// The guided noise prediction at timestep index `i`.
    fn predict(&self, sched: &Scheduler, latents: &Tensor<4>, i: usize) -> Tensor<4> {
        let cfg = self.guidance > 1.0;
        let batch = if cfg { 2 } else { 1 };
        let t = sched.timesteps[i];
        let x = if cfg {
            Tensor::cat(vec![latents.clone(), latents.clone()], 0)
        } else {
            latents.clone()
        };
        let mut x = sched.scale_model_input(x);
        if let Conditioning::Channels(extra) = &self.conditioning {
            x = Tensor::cat(vec![x, extra.clone().repeat_dim(0, batch)], 1);
        }
        let eps = self.unet.forward(x, &vec![t as f32; batch], self.context);
        if cfg {
            let mut parts = eps.chunk(2, 0);
            let c = parts.pop().expect("two halves");
            let u = parts.pop().expect("two halves");
            u.clone() + (c - u) * self.guidance
        } else {
            eps
        }
    }
}
