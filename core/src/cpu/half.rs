//! f16 tensors (the GPU's half-precision path, see `crate::precision`): convolutions, linear
//! layers and attention computed in f32 (inputs and weights cast, the result cast back to f16),
//! so products accumulate in f32 as cuDNN's and PyTorch's half-precision kernels do, while
//! activations and weights are stored in f16 (half the memory and bandwidth between layers).
//!
//! Why not burn's f16 ops directly: burn-wgpu's direct convolution (what its autotune runs
//! where there are no cooperative-matrix units: WGSL, lavapipe) accumulates in the tensor's
//! type. Measured on the VAE decoders (`core/tests/half_parity.rs`): with f16 accumulation our
//! error against the f32 reference is 3-4x diffusers' own fp16 error; with f32 accumulation
//! 0.94-0.98x. Softmax over thousands of pixels is the other place f16 is known to break.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor};

fn f32_param<const D: usize>(p: &Param<Tensor<D>>) -> Param<Tensor<D>> {
    Param::from_tensor(p.val().cast(DType::F32))
}

/// `conv` on f16 `x`, accumulated in f32; an f16 result.
pub(super) fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let mut c = conv.clone();
    c.weight = f32_param(&conv.weight);
    c.bias = conv.bias.as_ref().map(f32_param);
    c.forward(x.cast(DType::F32)).cast(DType::F16)
}

/// `lin` on f16 `x`, accumulated in f32; an f16 result.
pub(super) fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    let mut l = lin.clone();
    l.weight = f32_param(&lin.weight);
    l.bias = lin.bias.as_ref().map(f32_param);
    l.forward(x.cast(DType::F32)).cast(DType::F16)
}

/// `softmax(q kᵀ / √d) v` for f16 heads, in f32; an f16 result.
pub(super) fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Tensor<4> {
    let f = |t: &Tensor<4>| t.clone().cast(DType::F32);
    burn::tensor::module::attention(
        f(q),
        f(k),
        f(v),
        None,
        None,
        AttentionModuleOptions::default(),
    )
    .cast(DType::F16)
}

/// LayerNorm; for f16 `x` computed in f32 (its statistics), the result cast back to f16.
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    if x.dtype() != DType::F16 {
        return norm.forward(x);
    }
    let mut n = norm.clone();
    n.gamma = f32_param(&norm.gamma);
    n.beta = norm.beta.as_ref().map(f32_param);
    n.forward(x.cast(DType::F32)).cast(DType::F16)
}
