//! PNDM (diffusers `PNDMScheduler` with `skip_prk_steps`): the PLMS linear multistep method,
//! SD 1.5's default scheduler.

use burn::tensor::Tensor;

use super::spacing::TrainSchedule;

/// PLMS multistep state: the last noise predictions, the step counter and the sample the
/// first (repeated) timestep started from.
#[derive(Debug, Clone, Default)]
pub(super) struct Pndm {
    ets: Vec<Tensor<4>>,
    counter: usize,
    cur_sample: Option<Tensor<4>>,
}

impl Pndm {
    /// PLMS (skip_prk_steps): the second-to-last timestep is repeated.
    pub fn timesteps(&self, ts: &TrainSchedule, n: usize) -> Vec<f64> {
        let mut asc: Vec<f64> = ts.spaced(n);
        asc.reverse();
        let mut plms: Vec<f64> = asc[..asc.len() - 1].to_vec();
        if asc.len() >= 2 {
            plms.push(asc[asc.len() - 2]);
        }
        plms.push(asc[asc.len() - 1]);
        plms.reverse();
        plms
    }

    /// One PLMS step at timestep `t`; `ratio` is the distance to the previous timestep.
    pub fn step(
        &mut self,
        ts: &TrainSchedule,
        t: f64,
        ratio: f64,
        eps: Tensor<4>,
        sample: Tensor<4>,
    ) -> Tensor<4> {
        let mut t = t;
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
        let out = prev_sample(ts, sample, t, prev_t, model_output);
        self.counter += 1;
        out
    }
}

fn prev_sample(
    ts: &TrainSchedule,
    sample: Tensor<4>,
    t: f64,
    prev_t: f64,
    eps: Tensor<4>,
) -> Tensor<4> {
    let a_t = ts.alpha(t);
    let a_prev = ts.alpha_prev(prev_t);
    let (b_t, b_prev) = (1.0 - a_t, 1.0 - a_prev);
    let sample_coeff = (a_prev / a_t).sqrt();
    let denom = a_t * b_prev.sqrt() + (a_t * b_t * a_prev).sqrt();
    sample * sample_coeff - eps * ((a_prev - a_t) / denom)
}
