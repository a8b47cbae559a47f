//! GroupNorm, fused with SiLU: [`group_norm_silu`].

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::vmath::exp_within;
use super::{contiguous, count, f32s};

/// GroupNorm (then SiLU when `silu`) of an f32 NCHW tensor on the flex backend, in two passes
/// over each group (statistics in f64, then normalise + affine + activation in one sweep).
/// f16 / bf16 tensors are computed in f32. `None` for other backends or dtypes (callers fall
/// back to burn's ops).
pub fn group_norm_silu(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Option<Tensor<4>> {
    if super::half::is_half(x.dtype()) || super::half::is_half(gamma.dtype()) {
        // f16 / bf16 data or parameters: statistics and arithmetic in f32, the result in x's
        // type.
        let dtype = x.dtype();
        let f = |t: Tensor<1>| t.cast(DType::F32);
        let out = group_norm_silu(
            &x.clone().cast(DType::F32),
            &f(gamma.clone()),
            &f(beta.clone()),
            groups,
            eps,
            silu,
        )?;
        return Some(out.cast(dtype));
    }
    let device = x.device();
    let xp = x.clone().try_into_primitive::<Flex>().ok()?;
    let gp = gamma.clone().try_into_primitive::<Flex>().ok()?;
    let bp = beta.clone().try_into_primitive::<Flex>().ok()?;
    if [xp.dtype(), gp.dtype(), bp.dtype()] != [DType::F32; 3] {
        return None;
    }
    let [n, c, h, w] = x.dims();
    if groups == 0 || c % groups != 0 || gamma.dims()[0] != c || beta.dims()[0] != c {
        return None;
    }
    let start = Instant::now();
    let (xs, gs, bs) = (contiguous(&xp), contiguous(&gp), contiguous(&bp));
    let (xd, gd, bd) = (f32s(&xs), f32s(&gs), f32s(&bs));
    let hw = h * w;
    let per_group = c / groups * hw;
    let mut out = vec![0f32; n * c * hw];
    let sweep = sweep_fn();
    out.par_chunks_mut(per_group)
        .zip(xd.par_chunks(per_group))
        .enumerate()
        .for_each(|(task, (dst, src))| {
            let g = task % groups;
            // Two passes (mean, then centred squares): exact enough when |mean| >> std. A
            // group (c / groups channels of h x w) is contiguous and usually fits in L2.
            let len = per_group as f64;
            let mean = src.chunks(1024).map(sum_f64).sum::<f64>() / len;
            let var = chunked_sum(src, |v| v * v, mean as f32) / len;
            let rstd = 1.0 / (var + eps).sqrt();
            for (i, (d, s)) in dst.chunks_mut(hw).zip(src.chunks(hw)).enumerate() {
                let ch = g * (c / groups) + i;
                // (x - mean) first: exact for x near the mean, where x * a + b would cancel.
                let scale = (gd[ch] as f64 * rstd) as f32;
                // The mean as an f32 pair (hi + lo), so its rounding doesn't show either.
                let hi = mean as f32;
                sweep(d, s, [hi, (mean - hi as f64) as f32, scale, bd[ch]], silu);
            }
        });
    let data = TensorData::new(out, [n, c, h, w]);
    let out = Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device);
    Some(count(2, start, out))
}

/// Sum in f64 lanes (f32 lanes lose the mean's low digits when |mean| >> spread).
#[inline(always)]
fn sum_f64(src: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = src.chunks_exact(8);
    for v in &mut it {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += x as f64;
        }
    }
    acc.iter().sum::<f64>() + it.remainder().iter().map(|&x| x as f64).sum::<f64>()
}

/// `sum(f(x - centre))` with f32 partial sums over 1024-element chunks, added up in f64.
#[inline(always)]
fn chunked_sum(src: &[f32], f: impl Fn(f32) -> f32 + Copy, centre: f32) -> f64 {
    src.chunks(1024)
        .map(|c| {
            let mut acc = [0f32; 16];
            let mut it = c.chunks_exact(16);
            for v in &mut it {
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += f(x - centre);
                }
            }
            let tail: f32 = it.remainder().iter().map(|&x| f(x - centre)).sum();
            (acc.iter().sum::<f32>() + tail) as f64
        })
        .sum()
}

/// `dst = act((src - hi - lo) * scale + shift)` for `[hi, lo, scale, shift]` (`hi + lo` = the
/// mean), act = SiLU or identity.
type Sweep = fn(&mut [f32], &[f32], [f32; 4], bool);

fn sweep_fn() -> Sweep {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return |d, s, p, silu| unsafe { sweep_avx512(d, s, p, silu) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |d, s, p, silu| unsafe { sweep_avx2(d, s, p, silu) };
        }
    }
    sweep
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sweep_avx512(d: &mut [f32], s: &[f32], p: [f32; 4], silu: bool) {
    sweep(d, s, p, silu)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_avx2(d: &mut [f32], s: &[f32], p: [f32; 4], silu: bool) {
    sweep(d, s, p, silu)
}

#[inline(always)]
fn sweep(dst: &mut [f32], src: &[f32], [hi, lo, scale, shift]: [f32; 4], silu: bool) {
    if silu {
        for (d, &x) in dst.iter_mut().zip(src) {
            let y = ((x - hi) - lo) * scale + shift;
            // y * sigmoid(y); exp(-y) clamped to [-87, 88] (beyond, the result is y or 0 anyway).
            *d = y / (1.0 + exp_within(-y, 88.0));
        }
    } else {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = ((x - hi) - lo) * scale + shift;
        }
    }
}
