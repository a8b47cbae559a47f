//! Multi-head scaled dot-product attention that never needs a score buffer larger than a
//! budget: queries are processed in slices, so `[batch, heads, q_slice, keys]` stays below
//! [`SCORE_BUDGET_BYTES`] even at 64x64 latents (4096 queries), where the whole score matrix
//! of SD 1.5's first block would be 1 GiB. Backends with a flash kernel never materialise it
//! at all; slicing keeps the others (and lavapipe's 128 MiB bindings) within bounds.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor};

/// Largest score matrix one attention call may need.
pub const SCORE_BUDGET_BYTES: usize = 64 << 20;

/// `softmax(q kᵀ / sqrt(d) [+ causal mask]) v` on `[B, H, N, D]` tensors.
pub fn sdpa(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
    sdpa_within(q, k, v, causal, SCORE_BUDGET_BYTES)
}

/// [`sdpa`] with an explicit score-buffer budget (bytes).
pub fn sdpa_within(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: bool,
    budget: usize,
) -> Tensor<4> {
    let dtype = q.dtype();
    if crate::precision::is_half(dtype) {
        // Softmax over f16 scores loses the small weights: computed in f32, returned in f16
        // (or bf16).
        let f = |t: Tensor<4>| t.cast(DType::F32);
        return sdpa_within(f(q), f(k), f(v), causal, budget).cast(dtype);
    }
    if !causal {
        // The flex backend's own kernel needs no slicing (it works in 128-query blocks).
        if let Some(out) = crate::cpu::attention(&q, &k, &v) {
            return out;
        }
    }
    sliced(q, k, v, causal, budget)
}

/// burn's attention op over query slices that keep the score buffer within `budget` bytes.
fn sliced(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool, budget: usize) -> Tensor<4> {
    let [b, h, n, _] = q.dims();
    let nk = k.dims()[2];
    let options = AttentionModuleOptions {
        is_causal: causal,
        ..Default::default()
    };
    let per_query = b * h * nk * 4;
    let slice = (budget / per_query.max(1)).max(1);
    if slice >= n || causal {
        return attention(q, k, v, None, None, options);
    }
    let d = q.dims()[3];
    let parts: Vec<Tensor<4>> = (0..n)
        .step_by(slice)
        .map(|s| {
            let e = (s + slice).min(n);
            let qs = q.clone().slice([0..b, 0..h, s..e, 0..d]);
            attention(qs, k.clone(), v.clone(), None, None, options)
        })
        .collect();
    Tensor::cat(parts, 2)
}

/// `[B, N, H*D]` -> `[B, H, N, D]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

/// `[B, H, N, D]` -> `[B, N, H*D]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn qkv(nq: usize, nk: usize) -> [Tensor<4>; 3] {
        let dev = Device::flex();
        let r = |n| Tensor::random([2, 3, n, 8], Distribution::Normal(0.0, 1.0), &dev);
        [r(nq), r(nk), r(nk)]
    }

    #[test]
    fn sliced_attention_equals_whole() {
        let [q, k, v] = qkv(37, 29);
        let whole = sliced(q.clone(), k.clone(), v.clone(), false, usize::MAX);
        // 2*3*29*4 bytes per query row: a 5-row budget forces 8 slices, the last one short.
        let parts = sliced(q, k, v, false, 2 * 3 * 29 * 4 * 5);
        let (a, b) = (crate::testing::to_vec(whole), crate::testing::to_vec(parts));
        assert!(crate::testing::rel_err(&b, &a) < 1e-6);
    }

    /// The flex kernel (crate::cpu::attention) against burn's op, on strided heads as the
    /// models pass them, with more queries than one 128-row block and a short last block.
    #[test]
    fn cpu_kernel_equals_burn_attention() {
        let dev = Device::flex();
        let x: Tensor<3> = Tensor::random([2, 300, 24], Distribution::Normal(0.0, 2.0), &dev);
        let c: Tensor<3> = Tensor::random([2, 77, 24], Distribution::Normal(0.0, 2.0), &dev);
        for ctx in [x.clone(), c] {
            let (q, k, v) = (
                split_heads(x.clone(), 3),
                split_heads(ctx.clone(), 3),
                split_heads(ctx * 0.5, 3),
            );
            let ours = crate::cpu::attention(&q, &k, &v).expect("flex f32 tensors");
            let burns = sliced(q, k, v, false, usize::MAX);
            let (a, b) = (crate::testing::to_vec(burns), crate::testing::to_vec(ours));
            let err = crate::testing::rel_err(&b, &a);
            assert!(err < 1e-6, "relative error {err:e}");
        }
    }
}
