//! Diffusion schedulers matching diffusers for SD 1.x (epsilon prediction): DDIM, PNDM (PLMS,
//! SD 1.5's default), Euler, Euler Ancestral, DPM++ 2M (with and without Karras sigmas).
//!
//! Pure math over tensors: coefficients are computed on the host in f64 from the config
//! (`scheduler/scheduler_config.json`: betas, `steps_offset`, `timestep_spacing`,
//! `set_alpha_to_one`), tensors only see scalar multiplies and adds.

use burn::tensor::Tensor;
use serde::Deserialize;

/// `scheduler_config.json` fields that matter (unknown ones are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    #[serde(default = "d_train")]
    pub num_train_timesteps: usize,
    #[serde(default = "d_start")]
    pub beta_start: f64,
    #[serde(default = "d_end")]
    pub beta_end: f64,
    #[serde(default = "d_schedule")]
    pub beta_schedule: String,
    #[serde(default)]
    pub steps_offset: usize,
    /// `leading`, `trailing` or `linspace`; when the config does not say, each scheduler uses
    /// its diffusers default (DDIM / PNDM `leading`, Euler / DPM++ `linspace`), as diffusers
    /// does when a pipeline switches schedulers with `from_config`.
    #[serde(default)]
    pub timestep_spacing: Option<String>,
    #[serde(default)]
    pub set_alpha_to_one: bool,
    #[serde(default = "d_pred")]
    pub prediction_type: String,
    /// DDIM clips its x0 prediction to ±`clip_sample_range` (diffusers' DDIM default is on;
    /// SD 1.5's own scheduler config turns it off).
    #[serde(default)]
    pub clip_sample: Option<bool>,
    #[serde(default = "d_clip_range")]
    pub clip_sample_range: f64,
}

fn d_train() -> usize {
    1000
}
fn d_start() -> f64 {
    0.00085
}
fn d_end() -> f64 {
    0.012
}
fn d_schedule() -> String {
    "scaled_linear".into()
}
fn d_clip_range() -> f64 {
    1.0
}
fn d_pred() -> String {
    "epsilon".into()
}

impl SchedulerConfig {
    /// SD 1.5's `scheduler_config.json`.
    pub fn sd15() -> Self {
        SchedulerConfig {
            class_name: Some("PNDMScheduler".into()),
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: "scaled_linear".into(),
            steps_offset: 1,
            timestep_spacing: None,
            set_alpha_to_one: false,
            prediction_type: "epsilon".into(),
            clip_sample: Some(false),
            clip_sample_range: 1.0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.beta_schedule.as_str(), "scaled_linear" | "linear") {
            return Err(format!(
                "beta_schedule '{}' is not supported",
                self.beta_schedule
            ));
        }
        if let Some(t) = &self.timestep_spacing
            && !matches!(t.as_str(), "leading" | "trailing" | "linspace")
        {
            return Err(format!("timestep_spacing '{t}' is not supported"));
        }
        if self.prediction_type != "epsilon" {
            return Err(format!(
                "prediction_type '{}' is not supported (SD 1.x predicts epsilon)",
                self.prediction_type
            ));
        }
        Ok(())
    }

    /// Cumulative products of `1 - beta`.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let n = self.num_train_timesteps;
        let betas: Vec<f64> = (0..n)
            .map(|i| {
                let f = if n > 1 {
                    i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                if self.beta_schedule == "linear" {
                    self.beta_start + f * (self.beta_end - self.beta_start)
                } else {
                    let (a, b) = (self.beta_start.sqrt(), self.beta_end.sqrt());
                    (a + f * (b - a)).powi(2)
                }
            })
            .collect();
        let mut acc = 1.0;
        betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }
}

/// Which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    Ddim,
    Pndm,
    Euler,
    EulerAncestral,
    DpmPp2m,
    DpmPp2mKarras,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 6] = [
        SchedulerKind::Ddim,
        SchedulerKind::Pndm,
        SchedulerKind::Euler,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPp2m,
        SchedulerKind::DpmPp2mKarras,
    ];

    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Pndm => "pndm",
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler-a",
            SchedulerKind::DpmPp2m => "dpmpp-2m",
            SchedulerKind::DpmPp2mKarras => "dpmpp-2m-karras",
        }
    }

    /// The name A1111 writes in its `parameters` text.
    pub fn a1111_name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "DDIM",
            SchedulerKind::Pndm => "PLMS",
            SchedulerKind::Euler => "Euler",
            SchedulerKind::EulerAncestral => "Euler a",
            SchedulerKind::DpmPp2m => "DPM++ 2M",
            SchedulerKind::DpmPp2mKarras => "DPM++ 2M Karras",
        }
    }

    /// Whether `step` draws fresh noise (its output depends on the seed).
    pub fn is_stochastic(self) -> bool {
        self == SchedulerKind::EulerAncestral
    }
}

impl std::str::FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown scheduler '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A scheduler with its timesteps set and its multistep state.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub kind: SchedulerKind,
    pub config: SchedulerConfig,
    /// The timestep spacing in effect.
    pub spacing: String,
    alphas_cumprod: Vec<f64>,
    /// Timesteps to run, in order (PNDM repeats one).
    pub timesteps: Vec<f64>,
    /// σ per step plus a final 0 (Euler / DPM++); empty for DDIM / PNDM.
    pub sigmas: Vec<f64>,
    num_inference_steps: usize,
    step_index: usize,
    /// DDIM eta.
    pub eta: f64,
    // PNDM state
    ets: Vec<Tensor<4>>,
    counter: usize,
    cur_sample: Option<Tensor<4>>,
    // DPM++ state
    model_outputs: Vec<Tensor<4>>,
    lower_order_nums: usize,
}

fn interp(x: f64, xs_len: usize, ys: &[f64]) -> f64 {
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

fn karras(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
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
fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
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

impl Scheduler {
    pub fn new(kind: SchedulerKind, config: SchedulerConfig) -> Self {
        let spacing = config.timestep_spacing.clone().unwrap_or_else(|| {
            match kind {
                SchedulerKind::Ddim | SchedulerKind::Pndm => "leading",
                _ => "linspace",
            }
            .to_string()
        });
        Scheduler {
            kind,
            spacing,
            alphas_cumprod: config.alphas_cumprod(),
            config,
            timesteps: vec![],
            sigmas: vec![],
            num_inference_steps: 0,
            step_index: 0,
            eta: 0.0,
            ets: vec![],
            counter: 0,
            cur_sample: None,
            model_outputs: vec![],
            lower_order_nums: 0,
        }
    }

    /// Integer timesteps of the "leading" / "trailing" / "linspace" spacing.
    fn spaced(&self, n: usize) -> Vec<f64> {
        let t = self.config.num_train_timesteps;
        match self.spacing.as_str() {
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

    fn train_sigmas(&self) -> Vec<f64> {
        self.alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect()
    }

    /// Sets the timesteps for `n` inference steps and resets the state.
    pub fn set_timesteps(&mut self, n: usize) {
        let n = n.max(1);
        self.num_inference_steps = n;
        self.step_index = 0;
        self.ets.clear();
        self.counter = 0;
        self.cur_sample = None;
        self.model_outputs.clear();
        self.lower_order_nums = 0;
        self.sigmas.clear();
        let train = self.config.num_train_timesteps;
        match self.kind {
            SchedulerKind::Ddim => self.timesteps = self.spaced(n),
            SchedulerKind::Pndm => {
                // PLMS (skip_prk_steps): the second-to-last timestep is repeated.
                let mut asc: Vec<f64> = self.spaced(n);
                asc.reverse();
                let mut plms: Vec<f64> = asc[..asc.len() - 1].to_vec();
                if asc.len() >= 2 {
                    plms.push(asc[asc.len() - 2]);
                }
                plms.push(asc[asc.len() - 1]);
                plms.reverse();
                self.timesteps = plms;
            }
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => {
                let ts = match self.spacing.as_str() {
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
                    _ => self.spaced(n),
                };
                let train_sigmas = self.train_sigmas();
                self.sigmas = ts
                    .iter()
                    .map(|t| interp(*t, train, &train_sigmas))
                    .collect();
                self.sigmas.push(0.0);
                self.timesteps = ts;
            }
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                // Spacing over n + 1 points, dropping the last (diffusers).
                let ts: Vec<f64> = match self.spacing.as_str() {
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
                            .map(|i| (i * ratio) as f64 + self.config.steps_offset as f64)
                            .take(n)
                            .collect()
                    }
                };
                let train_sigmas = self.train_sigmas();
                if self.kind == SchedulerKind::DpmPp2mKarras {
                    let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
                    let (smin, smax) = (train_sigmas[0], train_sigmas[train - 1]);
                    let sig = karras(smin, smax, n);
                    self.timesteps = sig
                        .iter()
                        .map(|s| sigma_to_t(*s, &log_sigmas).round())
                        .collect();
                    self.sigmas = sig;
                } else {
                    self.sigmas = ts
                        .iter()
                        .map(|t| interp(*t, train, &train_sigmas))
                        .collect();
                    self.timesteps = ts;
                }
                self.sigmas.push(0.0);
            }
        }
    }

    /// Multiplier of the initial noise.
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => {
                let max = self.sigmas.iter().cloned().fold(0.0, f64::max);
                if matches!(self.spacing.as_str(), "linspace" | "trailing") {
                    max
                } else {
                    (max * max + 1.0).sqrt()
                }
            }
            _ => 1.0,
        }
    }

    /// The solver order (how many timesteps one step consumes; 1 for all of ours).
    pub fn order(&self) -> usize {
        1
    }

    /// Starts at step `index` (img2img / strength < 1).
    pub fn set_begin_index(&mut self, index: usize) {
        self.step_index = index;
    }

    pub fn step_index(&self) -> usize {
        self.step_index
    }

    /// Scales the model input at the current step (Euler family divides by sqrt(σ² + 1)).
    pub fn scale_model_input(&self, sample: Tensor<4>) -> Tensor<4> {
        match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => {
                let s = self.sigmas[self.step_index];
                sample / (s * s + 1.0).sqrt()
            }
            _ => sample,
        }
    }

    fn alpha(&self, t: f64) -> f64 {
        // steps_offset can push the first "leading" timestep to num_train_timesteps.
        self.alphas_cumprod[(t.max(0.0) as usize).min(self.alphas_cumprod.len() - 1)]
    }

    fn final_alpha(&self) -> f64 {
        if self.config.set_alpha_to_one {
            1.0
        } else {
            self.alphas_cumprod[0]
        }
    }

    /// One denoising step from the model's noise prediction `eps` at the current step.
    /// `noise` is the fresh noise stochastic steps need (DDIM with eta > 0, Euler Ancestral).
    pub fn step(
        &mut self,
        eps: Tensor<4>,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let i = self.step_index;
        let ratio = (self.config.num_train_timesteps / self.num_inference_steps) as f64;
        let out = match self.kind {
            SchedulerKind::Ddim => {
                let t = self.timesteps[i];
                let prev_t = t - ratio;
                let a_t = self.alpha(t);
                let a_prev = if prev_t >= 0.0 {
                    self.alpha(prev_t)
                } else {
                    self.final_alpha()
                };
                let b_t = 1.0 - a_t;
                let mut x0 = (sample - eps.clone() * b_t.sqrt()) / a_t.sqrt();
                if self.config.clip_sample.unwrap_or(true) {
                    let r = self.config.clip_sample_range;
                    x0 = x0.clamp(-r, r);
                }
                let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
                let std = self.eta * variance.sqrt();
                let dir = eps * (1.0 - a_prev - std * std).max(0.0).sqrt();
                let prev = x0 * a_prev.sqrt() + dir;
                match (noise, self.eta > 0.0) {
                    (Some(n), true) => prev + n * std,
                    _ => prev,
                }
            }
            SchedulerKind::Pndm => self.step_plms(eps, sample, ratio),
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => {
                let sigma = self.sigmas[i];
                let next = self.sigmas[i + 1];
                // derivative = (sample - x0) / sigma = eps (epsilon prediction)
                if self.kind == SchedulerKind::Euler {
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
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => self.step_dpmpp(eps, sample),
        };
        self.step_index += 1;
        out
    }

    fn prev_sample(&self, sample: Tensor<4>, t: f64, prev_t: f64, eps: Tensor<4>) -> Tensor<4> {
        let a_t = self.alpha(t);
        let a_prev = if prev_t >= 0.0 {
            self.alpha(prev_t)
        } else {
            self.final_alpha()
        };
        let (b_t, b_prev) = (1.0 - a_t, 1.0 - a_prev);
        let sample_coeff = (a_prev / a_t).sqrt();
        let denom = a_t * b_prev.sqrt() + (a_t * b_t * a_prev).sqrt();
        sample * sample_coeff - eps * ((a_prev - a_t) / denom)
    }

    fn step_plms(&mut self, eps: Tensor<4>, sample: Tensor<4>, ratio: f64) -> Tensor<4> {
        let mut t = self.timesteps[self.step_index];
        let mut prev_t = t - ratio;
        if self.counter != 1 {
            if self.ets.len() > 3 {
                self.ets.drain(..self.ets.len() - 3);
            }
            self.ets.push(eps.clone());
        } else {
            prev_t = t;
            t += ratio;
        }
        let n = self.ets.len();
        let mut sample = sample;
        let e = |k: usize| self.ets[n - k].clone();
        let model_output = if n == 1 && self.counter == 0 {
            self.cur_sample = Some(sample.clone());
            eps
        } else if n == 1 && self.counter == 1 {
            sample = self.cur_sample.take().expect("PLMS state");
            (eps + e(1)) / 2.0
        } else if n == 2 {
            (e(1) * 3.0 - e(2)) / 2.0
        } else if n == 3 {
            (e(1) * 23.0 - e(2) * 16.0 + e(3) * 5.0) / 12.0
        } else {
            (e(1) * 55.0 - e(2) * 59.0 + e(3) * 37.0 - e(4) * 9.0) / 24.0
        };
        let out = self.prev_sample(sample, t, prev_t, model_output);
        self.counter += 1;
        out
    }

    fn alpha_sigma(sigma: f64) -> (f64, f64) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }

    fn step_dpmpp(&mut self, eps: Tensor<4>, sample: Tensor<4>) -> Tensor<4> {
        let i = self.step_index;
        let n = self.timesteps.len();
        let lower_order_final = i == n - 1; // final_sigmas_type "zero"
        let lower_order_second = i + 2 == n && n < 15;
        let (alpha_s0, sigma_s0) = Self::alpha_sigma(self.sigmas[i]);
        let x0 = (sample.clone() - eps * sigma_s0) / alpha_s0;
        if self.model_outputs.len() == 2 {
            self.model_outputs.remove(0);
        }
        self.model_outputs.push(x0.clone());
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[i + 1]);
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
            let (alpha_s1, sigma_s1) = Self::alpha_sigma(self.sigmas[i - 1]);
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

    /// `x0` noised to timestep index `index` of the current schedule (DDIM / PNDM: by
    /// `alphas_cumprod[t]`; Euler / DPM++: by the step's σ).
    pub fn add_noise(&self, x0: Tensor<4>, noise: Tensor<4>, index: usize) -> Tensor<4> {
        match self.kind {
            SchedulerKind::Ddim | SchedulerKind::Pndm => {
                let a = self.alpha(self.timesteps[index]);
                x0 * a.sqrt() + noise * (1.0 - a).sqrt()
            }
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => x0 + noise * self.sigmas[index],
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                let (a, s) = Self::alpha_sigma(self.sigmas[index]);
                x0 * a + noise * s
            }
        }
    }
}
