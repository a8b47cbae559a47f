//! DPM++ 2M (diffusers `DPMSolverMultistepScheduler`, `solver_order=2`, `dpmsolver++`,
//! `final_sigmas_type="zero"`), optionally with Karras sigmas (`use_karras_sigmas`).

use burn::tensor::Tensor;

use super::spacing::{TrainSchedule, interp, karras, sigma_to_t};

/// Multistep state: the last two x0 predictions and how many lower-order steps ran.
#[derive(Debug, Clone)]
pub(super) struct DpmPp2m {
    /// Karras sigmas (and timesteps back from them) instead of the spaced ones.
    pub karras: bool,
    model_outputs: Vec<Tensor<4>>,
    lower_order_nums: usize,
}

fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

impl DpmPp2m {
    pub fn new(karras: bool) -> Self {
        DpmPp2m {
            karras,
            model_outputs: vec![],
            lower_order_nums: 0,
        }
    }

    /// The timesteps and their σ, plus a final 0.
    pub fn timesteps(&self, ts: &TrainSchedule, n: usize) -> (Vec<f64>, Vec<f64>) {
        let train = ts.config.num_train_timesteps;
        // Spacing over n + 1 points, dropping the last (diffusers).
        let timesteps: Vec<f64> = match ts.spacing {
            "linspace" => (0..=n)
                .rev()
                .map(|i| (i as f64 * (train - 1) as f64 / n as f64).round())
                .take(n)
                .collect(),
            "trailing" => {
                let ratio = train as f64 / n as f64;
                (0..n)
                    .map(|i| (train as f64 - i as f64 * ratio).round() - 1.0)
                    .collect()
            }
            _ => {
                let ratio = train / (n + 1);
                (0..=n)
                    .rev()
                    .map(|i| (i * ratio) as f64 + ts.config.steps_offset as f64)
                    .take(n)
                    .collect()
            }
        };
        let train_sigmas = ts.train_sigmas();
        let (timesteps, mut sigmas) = if self.karras {
            let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
            let (smin, smax) = (train_sigmas[0], train_sigmas[train - 1]);
            let sig = karras(smin, smax, n);
            let timesteps = sig
                .iter()
                .map(|s| sigma_to_t(*s, &log_sigmas).round())
                .collect();
            (timesteps, sig)
        } else {
            let sigmas = timesteps
                .iter()
                .map(|t| interp(*t, train, &train_sigmas))
                .collect();
            (timesteps, sigmas)
        };
        sigmas.push(0.0);
        (timesteps, sigmas)
    }

    /// One step at index `i` of `n` timesteps over `sigmas`.
    pub fn step(
        &mut self,
        sigmas: &[f64],
        i: usize,
        n: usize,
        eps: Tensor<4>,
        sample: Tensor<4>,
    ) -> Tensor<4> {
        let lower_order_final = i == n - 1; // final_sigmas_type "zero"
        let lower_order_second = i + 2 == n && n < 15;
        let (alpha_s0, sigma_s0) = alpha_sigma(sigmas[i]);
        let x0 = (sample.clone() - eps * sigma_s0) / alpha_s0;
        if self.model_outputs.len() == 2 {
            self.model_outputs.remove(0);
        }
        self.model_outputs.push(x0.clone());
        let (alpha_t, sigma_t) = alpha_sigma(sigmas[i + 1]);
        let lambda = |a: f64, s: f64| a.ln() - s.ln();
        let lambda_t = lambda(alpha_t, sigma_t);
        let lambda_s0 = lambda(alpha_s0, sigma_s0);
        let h = lambda_t - lambda_s0;
        let em = (-h).exp() - 1.0; // exp(-h) - 1, -1 when sigma_t = 0
        let ratio = if sigma_t == 0.0 {
            0.0
        } else {
            sigma_t / sigma_s0
        };
        let out = if self.lower_order_nums < 1 || lower_order_final {
            sample * ratio - x0 * (alpha_t * em)
        } else {
            let _ = lower_order_second;
            let (alpha_s1, sigma_s1) = alpha_sigma(sigmas[i - 1]);
            let lambda_s1 = lambda(alpha_s1, sigma_s1);
            let h0 = lambda_s0 - lambda_s1;
            let r0 = h0 / h;
            let m0 = self.model_outputs[1].clone();
            let m1 = self.model_outputs[0].clone();
            let d1 = (m0.clone() - m1) / r0;
            sample * ratio - m0 * (alpha_t * em) - d1 * (0.5 * alpha_t * em)
        };
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
        out
    }

    /// `x0` noised to σ `sigma` (scaled by its alpha).
    pub fn add_noise(&self, x0: Tensor<4>, noise: Tensor<4>, sigma: f64) -> Tensor<4> {
        let (a, s) = alpha_sigma(sigma);
        x0 * a + noise * s
    }
}
