//! The branch-free vector `exp` shared by the softmax ([`exp_rows_fn`]), GELU and SiLU
//! ([`exp_within`]), with its per-CPU (AVX-512, AVX2) dispatch.

/// `row[i] = exp(row[i] - max)`, returning the sum; the widest vector unit the CPU has.
pub(super) type ExpRows = fn(&mut [f32], f32) -> f32;

pub(super) fn exp_rows_fn() -> ExpRows {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return |row, max| unsafe { exp_rows_avx512(row, max) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |row, max| unsafe { exp_rows_avx2(row, max) };
        }
    }
    exp_rows
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_rows_avx512(row: &mut [f32], max: f32) -> f32 {
    exp_rows(row, max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_rows_avx2(row: &mut [f32], max: f32) -> f32 {
    exp_rows(row, max)
}

/// Branch-free so the compiler vectorises it at whatever width the caller enables. Cephes'
/// `expf` polynomial (about 1 ulp on the reduced range); inputs are `<= 0` after the max is
/// taken off, and clamped at -87 so the exponent stays a normal float.
#[inline(always)]
fn exp_rows(row: &mut [f32], max: f32) -> f32 {
    let mut sums = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (x, s) in c.iter_mut().zip(sums.iter_mut()) {
            let e = exp_nonpositive(*x - max);
            *x = e;
            *s += e;
        }
    }
    let mut total: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        let e = exp_nonpositive(*x - max);
        *x = e;
        total += e;
    }
    total
}

#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    exp_within(x, 0.0)
}

/// `exp(x)` for `x` clamped to `[-87, hi]` (`hi <= 88`, so the result is a normal float).
#[inline(always)]
pub(super) fn exp_within(x: f32, hi: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Clamps that compile to min/max instructions.
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > hi { hi } else { x };
    // Round to nearest with the 1.5 * 2^23 trick (|x * log2e| < 2^22): t's low mantissa bits
    // then hold n as an integer, so 2^n is built with integer ops only (they vectorise).
    let t = x * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let bits = t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    y * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_exp_is_accurate() {
        let mut row: Vec<f32> = (0..1000).map(|i| -(i as f32) * 0.09).collect();
        // Against exp of the same f32 argument (x - max rounds in f32 in the kernel too).
        let want: Vec<f64> = row.iter().map(|&x| ((x - 0.5) as f64).exp()).collect();
        let sum = exp_rows_fn()(&mut row, 0.5);
        for (a, b) in row.iter().zip(&want) {
            assert!(((*a as f64) - b).abs() <= 3e-7 * b.max(1e-30), "{a} vs {b}");
        }
        let total: f64 = want.iter().sum();
        assert!(((sum as f64) - total).abs() < 1e-6 * total);
    }
}
