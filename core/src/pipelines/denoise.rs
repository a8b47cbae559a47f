//! The denoising loop every Stable Diffusion pipeline runs: scale the input, add the
//! inpainting conditioning, predict the noise with classifier-free guidance, step the
//! scheduler (with seeded per-step noise for the stochastic ones), and for 4-channel local
//! editing blend the re-noised original back outside the mask; with a soft mask, release each
//! latent pixel from its noised original at its own step (differential diffusion, `soft`).

use burn::tensor::{Device, Tensor, TensorData};

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

/// Differential diffusion's per-step release (see `soft`): before step `k` of the run's `n`,
/// latents where `hold > k / n` are replaced by `original` noised to that step with `noise`;
/// step 0 starts from the noised original everywhere.
pub struct Release {
    pub original: Tensor<4>,
    pub noise: Tensor<4>,
    /// `1 - strength` per latent pixel, row-major over `grid` (`w`, `h`).
    pub hold: Vec<f32>,
    pub grid: (usize, usize),
    pub device: Device,
}

impl Release {
    /// The latents entering step `k` (of `n`) at timestep index `i`.
    fn apply(
        &self,
        sched: &Scheduler,
        latents: Tensor<4>,
        i: usize,
        k: usize,
        n: usize,
    ) -> Tensor<4> {
        let held = sched.add_noise(self.original.clone(), self.noise.clone(), i);
        if k == 0 {
            return held;
        }
        // The reference's threshold: `arange(n) / n` in f32.
        let t = k as f32 / n as f32;
        let keep: Vec<f32> = self
            .hold
            .iter()
            .map(|&h| if h > t { 1.0 } else { 0.0 })
            .collect();
        let (w, h) = self.grid;
        let keep: Tensor<4> = Tensor::from_data(TensorData::new(keep, [1, 1, h, w]), &self.device);
        held * keep.clone() + latents * (keep.neg() + 1.0)
    }
}

/// One denoising run's fixed inputs.
pub struct Denoise<'a> {
    pub unet: &'a UNet2DConditionModel,
    /// `[2, 77, d]` (negative, prompt) when `guidance > 1`, else `[1, 77, d]`.
    pub context: &'a Tensor<3>,
    pub guidance: f64,
    pub conditioning: Conditioning,
    /// A soft mask's release (differential diffusion), applied before every step.
    pub release: Option<Release>,
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
            if let Some(r) = &self.release {
                latents = r.apply(sched, latents, i, k, total);
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
