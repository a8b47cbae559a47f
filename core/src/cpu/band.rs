//! The general stride-1 convolution: `kh * kw` shifted GEMMs over a zero-padded copy of a band
//! of input rows (see the module doc of `cpu`), for what neither Winograd nor im2col takes.

use rayon::prelude::*;

use super::grow;
use super::matmul::{self, Gemm, View};

/// A pass of the banded convolution: images `b0..b0+nb`, output rows `y0..y0+rows`.
pub(super) struct Band {
    pub(super) b0: usize,
    pub(super) nb: usize,
    pub(super) y0: usize,
    pub(super) rows: usize,
    /// Padded input rows the band reads (`rows + kh - 1`).
    pub(super) in_rows: usize,
    /// Padded row width.
    pub(super) pw: usize,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn band_conv(
    x: &[f32],
    [ci, h, w]: [usize; 3],
    weight: &[f32],
    [co, kh, kw]: [usize; 3],
    bias: Option<&[f32]>,
    pads: [usize; 4],
    band: &Band,
    [oh, ow]: [usize; 2],
    padded: &mut Vec<f32>,
    grid: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Band {
        b0,
        nb,
        y0,
        rows,
        in_rows,
        pw,
    } = *band;
    let plane = in_rows * pw;
    let row_len = nb * plane;
    // Columns of the result: every padded-grid position up to the last real output pixel.
    let n = (nb - 1) * plane + (rows - 1) * pw + ow;
    grow(padded, ci * row_len);
    grow(grid, co * n);
    let hw = h * w;
    let bf16 = matmul::bf16_on();
    // Fill the padded input: row `c` holds the nb images' bands one after another.
    padded[..ci * row_len]
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(c, dst)| {
            for i in 0..nb {
                let src = &x[((b0 + i) * ci + c) * hw..][..hw];
                let dst = &mut dst[i * plane..(i + 1) * plane];
                for r in 0..in_rows {
                    let row = &mut dst[r * pw..(r + 1) * pw];
                    // Padded row y0 + r is input row y0 + r - top.
                    let y = (y0 + r).checked_sub(pads[0]).filter(|&y| y < h);
                    match y {
                        Some(y) => {
                            row[..pads[1]].fill(0.0);
                            row[pads[1]..pads[1] + w].copy_from_slice(&src[y * w..(y + 1) * w]);
                            row[pads[1] + w..].fill(0.0);
                        }
                        None => row.fill(0.0),
                    }
                }
            }
        });
    let taps = kh * kw;
    for dy in 0..kh {
        for dx in 0..kw {
            let tap = dy * kw + dx;
            // SAFETY: lhs is W[:, :, dy, dx] (m = co rows of stride ci*taps, k = ci columns of
            // stride taps) inside `weight`; rhs reads padded[c * row_len + tap_offset + j] for
            // j < n, and tap_offset + n <= row_len by construction of n; dst is grid[..co * n].
            unsafe {
                matmul::gemm(
                    &Gemm {
                        m: co,
                        n,
                        k: ci,
                        dst: grid.as_mut_ptr(),
                        dst_rs: n as isize,
                        dst_cs: 1,
                        accumulate: tap > 0,
                        beta: 1.0,
                        lhs: View {
                            ptr: weight.as_ptr().add(tap),
                            rs: (ci * taps) as isize,
                            cs: taps as isize,
                        },
                        rhs: View {
                            ptr: padded.as_ptr().add(dy * pw + dx),
                            rs: row_len as isize,
                            cs: 1,
                        },
                    },
                    bf16,
                    true,
                );
            }
        }
    }
    // Copy the real pixels into the NCHW output, adding the bias.
    let ohw = oh * ow;
    let grid = &grid[..co * n];
    for i in 0..nb {
        let img = &mut out[(b0 + i) * co * ohw..(b0 + i + 1) * co * ohw];
        img.par_chunks_mut(ohw).enumerate().for_each(|(o, dst)| {
            let add = bias.map_or(0.0, |bb| bb[o]);
            let src = &grid[o * n + i * plane..];
            for r in 0..rows {
                let d = &mut dst[(y0 + r) * ow..(y0 + r + 1) * ow];
                let s = &src[r * pw..r * pw + ow];
                for (d, s) in d.iter_mut().zip(s) {
                    *d = s + add;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::out_size;
    use crate::cpu::conv::tests::check_with;

    /// The shifted-GEMM path directly (what maps too big for im2col and below Winograd's
    /// sizes, or kernels other than 3x3 on large maps, take), with all images in one pass.
    #[test]
    fn shifted_gemm_path_matches_direct_convolution() {
        fn shifted(
            x: &[f32],
            [b, ci, h, w]: [usize; 4],
            wt: &[f32],
            [co, kh, kw]: [usize; 3],
            bias: Option<&[f32]>,
            pads: [usize; 4],
        ) -> Vec<f32> {
            let [oh, ow] = out_size([h, w], [kh, kw], pads).unwrap();
            let mut out = vec![0f32; b * co * oh * ow];
            let band = Band {
                b0: 0,
                nb: b,
                y0: 0,
                rows: oh,
                in_rows: oh + kh - 1,
                pw: w + pads[1] + pads[3],
            };
            let (mut p, mut g) = (Vec::new(), Vec::new());
            band_conv(
                x,
                [ci, h, w],
                wt,
                [co, kh, kw],
                bias,
                pads,
                &band,
                [oh, ow],
                &mut p,
                &mut g,
                &mut out,
            );
            out
        }
        check_with(shifted, [2, 5, 7, 9], 4, [3, 3], [1, 1, 1, 1], true);
        check_with(shifted, [1, 3, 6, 5], 2, [3, 3], [0, 0, 0, 0], false);
        check_with(shifted, [3, 2, 8, 8], 3, [4, 4], [1, 2, 2, 1], true);
    }
}
