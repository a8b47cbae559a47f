//! f16 and bf16 tensors (the GPU's and the CPU's half precision, see `crate::precision`):
//! convolutions, linear layers and attention computed in f32 (inputs and weights widened, the
//! result rounded back to the input's type), so products accumulate in f32 as cuDNN's,
//! oneDNN's and PyTorch's half-precision kernels do, while activations and weights are stored
//! in half precision (half the memory and bandwidth between layers). The f32 computation goes
//! through the same dispatch as f32 tensors, so on flex it runs our kernels.
//!
//! On the CPU, a bf16 layer's products run on the bf16 dot products (`gemm_bf16.rs`: the
//! inputs rounded to bf16 as they are packed, sums in f32, as PyTorch's bf16 autocast) where
//! [`bf16_kernels_used`](super::bf16_kernels_used) says they are faster than f32 FMAs, and on
//! the f32 kernels elsewhere (bf16's storage without its speed: widening costs a pass over the
//! weights per call).
//!
//! Why not burn's f16 ops directly: burn-wgpu's direct convolution (what its autotune runs
//! where there are no cooperative-matrix units: WGSL, lavapipe) accumulates in the tensor's
//! type. Measured on the VAE decoders (`core/tests/half_parity.rs`): with f16 accumulation our
//! error against the f32 reference is 3-4x diffusers' own fp16 error; with f32 accumulation
//! 0.94-0.98x. Softmax over thousands of pixels is the other place f16 is known to break.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

fn f32_param<const D: usize>(p: &Param<Tensor<D>>) -> Param<Tensor<D>> {
    let t = p.val();
    Param::from_tensor(widen_bf16(&t).unwrap_or_else(|| t.cast(DType::F32)))
}

/// A contiguous bf16 tensor on flex widened to f32 on all cores (a bf16 is the top half of an
/// f32: one shift per element, vectorised), several times faster than the generic cast, which
/// the per-call widening of every weight would otherwise pay. `None` elsewhere.
fn widen_bf16<const D: usize>(t: &Tensor<D>) -> Option<Tensor<D>> {
    if t.dtype() != DType::BF16 {
        return None;
    }
    let device = t.device();
    let p = t.clone().try_into_primitive::<Flex>().ok()?;
    let src: &[u16] = bytemuck::try_cast_slice(p.as_slice::<half::bf16>()?).ok()?;
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(1 << 16)
        .zip(src.par_chunks(1 << 16))
        .for_each(|(o, s)| {
            for (o, &s) in o.iter_mut().zip(s) {
                *o = f32::from_bits((s as u32) << 16);
            }
        });
    let data = TensorData::new(out, t.shape());
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)).to_device(&device))
}

/// `conv` on half-precision `x` or with half-precision weights, accumulated in f32; a result
/// in `x`'s type.
pub(super) fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let dtype = x.dtype();
    let mut c = conv.clone();
    c.weight = f32_param(&conv.weight);
    c.bias = conv.bias.as_ref().map(f32_param);
    let bf16 = uses_bf16_kernels(dtype, conv.weight.val().dtype());
    let out = super::matmul::with_bf16_products(bf16, || super::conv2d(&c, x.cast(DType::F32)));
    out.cast(dtype)
}

/// `lin` on half-precision `x` or with half-precision weights, accumulated in f32; a result in
/// `x`'s type.
pub(super) fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    let mut l = lin.clone();
    l.weight = f32_param(&lin.weight);
    l.bias = lin.bias.as_ref().map(f32_param);
    let bf16 = uses_bf16_kernels(dtype, lin.weight.val().dtype());
    let out = super::matmul::with_bf16_products(bf16, || super::linear(&l, x.cast(DType::F32)));
    out.cast(dtype)
}

/// `softmax(q kᵀ / √d) v` for half-precision heads, in f32; a result in `q`'s type.
pub(super) fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Tensor<4> {
    let f = |t: &Tensor<4>| t.clone().cast(DType::F32);
    let (q32, k32, v32) = (f(q), f(k), f(v));
    let bf16 = uses_bf16_kernels(q.dtype(), q.dtype());
    let on_flex = super::matmul::with_bf16_products(bf16, || super::attention(&q32, &k32, &v32));
    let out = on_flex.unwrap_or_else(|| {
        burn::tensor::module::attention(
            q32,
            k32,
            v32,
            None,
            None,
            AttentionModuleOptions::default(),
        )
    });
    out.cast(q.dtype())
}

/// LayerNorm; for half-precision `x` or parameters computed in f32 (its statistics), the
/// result rounded back to `x`'s type.
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    if !is_half(dtype) && !is_half(norm.gamma.val().dtype()) {
        return norm.forward(x);
    }
    let mut n = norm.clone();
    n.gamma = f32_param(&norm.gamma);
    n.beta = norm.beta.as_ref().map(f32_param);
    n.forward(x.cast(DType::F32)).cast(dtype)
}

/// Whether a layer with input `x` and weights `w` runs its products on the bf16 dot products:
/// one of them is bf16 (a bf16 model on the CPU) and the CPU is fast at them.
fn uses_bf16_kernels(x: DType, w: DType) -> bool {
    (x == DType::BF16 || w == DType::BF16) && super::bf16_kernels_used()
}

/// Whether `dtype` is f16 or bf16 (the types this file computes in f32).
pub(super) fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}
