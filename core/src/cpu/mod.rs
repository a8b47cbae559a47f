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
//!
//! # Layout
//!
//! One file per kernel family, all reached through the functions re-exported here:
//!
//! * `conv`: [`conv2d`] and [`conv2d_f32`], which pick the path for each convolution below,
//!   and 1x1 convolutions (one GEMM per image).
//! * `winograd`: 3x3 convolutions of maps from 32x32 outputs up, by Winograd F(2x2, 3x3).
//! * `im2col`: convolutions of small maps (below 32x32 outputs), as one im2col GEMM.
//! * `band`: every other stride-1 convolution, as the `kh * kw` shifted GEMMs described above,
//!   over bands of rows.
//! * `attention`: [`attention`](fn@attention) (`softmax(q kᵀ) v` in blocks of query rows).
//! * `linear`: [`linear`](fn@linear), [`geglu`] and [`gelu_erf`].
//! * `norm`: [`group_norm_silu`].
//! * `half`: f16 and bf16 tensors or weights through the same dispatch functions:
//!   convolutions, linear layers and attention summed in f32 (see its module doc).
//! * `matmul`: the one place every kernel's matrix products go through: the `gemm` crate in
//!   f32, or `gemm_bf16` (a packed GEMM on AVX512_BF16's `vdpbf16ps`) for bf16 layers on CPUs
//!   whose bf16 dot products are measured faster than their f32 FMAs.
//! * `vmath`: the branch-free vector `exp` that softmax, GELU and SiLU share, and its per-CPU
//!   (AVX-512, AVX2) dispatch.
//!
//! This file holds what they share: the scratch buffers and their size, the contiguous-f32
//! helpers, the `SendPtr` for disjoint writes from rayon tasks, and the per-kind timers behind
//! [`take_op_times`].
//!
//! # Another precision
//!
//! Every public function checks the dtypes of its tensors: f32 runs here, f16 and bf16 go
//! through `half` (widened to f32 for the same paths), anything else to burn's op. bf16
//! layers turn on bf16 products for their computation (`matmul::with_bf16_products`); each
//! kernel reads that once on the calling thread and passes it to `matmul::gemm`, which packs
//! the f32 operands into bf16 panels for `gemm_bf16` instead of calling the `gemm` crate.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use burn::backend::flex::FlexTensor;

mod attention;
mod band;
mod conv;
mod gemm_bf16;
mod half;
mod im2col;
mod linear;
mod matmul;
mod norm;
mod vmath;
mod winograd;

pub use attention::attention;
pub use conv::{conv2d, conv2d_f32};
pub use half::layer_norm;
pub use linear::{geglu, gelu_erf, linear};
pub use matmul::{
    BF16_KERNELS_ENV, bf16_gemms, bf16_kernels_available, bf16_kernels_used, bf16_speed_vs_f32,
    with_bf16_kernels,
};
pub use norm::group_norm_silu;

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

/// Returns the time spent in [`conv2d`], [`attention`](fn@attention), [`group_norm_silu`],
/// [`linear`](fn@linear) and [`geglu`] (flex paths)
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

fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}
