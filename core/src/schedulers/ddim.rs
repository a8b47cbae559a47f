//! DDIM (diffusers `DDIMScheduler`), with eta and x0 clipping.

use burn::tensor::Tensor;

use super::spacing::TrainSchedule;

/// DDIM keeps no state between steps.
#[derive(Debug, Clone, Default)]
pub(super) struct Ddim;

impl Ddim {
    /// The spaced timesteps, as they are.
    pub fn timesteps(&self, ts: &TrainSchedule, n: usize) -> Vec<f64> {
        ts.spaced(n)
    }

    /// One DDIM step at timestep `t`; `ratio` is the distance to the previous timestep.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        ts: &TrainSchedule,
        t: f64,
        ratio: f64,
        eta: f64,
        eps: Tensor<4>,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let prev_t = t - ratio;
        let a_t = ts.alpha(t);
        let a_prev = ts.alpha_prev(prev_t);
        let b_t = 1.0 - a_t;
        let mut x0 = (sample - eps.clone() * b_t.sqrt()) / a_t.sqrt();
        if ts.config.clip_sample.unwrap_or(true) {
            let r = ts.config.clip_sample_range;
            x0 = x0.clamp(-r, r);
        }
        let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
        let std = eta * variance.sqrt();
        let dir = eps * (1.0 - a_prev - std * std).max(0.0).sqrt();
        let prev = x0 * a_prev.sqrt() + dir;
        match (noise, eta > 0.0) {
            (Some(n), true) => prev + n * std,
            _ => prev,
        }
    }
}

/// `x0` noised to timestep `t` by `alphas_cumprod[t]` (DDIM and PNDM alike).
pub(super) fn add_noise(ts: &TrainSchedule, x0: Tensor<4>, noise: Tensor<4>, t: f64) -> Tensor<4> {
    let a = ts.alpha(t);
    x0 * a.sqrt() + noise * (1.0 - a).sqrt()
}
