//! Linear layers ([`linear`]) and the GEGLU activation ([`geglu`], [`gelu_erf`]).

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::nn::Linear;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::matmul::{self, Gemm, View};
use super::vmath::exp_within;
use super::{contiguous, count, f32s};

/// `lin.forward(x)` for `x` of rank 2 or 3: on flex (f32) one GEMM per leading index, reading
/// `x` through its strides (the UNet's `[B, HW, C]` views of NCHW maps need no copy) and
/// writing into a bias-initialised output. Other backends use burn's op.
pub fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    if super::half::is_half(x.dtype()) || super::half::is_half(lin.weight.val().dtype()) {
        return super::half::linear(lin, x);
    }
    if (D == 2 || D == 3)
        && let Some(out) = linear_flex(lin, &x)
    {
        return out;
    }
    lin.forward(x)
}

fn linear_flex<const D: usize>(lin: &Linear, x: &Tensor<D>) -> Option<Tensor<D>> {
    let device = x.device();
    let xp = x.clone().try_into_primitive::<Flex>().ok()?;
    let wp = lin.weight.val().try_into_primitive::<Flex>().ok()?;
    let bp = match &lin.bias {
        Some(b) => Some(b.val().try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    if xp.dtype() != DType::F32
        || wp.dtype() != DType::F32
        || bp.as_ref().is_some_and(|b| b.dtype() != DType::F32)
    {
        return None;
    }
    let start = Instant::now();
    let bf16 = matmul::bf16_on();
    let dims = x.dims();
    let (batch, m, k) = if D == 3 {
        (dims[0], dims[1], dims[2])
    } else {
        (1, dims[0], dims[1])
    };
    let [wk, n] = lin.weight.dims();
    if wk != k {
        return None;
    }
    let st = xp.layout().strides();
    let (sb, sm, sk) = if D == 3 {
        (st[0], st[1], st[2])
    } else {
        (0, st[0], st[1])
    };
    let ws = wp.layout().strides().to_vec();
    if [sb, sm, sk, ws[0], ws[1]].iter().any(|&v| v < 0) {
        return None;
    }
    let (xd, x0) = (xp.storage::<f32>(), xp.layout().start_offset());
    let (wd, w0) = (wp.storage::<f32>(), wp.layout().start_offset());
    let bs = bp.as_ref().map(contiguous);
    let bias = bs.as_ref().map(f32s);
    let mut out = vec![0f32; batch * m * n];
    if let Some(bias) = bias {
        out.par_chunks_mut(n)
            .for_each(|row| row.copy_from_slice(bias));
    }
    for (i, dst) in out.chunks_mut(m * n).enumerate() {
        let xi = xd[x0..].as_ptr().wrapping_offset(i as isize * sb);
        let w = wd[w0..].as_ptr();
        // SAFETY: x's layout is valid for [batch, m, k] with these strides from x0; the weight's
        // for [k, n] from w0; dst is m x n row-major.
        unsafe {
            if m >= n {
                // out = x W (m x n).
                matmul::gemm(
                    &Gemm {
                        m,
                        n,
                        k,
                        dst: dst.as_mut_ptr(),
                        dst_rs: n as isize,
                        dst_cs: 1,
                        accumulate: bias.is_some(),
                        beta: 1.0,
                        lhs: View {
                            ptr: xi,
                            rs: sm,
                            cs: sk,
                        },
                        rhs: View {
                            ptr: w,
                            rs: ws[0],
                            cs: ws[1],
                        },
                    },
                    bf16,
                    true,
                );
            } else {
                // Few rows (e.g. CLIP's 77 tokens): outᵀ = Wᵀ xᵀ (n x m), so the long side
                // fills the GEMM's tall microkernel instead of a mostly empty second tile.
                matmul::gemm(
                    &Gemm {
                        m: n,
                        n: m,
                        k,
                        dst: dst.as_mut_ptr(),
                        dst_rs: 1,
                        dst_cs: n as isize,
                        accumulate: bias.is_some(),
                        beta: 1.0,
                        lhs: View {
                            ptr: w,
                            rs: ws[1],
                            cs: ws[0],
                        },
                        rhs: View {
                            ptr: xi,
                            rs: sk,
                            cs: sm,
                        },
                    },
                    bf16,
                    true,
                );
            }
        }
    }
    let mut shape = dims;
    shape[D - 1] = n;
    let data = TensorData::new(out, shape.to_vec());
    let out = Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device);
    Some(count(3, start, out))
}

/// GEGLU's activation: for `h = [hidden | gate]` along the last dim, `hidden * gelu(gate)`
/// (exact, erf-based GELU as PyTorch's default). `None` off flex / f32 (use burn's ops).
pub fn geglu(h: &Tensor<3>) -> Option<Tensor<3>> {
    let device = h.device();
    let hp = h.clone().try_into_primitive::<Flex>().ok()?;
    if hp.dtype() != DType::F32 {
        return None;
    }
    let start = Instant::now();
    let [b, n, two_f] = h.dims();
    if two_f % 2 != 0 {
        return None;
    }
    let f = two_f / 2;
    let hs = contiguous(&hp);
    let src = f32s(&hs);
    let mut out = vec![0f32; b * n * f];
    let act = geglu_fn();
    out.par_chunks_mut(f * 64)
        .zip(src.par_chunks(two_f * 64))
        .for_each(|(dst, src)| {
            for (d, s) in dst.chunks_exact_mut(f).zip(src.chunks_exact(two_f)) {
                act(d, &s[..f], &s[f..]);
            }
        });
    let data = TensorData::new(out, [b, n, f]);
    let out = Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device);
    Some(count(3, start, out))
}

type GegluRow = fn(&mut [f32], &[f32], &[f32]);

fn geglu_fn() -> GegluRow {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return |d, h, g| unsafe { geglu_avx512(d, h, g) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |d, h, g| unsafe { geglu_avx2(d, h, g) };
        }
    }
    geglu_row
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn geglu_avx512(d: &mut [f32], h: &[f32], g: &[f32]) {
    geglu_row(d, h, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn geglu_avx2(d: &mut [f32], h: &[f32], g: &[f32]) {
    geglu_row(d, h, g)
}

#[inline(always)]
fn geglu_row(dst: &mut [f32], hidden: &[f32], gate: &[f32]) {
    for ((d, &h), &g) in dst.iter_mut().zip(hidden).zip(gate) {
        *d = h * gelu_erf(g);
    }
}

/// `x * Phi(x)` with the standard normal CDF from Abramowitz & Stegun 7.1.26
/// (`erfc(z) = poly(t) exp(-z^2)`, absolute error < 1.5e-7), taken as the small tail for
/// `x < 0` so the result keeps its relative accuracy there too. Branch-free.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // Half the complementary error function: the normal tail beyond |x|.
    let tail = 0.5 * poly * exp_within(-z * z, 0.0);
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    x * cdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_the_erf_definition() {
        // The normal CDF in f64: erf's Taylor series for |z| < 2, erfc's continued fraction
        // (evaluated from the back) beyond.
        fn cdf(x: f64) -> f64 {
            let z = x.abs() / std::f64::consts::SQRT_2;
            let erfc = if z < 2.0 {
                let (mut term, mut sum, mut k) = (z, z, 0.0);
                while term.abs() > 1e-18 {
                    k += 1.0;
                    term *= -z * z / k;
                    sum += term / (2.0 * k + 1.0);
                }
                1.0 - sum * 2.0 / std::f64::consts::PI.sqrt()
            } else {
                let mut t = z;
                for n in (1..=200).rev() {
                    t = z + (n as f64 / 2.0) / t;
                }
                (-z * z).exp() / std::f64::consts::PI.sqrt() / t
            };
            if x < 0.0 {
                0.5 * erfc
            } else {
                1.0 - 0.5 * erfc
            }
        }
        for i in -4000..=4000 {
            let x = i as f32 * 0.0025;
            let want = x as f64 * cdf(x as f64);
            let got = gelu_erf(x) as f64;
            assert!(
                (got - want).abs() <= 2e-7 * x.abs().max(1.0) as f64,
                "gelu({x}) = {got}, want {want}"
            );
        }
    }

    /// Our flex GEMM path against burn's Linear (rank 2 and 3, a strided `[B, HW, C]` view as
    /// the UNet passes, with and without bias), and GEGLU against burn's chunk + gelu.
    #[test]
    fn linear_and_geglu_match_burn() {
        use burn::nn::LinearConfig;
        use burn::tensor::Distribution;
        use burn::tensor::activation::gelu;
        let dev = burn::tensor::Device::flex();
        let close = |a: Tensor<3>, b: Tensor<3>| {
            let (a, b) = (crate::testing::to_vec(a), crate::testing::to_vec(b));
            crate::testing::rel_err(&a, &b)
        };
        for bias in [true, false] {
            let lin = LinearConfig::new(6, 10).with_bias(bias).init(&dev);
            let img: Tensor<4> = Tensor::random([2, 6, 3, 5], Distribution::Normal(0.0, 1.0), &dev);
            let seq = img.reshape([2, 6, 15]).swap_dims(1, 2);
            assert!(close(linear(&lin, seq.clone()), lin.forward(seq.clone())) < 1e-6);
            let flat: Tensor<2> = Tensor::random([7, 6], Distribution::Normal(0.0, 1.0), &dev);
            let (a, b) = (linear(&lin, flat.clone()), lin.forward(flat));
            assert!(close(a.unsqueeze(), b.unsqueeze()) < 1e-6);
        }
        let h: Tensor<3> = Tensor::random([2, 70, 8], Distribution::Normal(0.0, 3.0), &dev);
        let mut parts = h.clone().chunk(2, 2);
        let gate = parts.pop().unwrap();
        let want = parts.pop().unwrap() * gelu(gate);
        assert!(close(geglu(&h).unwrap(), want) < 1e-6);
    }
}
