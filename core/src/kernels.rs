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
use burn::nn::GroupNorm;
use burn::tensor::activation::silu;
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};
use cubecl::prelude::KernelId;
use cubecl::server::{Handle, KernelArguments};
use cubecl::{CubeCount, CubeDim};
use image::{GrayImage, RgbaImage};

/// Threads per workgroup of every kernel here.
pub const WORKGROUP: u32 = 256;

/// A WGSL source with its workgroup size filled in.
#[derive(Debug)]
struct Wgsl {
    name: &'static str,
    source: &'static str,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(self.source).register("workgroup_size", WORKGROUP.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.name)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

macro_rules! shader {
    ($name:literal) => {
        Wgsl {
            name: $name,
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
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
    let n: usize = shape.iter().product();
    let handle = output_handle(like, n, f32::NAN.to_bits());
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape),
        handle,
        DType::F32,
    )
}

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

// ---------------------------------------------------------------------------------------------
// GroupNorm + SiLU

/// Why a fused GroupNorm cannot run on a tensor.
pub fn check_groups(channels: usize, groups: usize) -> Result<(), String> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(format!(
            "GroupNorm: {channels} channels do not split into {groups} groups"
        ));
    }
    Ok(())
}

/// `silu(group_norm(x))` (or just the norm when `with_silu` is false) for NCHW `x`, fused into
/// one kernel on wgpu; burn's GroupNorm and SiLU elsewhere. An error, not a wrong answer,
/// when the channels do not divide into the norm's groups.
pub fn group_norm_silu(
    x: Tensor<4>,
    norm: &GroupNorm,
    with_silu: bool,
) -> Result<Tensor<4>, String> {
    let [n, c, h, w] = x.dims();
    check_groups(c, norm.num_groups)?;
    if norm.num_channels != c {
        return Err(format!(
            "GroupNorm over {} channels applied to {c}",
            norm.num_channels
        ));
    }
    if !on_wgpu(&x) {
        if let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) {
            let fused = crate::cpu::group_norm_silu(
                &x,
                &gamma.val(),
                &beta.val(),
                norm.num_groups,
                norm.epsilon,
                with_silu,
            );
            if let Some(out) = fused {
                return Ok(out);
            }
        }
        return Ok(group_norm_silu_reference(x, norm, with_silu));
    }
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        return Ok(group_norm_silu_reference(x, norm, with_silu));
    };
    let x = into_contiguous(cube_of(x).expect("on wgpu"));
    let gamma = into_contiguous(cube_of(gamma.val()).expect("on wgpu"));
    let beta = into_contiguous(cube_of(beta.val()).expect("on wgpu"));
    let out = empty_f32(&x, vec![n, c, h, w]);
    let p = params(
        &x,
        &[
            n as u32,
            c as u32,
            (h * w) as u32,
            norm.num_groups as u32,
            (norm.epsilon as f32).to_bits(),
            with_silu as u32,
        ],
    );
    launch(
        &x,
        shader!("groupnorm_silu"),
        CubeCount::Static((n * norm.num_groups) as u32, 1, 1),
        vec![
            x.handle.clone(),
            gamma.handle.clone(),
            beta.handle.clone(),
            out.handle.clone(),
            p,
        ],
    );
    Ok(from_cube(out))
}

/// [`group_norm_silu`] with SiLU, for models whose config was validated (group counts divide
/// the channels, so the error cannot happen).
pub fn group_norm_silu_expect(x: Tensor<4>, norm: &GroupNorm) -> Tensor<4> {
    group_norm_silu(x, norm, true).expect("channels divide into groups (config validated)")
}

/// burn's GroupNorm, then SiLU.
pub fn group_norm_silu_reference(x: Tensor<4>, norm: &GroupNorm, with_silu: bool) -> Tensor<4> {
    let y = norm.forward(x);
    if with_silu { silu(y) } else { y }
}

// ---------------------------------------------------------------------------------------------
// The asymmetric decoder's mask-guided swap

/// `x * m + cond * (1 - m)` with `m` = `mask` (`[N, 1, Hm, Wm]`) nearest-resized to `x`'s size.
pub fn mask_swap(x: Tensor<4>, cond: Tensor<4>, mask: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [_, _, hm, wm] = mask.dims();
    if !on_wgpu(&x) {
        return mask_swap_reference(x, cond, mask);
    }
    let x = into_contiguous(cube_of(x).expect("on wgpu"));
    let cond = into_contiguous(cube_of(cond).expect("on wgpu"));
    let mask = into_contiguous(cube_of(mask).expect("on wgpu"));
    let out = empty_f32(&x, vec![n, c, h, w]);
    let p = params(
        &x,
        &[n as u32, c as u32, h as u32, w as u32, hm as u32, wm as u32],
    );
    launch(
        &x,
        shader!("mask_swap"),
        grid(n * c * h * w),
        vec![
            x.handle.clone(),
            cond.handle.clone(),
            mask.handle.clone(),
            out.handle.clone(),
            p,
        ],
    );
    from_cube(out)
}

/// Nearest resize of the mask by index (`y * Hm / H`), then the blend, in tensor ops.
pub fn mask_swap_reference(x: Tensor<4>, cond: Tensor<4>, mask: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [_, _, hm, wm] = mask.dims();
    let device = x.device();
    let rows: Vec<i64> = (0..h).map(|y| ((y * hm / h).min(hm - 1)) as i64).collect();
    let cols: Vec<i64> = (0..w).map(|x| ((x * wm / w).min(wm - 1)) as i64).collect();
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [h]), &device);
    let cols = Tensor::<1, Int>::from_data(TensorData::new(cols, [w]), &device);
    let m = mask.select(2, rows).select(3, cols);
    x * m.clone() + cond * (m.neg() + 1.0)
}

// ---------------------------------------------------------------------------------------------
// Image in / out

fn packed(img: &RgbaImage) -> Vec<u32> {
    img.pixels().map(|p| u32::from_le_bytes(p.0)).collect()
}

/// An image as a `[1, 3, H, W]` tensor in [-1, 1] on `device` (`v / 127.5 - 1`).
pub fn image_to_tensor(img: &RgbaImage, device: &Device) -> Tensor<4> {
    if !is_wgpu(device) {
        return crate::imaging::to_tensor_reference(img, device);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let like = into_contiguous(cube_of(Tensor::<1>::zeros([1], device)).expect("on wgpu"));
    let pixels = like
        .client
        .create_from_slice(bytemuck::cast_slice(&packed(img)));
    let out = empty_f32(&like, vec![1, 3, h, w]);
    let p = params(&like, &[(w * h) as u32]);
    launch(
        &like,
        shader!("rgba_to_nchw"),
        grid(w * h),
        vec![pixels, out.handle.clone(), p],
    );
    from_cube(out)
}

/// A `[1, 3, H, W]` tensor in [-1, 1] as an opaque RGBA8 image; with `paste` = (original,
/// 8-bit mask), blended with the original through the mask in integer arithmetic (the
/// paste-back; the original's alpha is kept).
pub fn tensor_to_image(t: Tensor<4>, paste: Option<(&RgbaImage, &GrayImage)>) -> RgbaImage {
    let [_, c, h, w] = t.dims();
    assert_eq!(c, 3, "tensor_to_image expects 3 channels");
    if !on_wgpu(&t) {
        return tensor_to_image_reference(t, paste);
    }
    let t = into_contiguous(cube_of(t.slice([0..1, 0..3, 0..h, 0..w])).expect("on wgpu"));
    let n = w * h;
    let (orig, mask, blend) = match paste {
        Some((o, m)) => {
            assert_eq!((o.width() as usize, o.height() as usize), (w, h));
            assert_eq!((m.width() as usize, m.height() as usize), (w, h));
            let mv: Vec<u32> = m.pixels().map(|p| p[0] as u32).collect();
            (
                t.client.create_from_slice(bytemuck::cast_slice(&packed(o))),
                t.client.create_from_slice(bytemuck::cast_slice(&mv)),
                1u32,
            )
        }
        None => (
            t.client.create_from_slice(bytemuck::cast_slice(&[0u32])),
            t.client.create_from_slice(bytemuck::cast_slice(&[0u32])),
            0u32,
        ),
    };
    let out = empty_u32(&t, n);
    let p = params(&t, &[n as u32, blend]);
    let th = t
        .client
        .create_from_slice(bytemuck::cast_slice(byte_thresholds()));
    launch(
        &t,
        shader!("nchw_to_rgba"),
        grid(n),
        vec![t.handle.clone(), orig, mask, out.handle.clone(), p, th],
    );
    let bytes: Vec<u8> = u32_values(out)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    RgbaImage::from_raw(w as u32, h as u32, bytes).expect("sized")
}

/// `imaging::from_tensor`, then the integer blend with the original.
pub fn tensor_to_image_reference(
    t: Tensor<4>,
    paste: Option<(&RgbaImage, &GrayImage)>,
) -> RgbaImage {
    let mut img = crate::imaging::from_tensor_reference(t);
    if let Some((orig, mask)) = paste {
        for ((p, o), m) in img.pixels_mut().zip(orig.pixels()).zip(mask.pixels()) {
            let m = m[0] as u32;
            for c in 0..3 {
                p[c] = ((p[c] as u32 * m + o[c] as u32 * (255 - m) + 127) / 255) as u8;
            }
            p[3] = o[3];
        }
    }
    img
}

// ---------------------------------------------------------------------------------------------
// Mask operations

fn mask_tensor(mask: &GrayImage, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = mask.pixels().map(|p| p[0] as f32 / 255.0).collect();
    Tensor::from_data(
        TensorData::new(v, [mask.height() as usize, mask.width() as usize]),
        device,
    )
}

/// A `[H, W]` mask in [0, 1] as an 8-bit image (`round(v * 255)`).
pub fn mask_image(t: Tensor<2>) -> GrayImage {
    let [h, w] = t.dims();
    let v = crate::imaging::tensor_values(t);
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([(v[y as usize * w + x as usize] * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8])
    })
}

/// Grows (`r > 0`) or shrinks (`r < 0`) a `[H, W]` mask by `|r|` pixels (square element).
pub fn grow_mask(mask: Tensor<2>, r: i32) -> Tensor<2> {
    if r == 0 {
        return mask;
    }
    if !on_wgpu(&mask) {
        return grow_mask_reference(mask, r);
    }
    let [h, w] = mask.dims();
    let m = into_contiguous(cube_of(mask).expect("on wgpu"));
    let mut cur = m;
    for axis in 0..2u32 {
        let out = empty_f32(&cur, vec![h, w]);
        let p = params(
            &cur,
            &[h as u32, w as u32, r.unsigned_abs(), (r > 0) as u32, axis],
        );
        launch(
            &cur,
            shader!("mask_morph"),
            grid(h * w),
            vec![cur.handle.clone(), out.handle.clone(), p],
        );
        cur = out;
    }
    from_cube(cur)
}

/// Max (grow) / min (shrink) over shifted copies, padded with 0 (grow) or 1 (shrink).
pub fn grow_mask_reference(mask: Tensor<2>, r: i32) -> Tensor<2> {
    let grow = r > 0;
    let r = r.unsigned_abs() as usize;
    let [h, w] = mask.dims();
    let fill = if grow { 0.0 } else { 1.0 };
    let pass = |m: Tensor<2>, axis: usize| {
        let padded = if axis == 1 {
            m.pad([(0, 0), (r, r)], burn::tensor::ops::PadMode::Constant(fill))
        } else {
            m.pad([(r, r), (0, 0)], burn::tensor::ops::PadMode::Constant(fill))
        };
        let mut acc: Option<Tensor<2>> = None;
        for k in 0..=2 * r {
            let s = if axis == 1 {
                padded.clone().slice([0..h, k..k + w])
            } else {
                padded.clone().slice([k..k + h, 0..w])
            };
            acc = Some(match acc {
                None => s,
                Some(a) => {
                    if grow {
                        a.max_pair(s)
                    } else {
                        a.min_pair(s)
                    }
                }
            });
        }
        acc.expect("at least one tap")
    };
    let m = pass(mask, 1);
    pass(m, 0)
}

/// Normalised Gaussian taps for standard deviation `sigma` (radius ceil(3 sigma)).
pub fn gaussian_taps(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(0.0) as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter().map(|v| v / s).collect()
}

/// Separable Gaussian feather of a `[H, W]` mask (edges clamp).
pub fn feather_mask(mask: Tensor<2>, sigma: f32) -> Tensor<2> {
    if sigma <= 0.0 {
        return mask;
    }
    if !on_wgpu(&mask) {
        return feather_mask_reference(mask, sigma);
    }
    let taps = gaussian_taps(sigma);
    let r = (taps.len() / 2) as u32;
    let [h, w] = mask.dims();
    let mut cur = into_contiguous(cube_of(mask).expect("on wgpu"));
    let weights = cur.client.create_from_slice(bytemuck::cast_slice(&taps));
    for axis in 0..2u32 {
        let out = empty_f32(&cur, vec![h, w]);
        let p = params(&cur, &[h as u32, w as u32, r, axis]);
        launch(
            &cur,
            shader!("mask_blur"),
            grid(h * w),
            vec![cur.handle.clone(), weights.clone(), out.handle.clone(), p],
        );
        cur = out;
    }
    from_cube(cur)
}

/// The same taps as a sum of edge-clamped shifted copies.
pub fn feather_mask_reference(mask: Tensor<2>, sigma: f32) -> Tensor<2> {
    let taps = gaussian_taps(sigma);
    let r = taps.len() / 2;
    let [h, w] = mask.dims();
    let pass = |m: Tensor<2>, axis: usize| {
        // Edge clamp: repeat the first / last row or column r times.
        let n = if axis == 1 { w } else { h };
        let idx: Vec<i64> = (0..n + 2 * r)
            .map(|i| (i as i64 - r as i64).clamp(0, n as i64 - 1))
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n + 2 * r]), &m.device());
        let padded = m.select(axis, idx);
        let mut acc: Option<Tensor<2>> = None;
        for (k, t) in taps.iter().enumerate() {
            let s = if axis == 1 {
                padded.clone().slice([0..h, k..k + w])
            } else {
                padded.clone().slice([k..k + h, 0..w])
            } * *t;
            acc = Some(match acc {
                None => s,
                Some(a) => a + s,
            });
        }
        acc.expect("at least one tap")
    };
    let m = pass(mask, 1);
    pass(m, 0)
}

/// The mask operations on an 8-bit mask image, on `device` (a kernel on wgpu).
pub fn grow_mask_image(mask: &GrayImage, r: i32, device: &Device) -> GrayImage {
    mask_image(grow_mask(mask_tensor(mask, device), r))
}

pub fn feather_mask_image(mask: &GrayImage, sigma: f32, device: &Device) -> GrayImage {
    mask_image(feather_mask(mask_tensor(mask, device), sigma))
}

// ---------------------------------------------------------------------------------------------
// Plasma colormap

/// The colormap as 1024 packed RGB entries (R in the low byte), from `imaging::plasma`.
pub fn plasma_table() -> Vec<u32> {
    (0..1024)
        .map(|i| {
            let [r, g, b] = crate::imaging::plasma(i as f32 / 1023.0);
            u32::from_le_bytes([r, g, b, 0])
        })
        .collect()
}

/// A `[H, W]` map through the plasma table over `[lo, hi]` (NaN -> the low end) as RGBA8.
pub fn colorize(map: Tensor<2>, lo: f32, hi: f32) -> RgbaImage {
    let [h, w] = map.dims();
    let scale = 1.0 / (hi - lo).max(1e-12);
    if !on_wgpu(&map) {
        return colorize_reference(map, lo, hi);
    }
    let m = into_contiguous(cube_of(map).expect("on wgpu"));
    let n = h * w;
    let table = m
        .client
        .create_from_slice(bytemuck::cast_slice(&plasma_table()));
    let out = empty_u32(&m, n);
    let p = params(&m, &[n as u32]);
    let span = (hi - lo).abs().max(1.0);
    let th = thresholds(1023, lo - span, hi + span, |v| {
        plasma_entry(v, lo, scale) as u32
    });
    let th = m.client.create_from_slice(bytemuck::cast_slice(&th));
    launch(
        &m,
        shader!("plasma"),
        grid(n),
        vec![m.handle.clone(), table, out.handle.clone(), p, th],
    );
    let bytes: Vec<u8> = u32_values(out)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    RgbaImage::from_raw(w as u32, h as u32, bytes).expect("sized")
}

/// The table lookup in plain Rust, with the kernel's arithmetic (f32, scale multiplied).
pub fn colorize_reference(map: Tensor<2>, lo: f32, hi: f32) -> RgbaImage {
    let [h, w] = map.dims();
    let scale = 1.0 / (hi - lo).max(1e-12);
    let table = plasma_table();
    let v = crate::imaging::tensor_values(map);
    RgbaImage::from_fn(w as u32, h as u32, |x, y| {
        let e = plasma_entry(v[y as usize * w + x as usize], lo, scale);
        let [r, g, b, _] = table[e].to_le_bytes();
        image::Rgba([r, g, b, 255])
    })
}

/// The table entry of a value: `floor(clamp((v - lo) * scale, 0, 1) * 1023 + 0.5)`, NaN -> 0.
fn plasma_entry(v: f32, lo: f32, scale: f32) -> usize {
    let t = if v.is_nan() {
        0.0
    } else {
        ((v - lo) * scale).clamp(0.0, 1.0)
    };
    (t * 1023.0 + 0.5).floor() as usize
}
