//! Euler and Euler Ancestral (diffusers `EulerDiscreteScheduler` and
//! `EulerAncestralDiscreteScheduler`): σ-space steps over interpolated training sigmas.

use burn::tensor::Tensor;

use super::spacing::{TrainSchedule, interp};

/// Euler keeps no state between steps; `ancestral` adds fresh noise at each one.
#[derive(Debug, Clone)]
pub(super) struct Euler {
    pub ancestral: bool,
}

impl Euler {
    /// The timesteps (unrounded for "linspace") and their σ, plus a final 0.
    pub fn timesteps(&self, ts: &TrainSchedule, n: usize) -> (Vec<f64>, Vec<f64>) {
        let train = ts.config.num_train_timesteps;
        let timesteps = match ts.spacing {
            "linspace" => (0..n)
                .rev()
                .map(|i| {
                    if n > 1 {
                        i as f64 * (train - 1) as f64 / (n - 1) as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
            _ => ts.spaced(n),
        };
        let train_sigmas = ts.train_sigmas();
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|t| interp(*t, train, &train_sigmas))
            .collect();
        sigmas.push(0.0);
        (timesteps, sigmas)
    }

    /// Multiplier of the initial noise.
    pub fn init_noise_sigma(&self, sigmas: &[f64], spacing: &str) -> f64 {
        let max = sigmas.iter().cloned().fold(0.0, f64::max);
        if matches!(spacing, "linspace" | "trailing") {
            max
        } else {
            (max * max + 1.0).sqrt()
        }
    }

    /// Divides the model input by sqrt(σ² + 1).
    pub fn scale_model_input(&self, sigma: f64, sample: Tensor<4>) -> Tensor<4> {
        sample / (sigma * sigma + 1.0).sqrt()
    }

    /// One step from σ `sigma` to σ `next`.
    pub fn step(
        &self,
        sigma: f64,
        next: f64,
        eps: Tensor<4>,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        // derivative = (sample - x0) / sigma = eps (epsilon prediction)
        if !self.ancestral {
            sample + eps * (next - sigma)
        } else {
            let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma))
                .max(0.0)
                .sqrt();
            let down = (next * next - up * up).max(0.0).sqrt();
            let prev = sample + eps * (down - sigma);
            match noise {
                Some(n) => prev + n * up,
                None => prev,
            }
        }
    }

    /// `x0` noised to σ `sigma`.
    pub fn add_noise(&self, x0: Tensor<4>, noise: Tensor<4>, sigma: f64) -> Tensor<4> {
        x0 + noise * sigma
    }
}
