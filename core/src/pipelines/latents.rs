//! The latents a denoising run starts from: the initial noise (the caller's, for exact
//! reproduction across tools, or the seed's), the first step for a strength below 1
//! (diffusers' `get_timesteps`), and the noised starting point.

use burn::tensor::{Device, Tensor, TensorData};

use crate::noise::gaussian_noise;
use crate::schedulers::Scheduler;

/// The initial noise of `shape`: `latents` when given (checked against the shape), else drawn
/// from `seed`.
pub fn initial_noise(
    latents: Option<&[f32]>,
    seed: u64,
    shape: [usize; 4],
    device: &Device,
) -> Result<Tensor<4>, String> {
    let n: usize = shape.iter().product();
    match latents {
        Some(v) => {
            if v.len() != n {
                let [b, c, h, w] = shape;
                return Err(format!(
                    "--latents holds {} values; this image needs [{b}, {c}, {h}, {w}] = {n}",
                    v.len()
                ));
            }
            Ok(Tensor::from_data(
                TensorData::new(v.to_vec(), shape),
                device,
            ))
        }
        None => Ok(gaussian_noise(shape, seed, device)),
    }
}

/// Index of the first timestep to run for `strength` (1 = all `steps`), with the scheduler's
/// begin index set to it.
pub fn begin_for_strength(
    sched: &mut Scheduler,
    steps: usize,
    strength: f64,
) -> Result<usize, String> {
    let n = sched.timesteps.len();
    let init = ((steps as f64 * strength) as usize).min(steps);
    let t_start = (steps - init) * sched.order();
    if t_start >= n {
        return Err(format!(
            "--strength {strength} with {steps} steps leaves no step to run"
        ));
    }
    sched.set_begin_index(t_start);
    Ok(t_start)
}

/// The starting latents: pure noise scaled by the scheduler's initial sigma at full strength,
/// else `image_latents` noised to the first step `t_start`.
pub fn starting_latents(
    sched: &Scheduler,
    noise: &Tensor<4>,
    image_latents: Option<&Tensor<4>>,
    t_start: usize,
) -> Tensor<4> {
    match image_latents {
        None => noise.clone() * sched.init_noise_sigma(),
        Some(x0) => sched.add_noise(x0.clone(), noise.clone(), t_start),
    }
}
