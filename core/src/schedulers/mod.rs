//! Diffusion schedulers matching diffusers for SD 1.x (epsilon prediction): DDIM, PNDM (PLMS,
//! SD 1.5's default), Euler, Euler Ancestral, DPM++ 2M (with and without Karras sigmas).
//!
//! Pure math over tensors: coefficients are computed on the host in f64 from the config
//! (`scheduler/scheduler_config.json`: betas, `steps_offset`, `timestep_spacing`,
//! `set_alpha_to_one`), tensors only see scalar multiplies and adds.
//!
//! One file per scheduler, as in diffusers: `ddim.rs`, `pndm.rs`, `euler.rs` (with Euler
//! Ancestral) and `dpmpp_2m.rs` (with Karras sigmas); `spacing.rs` holds what they share
//! (timestep spacing, training sigmas, interpolation, Karras sigmas, `alphas_cumprod` lookups).
//! [`Scheduler`] dispatches to them through its per-scheduler state.

mod ddim;
mod dpmpp_2m;
mod euler;
mod pndm;
mod spacing;

use burn::tensor::Tensor;
use serde::Deserialize;

use ddim::Ddim;
use dpmpp_2m::DpmPp2m;
use euler::Euler;
use pndm::Pndm;
use spacing::TrainSchedule;

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

/// Per-scheduler state and arithmetic, one variant per file.
#[derive(Debug, Clone)]
enum State {
    Ddim(Ddim),
    /// Boxed: the PLMS state holds a tensor, far larger than the others.
    Pndm(Box<Pndm>),
    Euler(Euler),
    DpmPp2m(DpmPp2m),
}

impl State {
    /// A fresh (reset) state for `kind`.
    fn new(kind: SchedulerKind) -> Self {
        match kind {
            SchedulerKind::Ddim => State::Ddim(Ddim),
            SchedulerKind::Pndm => State::Pndm(Box::default()),
            SchedulerKind::Euler => State::Euler(Euler { ancestral: false }),
            SchedulerKind::EulerAncestral => State::Euler(Euler { ancestral: true }),
            SchedulerKind::DpmPp2m => State::DpmPp2m(DpmPp2m::new(false)),
            SchedulerKind::DpmPp2mKarras => State::DpmPp2m(DpmPp2m::new(true)),
        }
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
    state: State,
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
            state: State::new(kind),
        }
    }

    fn train_schedule(&self) -> TrainSchedule<'_> {
        TrainSchedule {
            config: &self.config,
            spacing: &self.spacing,
            alphas_cumprod: &self.alphas_cumprod,
        }
    }

    /// Sets the timesteps for `n` inference steps and resets the state.
    pub fn set_timesteps(&mut self, n: usize) {
        let n = n.max(1);
        self.num_inference_steps = n;
        self.step_index = 0;
        self.state = State::new(self.kind);
        let ts = self.train_schedule();
        let (timesteps, sigmas) = match &self.state {
            State::Ddim(d) => (d.timesteps(&ts, n), vec![]),
            State::Pndm(p) => (p.timesteps(&ts, n), vec![]),
            State::Euler(e) => e.timesteps(&ts, n),
            State::DpmPp2m(d) => d.timesteps(&ts, n),
        };
        self.timesteps = timesteps;
        self.sigmas = sigmas;
    }

    /// Multiplier of the initial noise.
    pub fn init_noise_sigma(&self) -> f64 {
        match &self.state {
            State::Euler(e) => e.init_noise_sigma(&self.sigmas, &self.spacing),
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
        match &self.state {
            State::Euler(e) => e.scale_model_input(self.sigmas[self.step_index], sample),
            _ => sample,
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
        // Field by field (not `train_schedule`): `self.state` is borrowed mutably below.
        let ts = TrainSchedule {
            config: &self.config,
            spacing: &self.spacing,
            alphas_cumprod: &self.alphas_cumprod,
        };
        let out = match &mut self.state {
            State::Ddim(d) => d.step(&ts, self.timesteps[i], ratio, self.eta, eps, sample, noise),
            State::Pndm(p) => p.step(&ts, self.timesteps[i], ratio, eps, sample),
            State::Euler(e) => e.step(self.sigmas[i], self.sigmas[i + 1], eps, sample, noise),
            State::DpmPp2m(d) => d.step(&self.sigmas, i, self.timesteps.len(), eps, sample),
        };
        self.step_index += 1;
        out
    }

    /// `x0` noised to timestep index `index` of the current schedule (DDIM / PNDM: by
    /// `alphas_cumprod[t]`; Euler / DPM++: by the step's σ).
    pub fn add_noise(&self, x0: Tensor<4>, noise: Tensor<4>, index: usize) -> Tensor<4> {
        let ts = self.train_schedule();
        match &self.state {
            State::Ddim(_) | State::Pndm(_) => {
                ddim::add_noise(&ts, x0, noise, self.timesteps[index])
            }
            State::Euler(e) => e.add_noise(x0, noise, self.sigmas[index]),
            State::DpmPp2m(d) => d.add_noise(x0, noise, self.sigmas[index]),
        }
    }
}
