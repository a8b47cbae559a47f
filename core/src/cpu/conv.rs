//! Convolution dispatch: [`conv2d`] (burn's `Conv2d` on flex tensors) and [`conv2d_f32`], which
//! sends each stride-1 convolution to the fastest path for its shape (1x1 `pointwise` here,
//! Winograd for 3x3 on large maps, im2col for small maps, banded shifted GEMMs otherwise).

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::band::{Band, band_conv};
use super::im2col::{im2col_conv, im2col_enabled};
use super::matmul::{self, Gemm, View};
use super::winograd::{WINOGRAD_MIN_PIXELS, winograd_3x3, winograd_enabled};
use super::{SCRATCH, SCRATCH_ELEMS, contiguous, count, dims4, f32s};

/// `conv.forward(x)`, through [`conv2d_f32`] when `x` is an f32 tensor on the flex backend and
/// the convolution has stride 1, no dilation and one group.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if super::half::is_half(x.dtype()) || super::half::is_half(conv.weight.val().dtype()) {
        return super::half::conv2d(conv, x);
    }
    let pads = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0, 0, 0]),
        PaddingConfig2d::Explicit(t, l, b, r) => Some([t, l, b, r]),
        PaddingConfig2d::Same => {
            let [kh, kw] = conv.kernel_size;
            (kh % 2 == 1 && kw % 2 == 1).then_some([kh / 2, kw / 2, kh / 2, kw / 2])
        }
    };
    let eligible = conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && x.dtype() == DType::F32
        && pads.is_some();
    if !eligible {
        return conv.forward(x);
    }
    let device = x.device();
    let Ok(xp) = x.clone().try_into_primitive::<Flex>() else {
        return conv.forward(x);
    };
    let Ok(wp) = conv.weight.val().try_into_primitive::<Flex>() else {
        return conv.forward(x);
    };
    let bias = match &conv.bias {
        Some(b) => match b.val().try_into_primitive::<Flex>() {
            Ok(b) => Some(b),
            Err(_) => return conv.forward(x),
        },
        None => None,
    };
    if wp.dtype() != DType::F32 || bias.as_ref().is_some_and(|b| b.dtype() != DType::F32) {
        return conv.forward(x);
    }
    let xs = contiguous(&xp);
    let ws = contiguous(&wp);
    let bs = bias.as_ref().map(contiguous);
    let [b, ci, h, w] = dims4(&xp);
    let [co, wci, kh, kw] = dims4(&wp);
    if wci != ci {
        return conv.forward(x);
    }
    let pads = pads.expect("checked above");
    let start = Instant::now();
    let Some(out) = conv2d_f32(
        f32s(&xs),
        [b, ci, h, w],
        f32s(&ws),
        [co, kh, kw],
        bs.as_ref().map(f32s),
        pads,
    ) else {
        return conv.forward(x);
    };
    let [oh, ow] = out_size([h, w], [kh, kw], pads).expect("checked by conv2d_f32");
    let data = TensorData::new(out, [b, co, oh, ow]);
    let out = Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device);
    count(0, start, out)
}

pub(super) fn out_size(hw: [usize; 2], k: [usize; 2], pads: [usize; 4]) -> Option<[usize; 2]> {
    let ph = hw[0] + pads[0] + pads[2];
    let pw = hw[1] + pads[1] + pads[3];
    (ph >= k[0] && pw >= k[1] && k[0] > 0 && k[1] > 0).then(|| [ph - k[0] + 1, pw - k[1] + 1])
}

/// Stride-1 2D convolution of `x` (`[b, ci, h, w]`, NCHW, contiguous) with `w`
/// (`[co, ci, kh, kw]`), padding `[top, left, bottom, right]`, plus an optional bias.
/// Returns the `[b, co, oh, ow]` output, or `None` when the sizes don't make a valid convolution.
pub fn conv2d_f32(
    x: &[f32],
    [b, ci, h, w]: [usize; 4],
    weight: &[f32],
    [co, kh, kw]: [usize; 3],
    bias: Option<&[f32]>,
    pads: [usize; 4],
) -> Option<Vec<f32>> {
    let [oh, ow] = out_size([h, w], [kh, kw], pads)?;
    if x.len() != b * ci * h * w
        || weight.len() != co * ci * kh * kw
        || bias.is_some_and(|bb| bb.len() != co)
        || b == 0
        || ci == 0
        || co == 0
    {
        return None;
    }
    let mut out = vec![0f32; b * co * oh * ow];
    if kh == 1 && kw == 1 && pads == [0, 0, 0, 0] {
        pointwise(x, [b, ci, h * w], weight, co, bias, &mut out);
        return Some(out);
    }
    if kh == 3 && kw == 3 && oh * ow >= WINOGRAD_MIN_PIXELS && winograd_enabled() {
        winograd_3x3(x, [b, ci, h, w], weight, co, bias, pads, [oh, ow], &mut out);
        return Some(out);
    }
    if oh * ow < WINOGRAD_MIN_PIXELS
        && ci * kh * kw * oh * ow <= 2 * SCRATCH_ELEMS
        && im2col_enabled()
    {
        im2col_conv(
            x,
            [b, ci, h, w],
            weight,
            [co, kh, kw],
            bias,
            pads,
            [oh, ow],
            &mut out,
        );
        return Some(out);
    }
    let pw = w + pads[1] + pads[3];
    let ph = h + pads[0] + pads[2];
    // Output rows per band, and how many images share one pass.
    let width = ci.max(co);
    let rows_fit = SCRATCH_ELEMS / (width * pw);
    let (images_per_pass, band_rows) = if rows_fit >= ph {
        ((rows_fit / ph).clamp(1, b), oh)
    } else {
        (1, rows_fit.saturating_sub(kh - 1).max(1).min(oh))
    };
    SCRATCH.with(|s| {
        let (padded, grid) = &mut *s.borrow_mut();
        let mut b0 = 0;
        while b0 < b {
            let nb = images_per_pass.min(b - b0);
            let mut y0 = 0;
            while y0 < oh {
                let rows = band_rows.min(oh - y0);
                let band = Band {
                    b0,
                    nb,
                    y0,
                    rows,
                    in_rows: rows + kh - 1,
                    pw,
                };
                band_conv(
                    x,
                    [ci, h, w],
                    weight,
                    [co, kh, kw],
                    bias,
                    pads,
                    &band,
                    [oh, ow],
                    padded,
                    grid,
                    &mut out,
                );
                y0 += rows;
            }
            b0 += nb;
        }
    });
    Some(out)
}

/// 1x1 convolution: one GEMM per image, written straight into the output (bias first).
fn pointwise(
    x: &[f32],
    [b, ci, hw]: [usize; 3],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let bf16 = matmul::bf16_on();
    for i in 0..b {
        let dst = &mut out[i * co * hw..(i + 1) * co * hw];
        if let Some(bias) = bias {
            dst.par_chunks_mut(hw)
                .zip(bias.par_iter())
                .for_each(|(row, &v)| row.fill(v));
        }
        // SAFETY: dst is co x hw (row stride hw), lhs co x ci (row stride ci), rhs is image i,
        // ci x hw (row stride hw); all inside their slices.
        unsafe {
            matmul::gemm(
                &Gemm {
                    m: co,
                    n: hw,
                    k: ci,
                    dst: dst.as_mut_ptr(),
                    dst_rs: hw as isize,
                    dst_cs: 1,
                    accumulate: bias.is_some(),
                    beta: 1.0,
                    lhs: View {
                        ptr: weight.as_ptr(),
                        rs: ci as isize,
                        cs: 1,
                    },
                    rhs: View {
                        ptr: x.as_ptr().add(i * ci * hw),
                        rs: hw as isize,
                        cs: 1,
                    },
                },
                bf16,
                true,
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Direct seven-loop convolution in f64.
    fn naive(
        x: &[f32],
        [b, ci, h, w]: [usize; 4],
        wt: &[f32],
        [co, kh, kw]: [usize; 3],
        bias: Option<&[f32]>,
        pads: [usize; 4],
    ) -> Vec<f32> {
        let [oh, ow] = out_size([h, w], [kh, kw], pads).unwrap();
        let mut out = vec![0f32; b * co * oh * ow];
        for n in 0..b {
            for o in 0..co {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = bias.map_or(0.0, |bb| bb[o] as f64);
                        for c in 0..ci {
                            for dy in 0..kh {
                                for dx in 0..kw {
                                    let iy = (y + dy) as isize - pads[0] as isize;
                                    let ix = (xx + dx) as isize - pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * ci + c) * h + iy as usize) * w + ix as usize];
                                    let wv = wt[((o * ci + c) * kh + dy) * kw + dx];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((n * co + o) * oh + y) * ow + xx] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8;
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// A convolution under test: `(x, dims, weight, [co, kh, kw], bias, pads) -> output`.
    pub(in crate::cpu) type Conv =
        fn(&[f32], [usize; 4], &[f32], [usize; 3], Option<&[f32]>, [usize; 4]) -> Vec<f32>;

    pub(in crate::cpu) fn check(
        dims: [usize; 4],
        co: usize,
        k: [usize; 2],
        pads: [usize; 4],
        bias: bool,
    ) {
        check_with(
            |x, dims, wt, kernel, bias, pads| conv2d_f32(x, dims, wt, kernel, bias, pads).unwrap(),
            dims,
            co,
            k,
            pads,
            bias,
        )
    }

    /// `conv` against the direct f64 convolution, to 1e-6 relative.
    pub(in crate::cpu) fn check_with(
        conv: Conv,
        dims: [usize; 4],
        co: usize,
        k: [usize; 2],
        pads: [usize; 4],
        bias: bool,
    ) {
        let [b, ci, h, w] = dims;
        let x = values(b * ci * h * w, 1);
        let wt = values(co * ci * k[0] * k[1], 2);
        let bb = values(co, 3);
        let bias = bias.then_some(&bb[..]);
        let ours = conv(&x, dims, &wt, [co, k[0], k[1]], bias, pads);
        let want = naive(&x, dims, &wt, [co, k[0], k[1]], bias, pads);
        let num: f64 = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = want.iter().map(|a| (*a as f64).powi(2)).sum();
        let rel = (num / den).sqrt();
        assert!(
            rel < 1e-6,
            "{dims:?} -> {co}, k {k:?}, pads {pads:?}: rel {rel:e}"
        );
    }

    #[test]
    fn matches_direct_convolution() {
        check([2, 5, 7, 9], 4, [3, 3], [1, 1, 1, 1], true);
        check([1, 3, 6, 5], 2, [3, 3], [0, 0, 0, 0], false);
        check([3, 4, 5, 6], 3, [1, 1], [0, 0, 0, 0], true);
        check([2, 4, 5, 6], 3, [1, 1], [1, 0, 2, 1], true);
        check([1, 2, 8, 8], 3, [4, 4], [1, 2, 2, 1], true);
        check([2, 3, 4, 4], 2, [7, 7], [3, 3, 3, 3], true);
        // Right padding wider than the kernel's reach into the image.
        check([1, 2, 3, 2], 2, [3, 5], [1, 0, 1, 4], true);
    }

    #[test]
    fn bands_and_stacked_images_agree_with_direct_convolution() {
        // Wide enough rows that the 8 Mi scratch is split into bands (a 3x5 kernel: 3x3 ones
        // of this size take the Winograd path).
        check([1, 2, 2100, 2100], 1, [3, 5], [1, 2, 1, 2], true);
        // Several images share one im2col pass.
        check([5, 3, 9, 9], 4, [3, 3], [1, 1, 1, 1], false);
    }

    #[test]
    fn invalid_sizes_are_refused() {
        assert!(conv2d_f32(&[0.0; 4], [1, 1, 2, 2], &[0.0; 9], [1, 3, 3], None, [0; 4]).is_none());
        assert!(conv2d_f32(&[0.0; 3], [1, 1, 2, 2], &[0.0; 1], [1, 1, 1], None, [0; 4]).is_none());
    }
}
