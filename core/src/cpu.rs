//! Faster CPU paths for the `flex` backend, used where burn's generic op leaves most of the
//! machine idle.
//!
//! * [`conv2d`]: stride-1 convolutions (every 3x3 and 1x1 conv of the UNet and the VAEs) as a few
//!   large GEMMs instead of burn-flex's im2col over 512-pixel tiles. For a `kh x kw` kernel the
//!   input is copied once into a zero-padded buffer `[c_in][rows * padded_width]`; tap `(dy, dx)`
//!   of the kernel is then a plain matrix product of `W[:, :, dy, dx]` (`c_out x c_in`) with the
//!   padded buffer read from offset `dy * padded_width + dx` (`c_in x n`), accumulated into a
//!   `c_out x n` result on the padded grid. The columns that fall in the padding are dropped when
//!   the result is copied into the NCHW output (bias added on the way). Batch items are stacked
//!   along the columns, so small late layers still make one large GEMM; large images are cut
//!   into bands of rows so the scratch buffers stay small. The GEMMs run on the `gemm` crate
//!   with its AVX-512 kernels compiled in (picked at run time when the CPU has them).
//!
//! Everything else (other strides, groups, dilation, non-f32 tensors, the wgpu backend) goes to
//! burn's own op, so callers can use these functions unconditionally.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Upper bound for each scratch buffer (padded input, padded-grid result), in f32 elements.
/// 8 Mi elements = 32 MiB: big enough for whole 64x64 UNet activations with the batch stacked,
/// small enough that a 512x512 VAE layer is cut into a handful of bands.
const SCRATCH_ELEMS: usize = 8 << 20;

thread_local! {
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Wall time spent in this module's kernels, per kind, since the last [`take_op_times`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpTimes {
    pub conv_s: f64,
    pub attention_s: f64,
    pub group_norm_s: f64,
    /// Linear layers and the GEGLU activation.
    pub linear_s: f64,
}

static OP_NS: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Returns the time spent in [`conv2d`], [`attention`], [`group_norm_silu`], [`linear`] and
/// [`geglu`] (flex paths)
/// since the previous call, and starts counting again. For `clearpaint bench`'s breakdown.
pub fn take_op_times() -> OpTimes {
    let s = |i: usize| OP_NS[i].swap(0, Ordering::Relaxed) as f64 * 1e-9;
    OpTimes {
        conv_s: s(0),
        attention_s: s(1),
        group_norm_s: s(2),
        linear_s: s(3),
    }
}

fn count<T>(kind: usize, start: Instant, out: T) -> T {
    OP_NS[kind].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// `conv.forward(x)`, through [`conv2d_f32`] when `x` is an f32 tensor on the flex backend and
/// the convolution has stride 1, no dilation and one group.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
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

fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("made contiguous f32")
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

fn out_size(hw: [usize; 2], k: [usize; 2], pads: [usize; 4]) -> Option<[usize; 2]> {
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

/// `CLEARPAINT_IM2COL=0` turns the im2col path for small maps off (for comparisons).
fn im2col_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CLEARPAINT_IM2COL").map_or(true, |v| v != "0"))
}

/// Small maps with many channels (the UNet's 16x16 and 8x8 levels: up to 2560 -> 1280):
/// one GEMM of the weights as they are stored (`co x ci*kh*kw`, read once, contiguously) with
/// an im2col matrix of the images (`ci*kh*kw x images*pixels`), instead of kh*kw GEMMs that
/// each walk the whole weight tensor with a stride of kh*kw.
#[allow(clippy::too_many_arguments)]
fn im2col_conv(
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
                gemm::gemm(
                    co,
                    n,
                    k,
                    grid.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    weight.as_ptr(),
                    1,
                    k as isize,
                    col.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
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

/// Output pixels per image from which 3x3 convolutions use Winograd F(2x2, 3x3): below
/// (the UNet's 16x16 and 8x8 levels) the per-call weight transform costs more than it saves.
const WINOGRAD_MIN_PIXELS: usize = 32 * 32;

/// `CLEARPAINT_WINOGRAD=0` turns the Winograd path off (for comparisons).
fn winograd_enabled() -> bool {
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
fn winograd_3x3(
    x: &[f32],
    [b, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    pads: [usize; 4],
    [oh, ow]: [usize; 2],
    out: &mut [f32],
) {
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
                                        let (a, b, cc, d) = (
                                            t[2 * tx],
                                            t[2 * tx + 1],
                                            t[2 * tx + 2],
                                            t[2 * tx + 3],
                                        );
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
                // M[ξ] = U[ξ] V[ξ]: 16 GEMMs, one per task.
                let (vb, m_ptr) = (&vbuf[..], SendPtr(mbuf.as_mut_ptr()));
                (0..16).into_par_iter().for_each(|xi| {
                    // SAFETY: U[ξ] is co x ci, V[ξ] ci x tiles, M[ξ] co x tiles (row-major),
                    // all in bounds; each task writes its own M[ξ].
                    unsafe {
                        gemm::gemm(
                            co,
                            tiles,
                            ci,
                            m_ptr.at(xi * co * tiles),
                            1,
                            tiles as isize,
                            false,
                            u.as_ptr().add(xi * co * ci),
                            1,
                            ci as isize,
                            vb.as_ptr().add(xi * ci * tiles),
                            1,
                            tiles as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                });
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
                                std::slice::from_raw_parts_mut(
                                    out_ptr.at(((b0 + i) * co + o) * ohw),
                                    ohw,
                                )
                            };
                            for r in 0..rows {
                                let first = (i * rows + r) * tw;
                                let m = |k: usize| &mb[(k * co + o) * tiles + first..][..tw];
                                for j in 0..4 {
                                    let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                                    let (top, bottom) = buf.split_at_mut(4 * tw);
                                    let (top, bottom) =
                                        (&mut top[j * tw..][..tw], &mut bottom[j * tw..][..tw]);
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
                                    let (t0, t1, t2, t3) = (
                                        &t[..tw],
                                        &t[tw..2 * tw],
                                        &t[2 * tw..3 * tw],
                                        &t[3 * tw..],
                                    );
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
                ty0 += rows;
            }
            b0 += nb;
        }
    });
}

/// Row `py` of the zero-padded input plane (padded coordinates), `row.len()` wide.
fn padded_row(row: &mut [f32], plane: &[f32], [h, w]: [usize; 2], py: usize, pads: [usize; 4]) {
    row.fill(0.0);
    if let Some(y) = py.checked_sub(pads[0]).filter(|&y| y < h) {
        let n = w.min(row.len().saturating_sub(pads[1]));
        row[pads[1]..pads[1] + n].copy_from_slice(&plane[y * w..y * w + n]);
    }
}

/// A raw pointer that rayon tasks may share; every task writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes from parallel tasks (see each use).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Pointer to element `i` (a method, so closures capture the whole `Send` wrapper).
    ///
    /// # Safety
    /// `i` is within the allocation.
    unsafe fn at(self, i: usize) -> *mut f32 {
        unsafe { self.0.add(i) }
    }

    /// # Safety
    /// `i` is in bounds of the allocation and no other task writes element `i`.
    unsafe fn write(self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v };
    }
}

/// A pass of the banded convolution: images `b0..b0+nb`, output rows `y0..y0+rows`.
struct Band {
    b0: usize,
    nb: usize,
    y0: usize,
    rows: usize,
    /// Padded input rows the band reads (`rows + kh - 1`).
    in_rows: usize,
    /// Padded row width.
    pw: usize,
}

#[allow(clippy::too_many_arguments)]
fn band_conv(
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
                gemm::gemm(
                    co,
                    n,
                    ci,
                    grid.as_mut_ptr(),
                    1,
                    n as isize,
                    tap > 0,
                    weight.as_ptr().add(tap),
                    taps as isize,
                    (ci * taps) as isize,
                    padded.as_ptr().add(dy * pw + dx),
                    1,
                    row_len as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
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

/// 1x1 convolution: one GEMM per image, written straight into the output (bias first).
fn pointwise(
    x: &[f32],
    [b, ci, hw]: [usize; 3],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
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
            gemm::gemm(
                co,
                hw,
                ci,
                dst.as_mut_ptr(),
                1,
                hw as isize,
                bias.is_some(),
                weight.as_ptr(),
                1,
                ci as isize,
                x.as_ptr().add(i * ci * hw),
                1,
                hw as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
}

/// Query rows per attention task: the `rows x keys` score block of one task stays in L2/L3.
const ATTN_ROWS: usize = 512;

/// A strided 3-D view `[heads-major index, rows, cols]` into a flex tensor's storage.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    /// Strides of the `[B, H, N, D]` dims, in elements.
    strides: [isize; 4],
}

impl View<'_> {
    fn of(t: &FlexTensor) -> Option<View<'_>> {
        if t.dtype() != DType::F32 || t.layout().shape().num_dims() != 4 {
            return None;
        }
        let s = t.layout().strides();
        if s.iter().any(|&v| v < 0) {
            return None;
        }
        Some(View {
            data: t.storage::<f32>(),
            offset: t.layout().start_offset(),
            strides: [s[0], s[1], s[2], s[3]],
        })
    }

    fn ptr(&self, b: usize, h: usize, row: usize) -> *const f32 {
        let [sb, sh, sn, _] = self.strides;
        let off = self.offset as isize + b as isize * sb + h as isize * sh + row as isize * sn;
        debug_assert!((off as usize) < self.data.len());
        // SAFETY: in bounds for every (b, h, row) of the tensor's shape (flex layouts are valid).
        unsafe { self.data.as_ptr().offset(off) }
    }
}

/// `softmax(q kᵀ · scale) v` for `[B, H, N, D]` f32 tensors on the flex backend, without a
/// mask. Returns `None` (caller uses burn's op) for other backends, dtypes or masks.
///
/// Work is split into `(batch, head, 128-query block)` tasks across the rayon pool; each task
/// does two single-threaded GEMMs (scores, then scores x values) around a vectorised
/// exponential, so nothing larger than `128 x keys` is ever materialised.
pub fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Option<Tensor<4>> {
    let device = q.device();
    let qp = q.clone().try_into_primitive::<Flex>().ok()?;
    let kp = k.clone().try_into_primitive::<Flex>().ok()?;
    let vp = v.clone().try_into_primitive::<Flex>().ok()?;
    let (qv, kv, vv) = (View::of(&qp)?, View::of(&kp)?, View::of(&vp)?);
    let [b, h, n, d] = q.dims();
    let [kb, kh, nk, kd] = k.dims();
    let [vb, vh, vn, dv] = v.dims();
    if [kb, kh, kd] != [b, h, d] || [vb, vh, vn] != [b, h, nk] || nk == 0 || n == 0 {
        return None;
    }
    let start = Instant::now();
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; b * h * n * dv];
    let exp = exp_rows_fn();
    out.par_chunks_mut(n * dv)
        .enumerate()
        .for_each(|(bh, head)| {
            let (bi, hi) = (bh / h, bh % h);
            head.par_chunks_mut(ATTN_ROWS * dv)
                .enumerate()
                .for_each_init(Vec::new, |scores: &mut Vec<f32>, (block, dst)| {
                    attention_block(
                        [qv, kv, vv],
                        [bi, hi, block * ATTN_ROWS],
                        [d, nk, dv],
                        scale,
                        exp,
                        scores,
                        dst,
                    )
                });
        });
    let data = TensorData::new(out, [b, h, n, dv]);
    let out = Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device);
    Some(count(1, start, out))
}

/// One task of [`attention`]: query rows `r0..r0 + dst.len() / dv` of head `(bi, hi)`.
#[allow(clippy::too_many_arguments)]
fn attention_block(
    [qv, kv, vv]: [View<'_>; 3],
    [bi, hi, r0]: [usize; 3],
    [d, nk, dv]: [usize; 3],
    scale: f32,
    exp: ExpRows,
    scores: &mut Vec<f32>,
    dst: &mut [f32],
) {
    let rows = dst.len() / dv;
    grow(scores, rows * nk);
    let s = &mut scores[..rows * nk];
    // SAFETY: the views are in bounds for (bi, hi, r0..r0+rows) and all keys; `s` is rows x nk
    // and `dst` rows x dv, both row-major.
    unsafe {
        gemm::gemm(
            rows,
            nk,
            d,
            s.as_mut_ptr(),
            1,
            nk as isize,
            false,
            qv.ptr(bi, hi, r0),
            qv.strides[3],
            qv.strides[2],
            kv.ptr(bi, hi, 0),
            kv.strides[2],
            kv.strides[3],
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    let mut inv = [0f32; ATTN_ROWS];
    for (r, row) in s.chunks_exact_mut(nk).enumerate() {
        inv[r] = 1.0 / exp(row, row_max(row));
    }
    // SAFETY: as above.
    unsafe {
        gemm::gemm(
            rows,
            dv,
            nk,
            dst.as_mut_ptr(),
            1,
            dv as isize,
            false,
            s.as_ptr(),
            1,
            nk as isize,
            vv.ptr(bi, hi, 0),
            vv.strides[3],
            vv.strides[2],
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    for (r, row) in dst.chunks_exact_mut(dv).enumerate() {
        for o in row {
            *o *= inv[r];
        }
    }
}

/// Largest element (16 lanes, so it vectorises; NaN-free inputs assumed as in softmax).
fn row_max(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    let mut it = row.chunks_exact(16);
    for c in &mut it {
        for (a, &x) in m.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let tail = it
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    m.iter().copied().fold(tail, f32::max)
}

/// `lin.forward(x)` for `x` of rank 2 or 3: on flex (f32) one GEMM per leading index, reading
/// `x` through its strides (the UNet's `[B, HW, C]` views of NCHW maps need no copy) and
/// writing into a bias-initialised output. Other backends use burn's op.
pub fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
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
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    bias.is_some(),
                    xi,
                    sk,
                    sm,
                    w,
                    ws[1],
                    ws[0],
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            } else {
                // Few rows (e.g. CLIP's 77 tokens): outᵀ = Wᵀ xᵀ (n x m), so the long side
                // fills the GEMM's tall microkernel instead of a mostly empty second tile.
                gemm::gemm(
                    n,
                    m,
                    k,
                    dst.as_mut_ptr(),
                    n as isize,
                    1,
                    bias.is_some(),
                    w,
                    ws[0],
                    ws[1],
                    xi,
                    sm,
                    sk,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
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

/// `row[i] = exp(row[i] - max)`, returning the sum; the widest vector unit the CPU has.
type ExpRows = fn(&mut [f32], f32) -> f32;

fn exp_rows_fn() -> ExpRows {
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
fn exp_within(x: f32, hi: f32) -> f32 {
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

/// GroupNorm (then SiLU when `silu`) of an f32 NCHW tensor on the flex backend, in two passes
/// over each group (statistics in f64, then normalise + affine + activation in one sweep).
/// `None` for other backends or dtypes (callers fall back to burn's ops).
pub fn group_norm_silu(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Option<Tensor<4>> {
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

fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

#[cfg(test)]
mod tests {
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
    type Conv = fn(&[f32], [usize; 4], &[f32], [usize; 3], Option<&[f32]>, [usize; 4]) -> Vec<f32>;

    fn check(dims: [usize; 4], co: usize, k: [usize; 2], pads: [usize; 4], bias: bool) {
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
    fn check_with(
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

    #[test]
    fn bands_and_stacked_images_agree_with_direct_convolution() {
        // Wide enough rows that the 8 Mi scratch is split into bands (a 3x5 kernel: 3x3 ones
        // of this size take the Winograd path).
        check([1, 2, 2100, 2100], 1, [3, 5], [1, 2, 1, 2], true);
        // Several images share one im2col pass.
        check([5, 3, 9, 9], 4, [3, 3], [1, 1, 1, 1], false);
    }

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

    #[test]
    fn invalid_sizes_are_refused() {
        assert!(conv2d_f32(&[0.0; 4], [1, 1, 2, 2], &[0.0; 9], [1, 3, 3], None, [0; 4]).is_none());
        assert!(conv2d_f32(&[0.0; 3], [1, 1, 2, 2], &[0.0; 1], [1, 1, 1], None, [0; 4]).is_none());
    }
}
