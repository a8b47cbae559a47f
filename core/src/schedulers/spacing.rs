//! Host-side (f64) helpers the schedulers share: the timestep spacing over the training schedule,
//! the training sigmas, interpolation, Karras sigmas, `sigma_to_t` and the `alphas_cumprod`
//! lookups.

use super::SchedulerConfig;

/// The training noise schedule a scheduler samples from: the config, the timestep spacing in
/// effect and the cumulative alphas (borrowed from the [`super::Scheduler`]).
pub(super) struct TrainSchedule<'a> {
    pub config: &'a SchedulerConfig,
    pub spacing: &'a str,
    pub alphas_cumprod: &'a [f64],
}

impl TrainSchedule<'_> {
    /// Integer timesteps of the "leading" / "trailing" / "linspace" spacing.
    pub fn spaced(&self, n: usize) -> Vec<f64> {
        let t = self.config.num_train_timesteps;
        match self.spacing {
            "linspace" => (0..n)
                .rev()
                .map(|i| {
                    let v = if n > 1 {
                        i as f64 * (t - 1) as f64 / (n - 1) as f64
                    } else {
                        0.0
                    };
                    v.round()
                })
                .collect(),
            "trailing" => {
                let ratio = t as f64 / n as f64;
                (0..n)
                    .map(|i| (t as f64 - i as f64 * ratio).round() - 1.0)
                    .collect()
            }
            _ => {
                let ratio = t / n;
                (0..n)
                    .rev()
                    .map(|i| (i * ratio) as f64 + self.config.steps_offset as f64)
                    .collect()
            }
        }
    }

    pub fn train_sigmas(&self) -> Vec<f64> {
        self.alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect()
    }

    pub fn alpha(&self, t: f64) -> f64 {
        // steps_offset can push the first "leading" timestep to num_train_timesteps.
        self.alphas_cumprod[(t.max(0.0) as usize).min(self.alphas_cumprod.len() - 1)]
    }

    pub fn final_alpha(&self) -> f64 {
        if self.config.set_alpha_to_one {
            1.0
        } else {
            self.alphas_cumprod[0]
        }
    }

    /// `alphas_cumprod` at the previous timestep `prev_t`, or the final alpha past the start.
    pub fn alpha_prev(&self, prev_t: f64) -> f64 {
        if prev_t >= 0.0 {
            self.alpha(prev_t)
        } else {
            self.final_alpha()
        }
    }
}

pub(super) fn interp(x: f64, xs_len: usize, ys: &[f64]) -> f64 {
    // np.interp over xs = 0..len
    if x <= 0.0 {
        return ys[0];
    }
    if x >= (xs_len - 1) as f64 {
        return ys[xs_len - 1];
    }
    let i = x.floor() as usize;
    let f = x - i as f64;
    ys[i] * (1.0 - f) + ys[i + 1] * f
}

pub(super) fn karras(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0;
    let (min_inv, max_inv) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    (0..n)
        .map(|i| {
            let ramp = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            (max_inv + ramp * (min_inv - max_inv)).powf(rho)
        })
        .collect()
}

/// diffusers `_sigma_to_t`: the (fractional) timestep of `sigma` by log-linear interpolation.
pub(super) fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    let count = log_sigmas.iter().filter(|&&l| log_sigma - l >= 0.0).count();
    // cumsum(dists >= 0).argmax(): the last index where log_sigma >= log_sigmas (sorted ascending).
    let low_idx = if count == 0 { 0 } else { count - 1 }.min(n - 2);
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}
