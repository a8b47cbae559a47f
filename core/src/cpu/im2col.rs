//! Convolutions of small maps (below 32x32 outputs) as one im2col GEMM per pass.

use rayon::prelude::*;

use super::matmul::{self, Gemm, View};
use super::{SCRATCH, SCRATCH_ELEMS, grow};

/// `CLEARPAINT_IM2COL=0` turns the im2col path for small maps off (for comparisons).
pub(super) fn im2col_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CLEARPAINT_IM2COL").map_or(true, |v| v != "0"))
}

/// Small maps with many channels (the UNet's 16x16 and 8x8 levels: up to 2560 -> 1280):
/// one GEMM of the weights as they are stored (`co x ci*kh*kw`, read once, contiguously) with
/// an im2col matrix of the images (`ci*kh*kw x images*pixels`), instead of kh*kw GEMMs that
/// each walk the whole weight tensor with a stride of kh*kw.
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col_conv(
    x: &[f32],
    [b, ci, h, w]: [usize; 4],
    weight: &[f32],
    [co, kh, kw]: [usize; 3],
    bias: Option<&[f32]>,
    pads: [usize; 4],
    [oh, ow]: [usize; 2],
    out: &mut [f32],
) {
    let taps = kh * kw;
    let k = ci * taps;
    let ohw = oh * ow;
    let images_per_pass = (2 * SCRATCH_ELEMS / (k * ohw)).clamp(1, b);
    let bf16 = matmul::bf16_on();
    SCRATCH.with(|s| {
        let (col, grid) = &mut *s.borrow_mut();
        let mut b0 = 0;
        while b0 < b {
            let nb = images_per_pass.min(b - b0);
            let n = nb * ohw;
            grow(col, k * n);
            grow(grid, co * n);
            // Row (c, dy, dx) of the im2col matrix: input channel c shifted by (dy, dx).
            col[..k * n]
                .par_chunks_mut(taps * n)
                .enumerate()
                .for_each(|(c, rows)| {
                    for (tap, row) in rows.chunks_exact_mut(n).enumerate() {
                        let (dy, dx) = (tap / kw, tap % kw);
                        for (i, img) in row.chunks_exact_mut(ohw).enumerate() {
                            let plane = &x[((b0 + i) * ci + c) * h * w..][..h * w];
                            for (y, dst) in img.chunks_exact_mut(ow).enumerate() {
                                dst.fill(0.0);
                                let Some(sy) = (y + dy).checked_sub(pads[0]).filter(|&v| v < h)
                                else {
                                    continue;
                                };
                                // Output x reads input x + dx - left, when inside the row.
                                let lo = pads[1].saturating_sub(dx).min(ow);
                                let hi = (w + pads[1]).saturating_sub(dx).min(ow).max(lo);
                                if hi > lo {
                                    let s0 = sy * w + lo + dx - pads[1];
                                    dst[lo..hi].copy_from_slice(&plane[s0..s0 + hi - lo]);
                                }
                            }
                        }
                    }
                });
            // SAFETY: weight is co x k row-major, col k x n, grid co x n; all in bounds.
            unsafe {
                matmul::gemm(
                    &Gemm {
                        m: co,
                        n,
                        k,
                        dst: grid.as_mut_ptr(),
                        dst_rs: n as isize,
                        dst_cs: 1,
                        accumulate: false,
                        beta: 1.0,
                        lhs: View {
                            ptr: weight.as_ptr(),
                            rs: k as isize,
                            cs: 1,
                        },
                        rhs: View {
                            ptr: col.as_ptr(),
                            rs: n as isize,
                            cs: 1,
                        },
                    },
                    bf16,
                    true,
                );
            }
            let grid = &grid[..co * n];
            for i in 0..nb {
                let img = &mut out[(b0 + i) * co * ohw..(b0 + i + 1) * co * ohw];
                img.par_chunks_mut(ohw).enumerate().for_each(|(o, dst)| {
                    let add = bias.map_or(0.0, |bb| bb[o]);
                    for (d, s) in dst.iter_mut().zip(&grid[o * n + i * ohw..][..ohw]) {
                        *d = s + add;
                    }
                });
            }
            b0 += nb;
        }
    });
}
