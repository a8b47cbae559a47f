//! Seeded noise, generated on the host so that a seed gives the same numbers on every device
//! (the VAE posterior's sample, the pipelines' initial latents and the stochastic
//! schedulers' per-step noise all draw from here).

use burn::tensor::{Device, Tensor, TensorData};

/// Standard-normal noise of `shape` from `seed` (SplitMix64 + Box-Muller), generated on the
/// host so it does not depend on the device.
pub fn gaussian_noise(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = ((next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = ((next() >> 11) as f64) / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32);
        if out.len() < n {
            out.push((r * t.sin()) as f32);
        }
    }
    Tensor::from_data(TensorData::new(out, shape), device)
}
