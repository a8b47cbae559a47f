//! 3x3 stride-1 convolutions of maps from 32x32 outputs up by Winograd's F(2x2, 3x3), in four
//! stages per call: the weight transform (once), then per pass of tiles the input transform, the
//! 16 GEMMs and the output transform.

use rayon::prelude::*;

use super::matmul::{self, Gemm, View};
use super::{SCRATCH, SCRATCH_ELEMS, SendPtr, grow};

/// Output pixels per image from which 3x3 convolutions use Winograd F(2x2, 3x3): below
/// (the UNet's 16x16 and 8x8 levels) the per-call weight transform costs more than it saves.
pub(super) const WINOGRAD_MIN_PIXELS: usize = 32 * 32;

/// `CLEARPAINT_WINOGRAD=0` turns the Winograd path off (for comparisons).
pub(super) fn winograd_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CLEARPAINT_WINOGRAD").map_or(true, |v| v != "0"))
}

/// 3x3 stride-1 convolution by Winograd's F(2x2, 3x3) (Lavin & Gray 2015): each 2x2 output
/// tile is `Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A` for its 4x4 input patch `d`, so the channel sums
/// become 16 independent GEMMs `U[ξ] (co x ci) x V[ξ] (ci x tiles)` with 16 instead of 36
/// multiplies per tile and channel pair (2.25x fewer flops). The transforms only add, subtract
/// and halve, so the result is as accurate as the direct sum to within a few ulps. Tiles are
/// processed in passes (whole images, or bands of tile rows of one image) that keep the
/// transformed input and products within [`SCRATCH_ELEMS`] each.
#[allow(clippy::too_many_arguments)]
pub(super) fn winograd_3x3(
    x: &[f32],
    [b, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    pads: [usize; 4],
    [oh, ow]: [usize; 2],
    out: &mut [f32],
) {
    let u = weight_transform(weight, co, ci);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let fit = (SCRATCH_ELEMS / (16 * ci.max(co))).max(tw);
    let (images_per_pass, band) = if fit >= th * tw {
        ((fit / (th * tw)).clamp(1, b), th)
    } else {
        (1, (fit / tw).max(1))
    };
    SCRATCH.with(|s| {
        let (vbuf, mbuf) = &mut *s.borrow_mut();
        let mut b0 = 0;
        while b0 < b {
            let nb = images_per_pass.min(b - b0);
            let mut ty0 = 0;
            while ty0 < th {
                let rows = band.min(th - ty0);
                let tiles = nb * rows * tw;
                grow(vbuf, 16 * ci * tiles);
                grow(mbuf, 16 * co * tiles);
                let pass = Pass {
                    b0,
                    nb,
                    ty0,
                    rows,
                    tw,
                    tiles,
                };
                input_transform(x, [ci, h, w], pads, &pass, vbuf);
                products(&u, vbuf, mbuf, [co, ci], tiles);
                output_transform(mbuf, co, bias, [oh, ow], &pass, out);
                ty0 += rows;
            }
            b0 += nb;
        }
    });
}

/// One pass of [`winograd_3x3`]: images `b0..b0+nb`, tile rows `ty0..ty0+rows` of `tw` tiles
/// each, `tiles` (`nb * rows * tw`) in all.
struct Pass {
    b0: usize,
    nb: usize,
    ty0: usize,
    rows: usize,
    tw: usize,
    tiles: usize,
}

/// The transformed weights `U` (`16 x co x ci`).
fn weight_transform(weight: &[f32], co: usize, ci: usize) -> Vec<f32> {
    // U[ξ][o][c] = (G g Gᵀ)[ξ] with G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
    let mut u = vec![0f32; 16 * co * ci];
    let u_ptr = SendPtr(u.as_mut_ptr());
    weight.par_chunks(ci * 9).enumerate().for_each(|(o, wo)| {
        for (c, g) in wo.chunks_exact(9).enumerate() {
            let mut t = [[0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (i, r) in t.iter().enumerate() {
                let v = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (j, v) in v.into_iter().enumerate() {
                    // SAFETY: (ξ, o, c) is in bounds and each task writes its own o rows.
                    unsafe { u_ptr.write(((i * 4 + j) * co + o) * ci + c, v) };
                }
            }
        }
    });
    u
}

/// The transformed input `V` (`16 x ci x tiles`) of one pass, into `vbuf`.
fn input_transform(
    x: &[f32],
    [ci, h, w]: [usize; 3],
    pads: [usize; 4],
    pass: &Pass,
    vbuf: &mut [f32],
) {
    let Pass {
        b0,
        nb,
        ty0,
        rows,
        tw,
        tiles,
    } = *pass;
    let v_ptr = SendPtr(vbuf.as_mut_ptr());
    // V[ξ][c][t] = (Bᵀ d B)[ξ], Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: per
    // tile row, the row combinations over whole (zero-padded) input rows, then the
    // column combinations tile by tile; every loop runs along contiguous memory.
    let pwid = 2 * tw + 2;
    (0..ci).into_par_iter().for_each_init(
        || vec![0f32; 8 * pwid],
        |buf, c| {
            let (rows4, trow) = buf.split_at_mut(4 * pwid);
            for i in 0..nb {
                let plane = &x[((b0 + i) * ci + c) * h * w..][..h * w];
                for r in 0..rows {
                    let ty = ty0 + r;
                    for (dy, row) in rows4.chunks_exact_mut(pwid).enumerate() {
                        padded_row(row, plane, [h, w], 2 * ty + dy, pads);
                    }
                    let (d0, rest) = rows4.split_at(pwid);
                    let (d1, rest) = rest.split_at(pwid);
                    let (d2, d3) = rest.split_at(pwid);
                    let (t0, rest) = trow.split_at_mut(pwid);
                    let (t1, rest) = rest.split_at_mut(pwid);
                    let (t2, t3) = rest.split_at_mut(pwid);
                    for j in 0..pwid {
                        t0[j] = d0[j] - d2[j];
                        t1[j] = d1[j] + d2[j];
                        t2[j] = d2[j] - d1[j];
                        t3[j] = d1[j] - d3[j];
                    }
                    let first = (i * rows + r) * tw;
                    for (k, t) in [&*t0, &*t1, &*t2, &*t3].into_iter().enumerate() {
                        let dst = |j: usize| {
                            let at = ((k * 4 + j) * ci + c) * tiles + first;
                            // SAFETY: row c of V[ξ], tiles first..first+tw: in
                            // bounds and written by this task only.
                            unsafe { std::slice::from_raw_parts_mut(v_ptr.at(at), tw) }
                        };
                        let (v0, v1, v2, v3) = (dst(0), dst(1), dst(2), dst(3));
                        for tx in 0..tw {
                            let (a, b, cc, d) =
                                (t[2 * tx], t[2 * tx + 1], t[2 * tx + 2], t[2 * tx + 3]);
                            v0[tx] = a - cc;
                            v1[tx] = b + cc;
                            v2[tx] = cc - b;
                            v3[tx] = b - d;
                        }
                    }
                }
            }
        },
    );
}

/// The products `M` (`16 x co x tiles`) of one pass, into `mbuf`.
fn products(u: &[f32], vb: &[f32], mbuf: &mut [f32], [co, ci]: [usize; 2], tiles: usize) {
    // M[ξ] = U[ξ] V[ξ]: 16 GEMMs, one per task.
    let bf16 = matmul::bf16_on();
    let m_ptr = SendPtr(mbuf.as_mut_ptr());
    (0..16).into_par_iter().for_each(|xi| {
        // SAFETY: U[ξ] is co x ci, V[ξ] ci x tiles, M[ξ] co x tiles (row-major),
        // all in bounds; each task writes its own M[ξ].
        unsafe {
            matmul::gemm(
                &Gemm {
                    m: co,
                    n: tiles,
                    k: ci,
                    dst: m_ptr.at(xi * co * tiles),
                    dst_rs: tiles as isize,
                    dst_cs: 1,
                    accumulate: false,
                    beta: 1.0,
                    lhs: View {
                        ptr: u.as_ptr().add(xi * co * ci),
                        rs: ci as isize,
                        cs: 1,
                    },
                    rhs: View {
                        ptr: vb.as_ptr().add(xi * ci * tiles),
                        rs: tiles as isize,
                        cs: 1,
                    },
                },
                bf16,
                false,
            );
        }
    });
}

/// The output tiles of one pass, from the products in `mbuf`, into `out` (NCHW).
fn output_transform(
    mbuf: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    [oh, ow]: [usize; 2],
    pass: &Pass,
    out: &mut [f32],
) {
    let Pass {
        b0,
        nb,
        ty0,
        rows,
        tw,
        tiles,
    } = *pass;
    // Y = Aᵀ M A + bias, Aᵀ = [1 1 1 0; 0 1 -1 -1], into the NCHW output: the row
    // combinations along a tile row, then two output pixels per tile.
    let mb = &mbuf[..16 * co * tiles];
    let ohw = oh * ow;
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..co).into_par_iter().for_each_init(
        || vec![0f32; 8 * tw],
        |buf, o| {
            let add = bias.map_or(0.0, |bb| bb[o]);
            for i in 0..nb {
                // SAFETY: channel o of image b0+i, written by this task only.
                let img = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.at(((b0 + i) * co + o) * ohw), ohw)
                };
                for r in 0..rows {
                    let first = (i * rows + r) * tw;
                    let m = |k: usize| &mb[(k * co + o) * tiles + first..][..tw];
                    for j in 0..4 {
                        let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                        let (top, bottom) = buf.split_at_mut(4 * tw);
                        let (top, bottom) = (&mut top[j * tw..][..tw], &mut bottom[j * tw..][..tw]);
                        for tx in 0..tw {
                            top[tx] = m0[tx] + m1[tx] + m2[tx];
                            bottom[tx] = m1[tx] - m2[tx] - m3[tx];
                        }
                    }
                    for (dy, t) in buf.chunks_exact(4 * tw).enumerate() {
                        let y = 2 * (ty0 + r) + dy;
                        if y >= oh {
                            continue;
                        }
                        let (t0, t1, t2, t3) =
                            (&t[..tw], &t[tw..2 * tw], &t[2 * tw..3 * tw], &t[3 * tw..]);
                        let row = &mut img[y * ow..(y + 1) * ow];
                        let mut pairs = row.chunks_exact_mut(2);
                        for (tx, px) in (&mut pairs).enumerate() {
                            px[0] = t0[tx] + t1[tx] + t2[tx] + add;
                            px[1] = t1[tx] - t2[tx] - t3[tx] + add;
                        }
                        if let [last] = pairs.into_remainder() {
                            let tx = tw - 1;
                            *last = t0[tx] + t1[tx] + t2[tx] + add;
                        }
                    }
                }
            }
        },
    );
}

/// Row `py` of the zero-padded input plane (padded coordinates), `row.len()` wide.
fn padded_row(row: &mut [f32], plane: &[f32], [h, w]: [usize; 2], py: usize, pads: [usize; 4]) {
    row.fill(0.0);
    if let Some(y) = py.checked_sub(pads[0]).filter(|&y| y < h) {
        let n = w.min(row.len().saturating_sub(pads[1]));
        row[pads[1]..pads[1] + n].copy_from_slice(&plane[y * w..y * w + n]);
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::conv::tests::check;

    /// Winograd F(2x2, 3x3) path (>= 32x32 outputs): odd sizes (partial tiles), other paddings,
    /// several images per pass and bands of tile rows.
    #[test]
    fn winograd_matches_direct_convolution() {
        check([2, 5, 33, 35], 4, [3, 3], [1, 1, 1, 1], true);
        check([1, 3, 36, 34], 2, [3, 3], [0, 0, 0, 0], false);
        check([3, 2, 32, 40], 3, [3, 3], [2, 0, 1, 1], true);
        // 16 * 3 * tiles > 8 Mi: bands of tile rows.
        check([1, 3, 1500, 1500], 2, [3, 3], [1, 1, 1, 1], true);
    }
}
