//! Hand-written WGSL kernels (`shaders/*.wgsl`) for the GPU path, launched through burn-wgpu's
//! template-kernel API on the same wgpu device as the rest of the model, each behind one
//! function that runs the kernel when its input lives on wgpu and a reference built from plain
//! tensor ops (or plain Rust for images) otherwise -- so callers never branch.
//!
//! The `*_reference` functions are those references; the tests in `core/tests/kernels.rs`
//! check every kernel against them on lavapipe.

use burn::backend::wgpu::{
    CubeTensor, KernelSource, SourceKernel, SourceTemplate, Wgpu, into_contiguous,
};
use burn::tensor::{DType, Device, Int, Shape, Tensor};
use cubecl::prelude::KernelId;
use cubecl::server::{Handle, KernelArguments};
use cubecl::{CubeCount, CubeDim};

/// Threads per workgroup of every kernel here.
pub const WORKGROUP: u32 = 256;

/// A WGSL source with its workgroup size filled in, and for kernels with float buffers their
/// element type: `{{ elem }}` is `f32`, or `f16` with `{{ enable }}` = `enable f16;` (the
/// kernels compute in f32 either way and convert on load and store).
#[derive(Debug)]
struct Wgsl {
    name: &'static str,
    source: &'static str,
    half: bool,
}

impl Wgsl {
    /// This kernel with `dtype`'s buffers (f32 or f16).
    fn with_elem(mut self, dtype: DType) -> Self {
        self.half = dtype == DType::F16;
        self
    }
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        let (elem, enable) = if self.half {
            ("f16", "enable f16;")
        } else {
            ("f32", "")
        };
        SourceTemplate::new(self.source)
            .register("workgroup_size", WORKGROUP.to_string())
            .register("elem", elem)
            .register("enable", enable)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.half))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

macro_rules! shader {
    ($name:literal) => {
        Wgsl {
            name: $name,
            source: include_str!(concat!("../../../shaders/", $name, ".wgsl")),
            half: false,
        }
    };
}

/// Whether tensors on `device` run on the wgpu runtime (where the kernels apply).
pub fn is_wgpu(device: &Device) -> bool {
    cube_of(Tensor::<1>::zeros([1], device)).is_some()
}

/// Whether `t` lives on the wgpu runtime.
fn on_wgpu<const D: usize>(t: &Tensor<D>) -> bool {
    cube_of(t.clone()).is_some()
}

/// The burn-wgpu primitive of `t`, if it lives there.
fn cube_of<const D: usize>(t: Tensor<D>) -> Option<CubeTensor> {
    t.try_into_primitive::<Wgpu>().ok()
}

fn from_cube<const D: usize>(t: CubeTensor) -> Tensor<D> {
    Tensor::from_primitive::<Wgpu>(t)
}

fn params(t: &CubeTensor, values: &[u32]) -> Handle {
    t.client.create_from_slice(bytemuck::cast_slice(values))
}

/// Workgroups for `n` threads: x first, y when x would pass wgpu's 65535 limit.
fn grid(n: usize) -> CubeCount {
    let groups = n.div_ceil(WORKGROUP as usize).max(1);
    let x = groups.min(65535);
    let y = groups.div_ceil(x);
    CubeCount::Static(x as u32, y as u32, 1)
}

thread_local! {
    static LAUNCHES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many kernels of this module this thread has launched (tests check that the fused path
/// is the one taken on wgpu).
pub fn launches() -> usize {
    LAUNCHES.with(|l| l.get())
}

fn launch(like: &CubeTensor, kernel: Wgsl, count: CubeCount, buffers: Vec<Handle>) {
    LAUNCHES.with(|l| l.set(l.get() + 1));
    if crate::gpu::compiler_of(like) == crate::gpu::Compiler::SpirV {
        return native::launch(like, &kernel, count, &buffers);
    }
    like.client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(WORKGROUP))),
        count,
        KernelArguments::new().with_buffers(buffers.into_iter().map(|h| h.binding()).collect()),
    );
}

thread_local! {
    static POISON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests: fill every kernel output with NaN (f32) / 0xDEADBEEF (u32) before the launch, so an
/// element a kernel fails to write shows up (for this thread).
pub fn poison_outputs(on: bool) {
    POISON.with(|p| p.set(on));
}

fn output_handle(like: &CubeTensor, n: usize, poison: u32) -> Handle {
    if POISON.with(|p| p.get()) {
        like.client
            .create_from_slice(bytemuck::cast_slice(&vec![poison; n.max(1)]))
    } else {
        like.client.empty(n.max(1) * 4)
    }
}

/// A contiguous f32 output shaped `shape` on `like`'s device (uninitialised).
fn empty_f32(like: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_float(like, shape, DType::F32)
}

/// A contiguous f32 or f16 output shaped `shape` on `like`'s device (uninitialised; NaN when
/// poisoned).
fn empty_float(like: &CubeTensor, shape: Vec<usize>, dtype: DType) -> CubeTensor {
    let n: usize = shape.iter().product();
    let handle = if dtype == DType::F16 {
        // Two halves per u32 word, both NaN (0x7e00).
        output_handle(like, n.div_ceil(2), 0x7e00_7e00)
    } else {
        output_handle(like, n, f32::NAN.to_bits())
    };
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape),
        handle,
        dtype,
    )
}

/// The float dtype a kernel runs `x` in: f16 stays f16, anything else is computed in f32.
fn kernel_dtype<const D: usize>(x: &Tensor<D>) -> DType {
    if x.dtype() == DType::F16 {
        DType::F16
    } else {
        DType::F32
    }
}

use crate::precision::as_dtype;

fn empty_u32(like: &CubeTensor, n: usize) -> CubeTensor {
    let handle = output_handle(like, n, 0xDEAD_BEEF);
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        Shape::from(vec![n]),
        handle,
        DType::U32,
    )
}

/// f32 values in increasing order of their bit patterns' ordering key (total order, NaN aside).
fn order_key(v: f32) -> i64 {
    let b = v.to_bits() as i32 as i64;
    if b < 0 { -(b & 0x7fff_ffff) } else { b }
}

fn from_key(k: i64) -> f32 {
    if k < 0 {
        f32::from_bits(((-k) as u32) | 0x8000_0000)
    } else {
        f32::from_bits(k as u32)
    }
}

/// For a non-decreasing `level(v)` taking values 0..=top over `[lo, hi]`: thresholds[k] = the
/// smallest f32 `v` with `level(v) > k`, for k in 0..top. A kernel that counts the thresholds
/// <= v reproduces `level` exactly with comparisons only.
fn thresholds(top: u32, lo: f32, hi: f32, level: impl Fn(f32) -> u32) -> Vec<f32> {
    (0..top)
        .map(|k| {
            let (mut a, mut b) = (order_key(lo), order_key(hi));
            if level(lo) > k {
                return lo;
            }
            if level(hi) <= k {
                return f32::INFINITY;
            }
            // level(a) <= k < level(b)
            while b - a > 1 {
                let m = a + (b - a) / 2;
                if level(from_key(m)) > k {
                    b = m;
                } else {
                    a = m;
                }
            }
            from_key(b)
        })
        .collect()
}

/// The byte `imaging::from_tensor` makes of a value.
fn byte_of(v: f32) -> u32 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u32
}

fn byte_thresholds() -> &'static [f32] {
    static T: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    T.get_or_init(|| thresholds(255, -4.0, 4.0, byte_of))
}

fn u32_values(t: CubeTensor) -> Vec<u32> {
    Tensor::<1, Int>::from_primitive::<Wgpu>(t)
        .into_data()
        .try_to_vec::<u32>()
        .expect("u32 output")
}

/// Host values of a tensor.
pub fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

mod colormap;
mod image_io;
mod mask;
mod native;
mod norm;
mod swap;

pub use colormap::{colorize, colorize_reference, plasma, plasma_table};
pub use image_io::{
    from_tensor_reference, image_to_tensor, tensor_to_image, tensor_to_image_reference,
    to_tensor_reference,
};
pub use mask::{
    feather_mask, feather_mask_image, feather_mask_reference, gaussian_taps, grow_mask,
    grow_mask_image, grow_mask_reference, mask_image,
};
pub use norm::{
    check_groups, group_norm_expect, group_norm_silu, group_norm_silu_expect,
    group_norm_silu_reference,
};
pub use swap::{mask_swap, mask_swap_reference};
