//! Attention without a mask: [`attention`], in blocks of query rows with the scores of a block
//! kept in cache.

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::matmul::{self, Gemm};
use super::vmath::{ExpRows, exp_rows_fn};
use super::{count, grow};

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
    if super::half::is_half(q.dtype()) {
        return Some(super::half::attention(q, k, v));
    }
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
    let bf16 = matmul::bf16_on();
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
                        (exp, bf16),
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
    (exp, bf16): (ExpRows, bool),
    scores: &mut Vec<f32>,
    dst: &mut [f32],
) {
    let rows = dst.len() / dv;
    grow(scores, rows * nk);
    let s = &mut scores[..rows * nk];
    // SAFETY: the views are in bounds for (bi, hi, r0..r0+rows) and all keys; `s` is rows x nk
    // and `dst` rows x dv, both row-major.
    unsafe {
        matmul::gemm(
            &Gemm {
                m: rows,
                n: nk,
                k: d,
                dst: s.as_mut_ptr(),
                dst_rs: nk as isize,
                dst_cs: 1,
                accumulate: false,
                beta: scale,
                lhs: matmul::View {
                    ptr: qv.ptr(bi, hi, r0),
                    rs: qv.strides[2],
                    cs: qv.strides[3],
                },
                rhs: matmul::View {
                    ptr: kv.ptr(bi, hi, 0),
                    rs: kv.strides[3],
                    cs: kv.strides[2],
                },
            },
            bf16,
            false,
        );
    }
    let mut inv = [0f32; ATTN_ROWS];
    for (r, row) in s.chunks_exact_mut(nk).enumerate() {
        inv[r] = 1.0 / exp(row, row_max(row));
    }
    // SAFETY: as above.
    unsafe {
        matmul::gemm(
            &Gemm {
                m: rows,
                n: dv,
                k: nk,
                dst: dst.as_mut_ptr(),
                dst_rs: dv as isize,
                dst_cs: 1,
                accumulate: false,
                beta: 1.0,
                lhs: matmul::View {
                    ptr: s.as_ptr(),
                    rs: nk as isize,
                    cs: 1,
                },
                rhs: matmul::View {
                    ptr: vv.ptr(bi, hi, 0),
                    rs: vv.strides[2],
                    cs: vv.strides[3],
                },
            },
            bf16,
            false,
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
