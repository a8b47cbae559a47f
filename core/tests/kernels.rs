//! Every WGSL kernel (shaders/) against its CPU reference, on lavapipe: random inputs of several
//! shapes including ones that are not multiples of the workgroup size, outputs poisoned (NaN /
//! 0xDEADBEEF) before the launch so an unwritten element fails. f32 outputs within 1e-5
//! relative; the u8 conversions exactly.

use burn::module::Param;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::{DType, Device, Tensor, TensorData};
use clearpaint_core::kernels;
use clearpaint_core::testing::{rel_err, test_devices, to_vec};
use image::{GrayImage, Luma, Rgba, RgbaImage};

const TOL: f32 = 1e-5;

fn gpu() -> burn::tensor::Device {
    let d = test_devices().remove(1);
    assert!(
        kernels::is_wgpu(&d.device),
        "the second test device is wgpu"
    );
    kernels::poison_outputs(true);
    d.device
}

fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// Deterministic pseudo-random values in [lo, hi).
fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D], dev: &burn::tensor::Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), dev)
}

fn norm(c: usize, g: usize, eps: f64, seed: u64, dev: &burn::tensor::Device) -> GroupNorm {
    let mut n = GroupNormConfig::new(g, c).with_epsilon(eps).init(dev);
    n.gamma = Some(Param::from_tensor(tensor(
        &values(c, seed, 0.5, 1.5),
        [c],
        dev,
    )));
    n.beta = Some(Param::from_tensor(tensor(
        &values(c, seed + 1, -0.5, 0.5),
        [c],
        dev,
    )));
    n
}

fn close(what: &str, ours: &[f32], reference: &[f32]) {
    assert!(
        ours.iter().all(|v| v.is_finite()),
        "{what}: unwritten (NaN) elements"
    );
    let e = rel_err(ours, reference);
    assert!(e <= TOL, "{what}: relative error {e:e} > {TOL:e}");
}

/// The compiler burn runs is the build's: WGSL by default, SPIR-V on Vulkan with the `spirv`
/// feature (`cargo test -p clearpaint-core --features spirv --test kernels`: lavapipe is a
/// Vulkan driver, so every test in this file then runs our WGSL kernels beside SPIR-V ones,
/// launched through wgpu directly, kernels::native). The launch counter shows the kernel ran,
/// and its output (read back through burn, after burn's own op wrote the input) matches the
/// reference, whichever compiler burn's ops came from.
#[test]
fn wgsl_kernels_run_under_the_builds_compiler() {
    let g = gpu();
    let runtime = clearpaint_core::gpu::runtime(&g).expect("a wgpu device");
    let want = if cfg!(feature = "spirv") {
        clearpaint_core::gpu::Compiler::SpirV
    } else {
        clearpaint_core::gpu::Compiler::Wgsl
    };
    assert_eq!(runtime.compiler, want, "lavapipe runs the build's compiler");
    let (n, c, h, w) = (2, 32, 6, 5);
    let x = values(n * c * h * w, 77, -2.0, 3.0);
    let before = kernels::launches();
    // A burn op (SPIR-V) writes the kernel's input, a burn op reads its output.
    let input = tensor(&x, [n, c, h, w], &g) * 2.0 - 1.0;
    let ours = kernels::group_norm_silu(input, &norm(c, 8, 1e-6, 5, &g), true).unwrap() + 0.5;
    assert_eq!(kernels::launches(), before + 1, "the WGSL kernel ran");
    let reference = kernels::group_norm_silu_reference(
        tensor(&x, [n, c, h, w], &cpu()) * 2.0 - 1.0,
        &norm(c, 8, 1e-6, 5, &cpu()),
        true,
    ) + 0.5;
    close(
        &format!("GroupNorm+SiLU under {}", runtime.compiler.name()),
        &to_vec(ours),
        &to_vec(reference),
    );
}

#[test]
fn group_norm_silu_matches_burn() {
    let g = gpu();
    for (i, &(n, c, h, w, groups, eps, with_silu)) in [
        (1, 32, 5, 7, 8, 1e-6, true),
        (2, 64, 9, 13, 32, 1e-5, true),
        (1, 12, 3, 3, 4, 1e-6, false),
        (1, 64, 33, 31, 32, 1e-6, true), // a group larger than a workgroup's sweep
    ]
    .iter()
    .enumerate()
    {
        let x = values(n * c * h * w, 10 + i as u64, -3.0, 5.0);
        let ours = kernels::group_norm_silu(
            tensor(&x, [n, c, h, w], &g),
            &norm(c, groups, eps, 20 + i as u64, &g),
            with_silu,
        )
        .unwrap();
        let reference = kernels::group_norm_silu_reference(
            tensor(&x, [n, c, h, w], &cpu()),
            &norm(c, groups, eps, 20 + i as u64, &cpu()),
            with_silu,
        );
        close(
            &format!("GroupNorm+SiLU {n}x{c}x{h}x{w} / {groups}"),
            &to_vec(ours),
            &to_vec(reference),
        );
    }
    // Channels that do not split into the groups are an error, not a wrong answer.
    assert!(kernels::check_groups(30, 32).is_err());
    let err = kernels::group_norm_silu(
        tensor(&values(24 * 4, 1, 0.0, 1.0), [1, 24, 2, 2], &g),
        &norm(32, 8, 1e-6, 3, &g),
        true,
    )
    .unwrap_err();
    assert!(err.contains("32 channels applied to 24"), "{err}");
}

/// The flex path (clearpaint_core::cpu::group_norm_silu: one fused sweep, f64 statistics)
/// against burn's GroupNorm then SiLU, incl. a group whose mean is 200x its spread.
#[test]
fn group_norm_silu_on_the_cpu_matches_burn() {
    let dev = cpu();
    for (i, &(n, c, h, w, groups, eps, with_silu, lo, hi)) in [
        (2, 64, 9, 13, 32, 1e-5, true, -3.0, 5.0),
        (1, 12, 3, 3, 4, 1e-6, false, -3.0, 5.0),
        (1, 32, 16, 16, 32, 1e-6, true, 99.5, 100.5),
    ]
    .iter()
    .enumerate()
    {
        let x = values(n * c * h * w, 40 + i as u64, lo, hi);
        let norm = norm(c, groups, eps, 50 + i as u64, &dev);
        let ours =
            kernels::group_norm_silu(tensor(&x, [n, c, h, w], &dev), &norm, with_silu).unwrap();
        let burns =
            kernels::group_norm_silu_reference(tensor(&x, [n, c, h, w], &dev), &norm, with_silu);
        // Straight from the definition, in f64.
        let (gamma, beta) = (
            to_vec(norm.gamma.as_ref().unwrap().val()),
            to_vec(norm.beta.as_ref().unwrap().val()),
        );
        let per = c / groups * h * w;
        let mut want = vec![0f32; x.len()];
        for (gi, (src, dst)) in x.chunks(per).zip(want.chunks_mut(per)).enumerate() {
            let mean = src.iter().map(|&v| v as f64).sum::<f64>() / per as f64;
            let var = src.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / per as f64;
            for (j, (s, d)) in src.iter().zip(dst.iter_mut()).enumerate() {
                let ch = (gi % groups) * (c / groups) + j / (h * w);
                let y =
                    (*s as f64 - mean) / (var + eps).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
                *d = if with_silu { y / (1.0 + (-y).exp()) } else { y } as f32;
            }
        }
        let ours = to_vec(ours);
        let e = rel_err(&ours, &want);
        assert!(e <= 1e-5, "{n}x{c}x{h}x{w}: relative error {e:e}");
        if i < 2 {
            let e = rel_err(&ours, &to_vec(burns));
            assert!(e <= 1e-5, "{n}x{c}x{h}x{w} vs burn: relative error {e:e}");
        }
    }
}

/// `v` rounded to f16 (what an f16 tensor of it holds), as f32.
fn f16_rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

fn half_tensor<const D: usize>(v: &[f32], shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), (dev, DType::F16))
}

/// The f16 variants (`{{ elem }}` = f16): f16 buffers in and out, statistics in f32. Against
/// the f32 reference on the same (f16-rounded) inputs, the only error left is the output's
/// rounding to f16 (< 1e-3 relative). The group of ~2000 values near 200 sums past f16's
/// 65504: a kernel that accumulated in f16 would return inf there.
#[test]
fn f16_kernels_keep_f32_statistics() {
    let g = gpu();
    for (i, &(n, c, h, w, groups, lo, hi)) in [
        (1, 32, 5, 7, 8, -3.0, 5.0),
        (1, 64, 33, 31, 32, 200.0, 208.0),
    ]
    .iter()
    .enumerate()
    {
        let x = f16_rounded(&values(n * c * h * w, 40 + i as u64, lo, hi));
        let (gamma, beta) = (
            f16_rounded(&values(c, 50 + i as u64, 0.5, 1.5)),
            f16_rounded(&values(c, 51 + i as u64, -0.5, 0.5)),
        );
        let norm_on = |dev: &Device, dtype: DType| {
            let mut nm = GroupNormConfig::new(groups, c).with_epsilon(1e-6).init(dev);
            let t =
                |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [c]), (dev, dtype));
            nm.gamma = Some(Param::from_tensor(t(&gamma)));
            nm.beta = Some(Param::from_tensor(t(&beta)));
            nm
        };
        let ours = kernels::group_norm_silu(
            half_tensor(&x, [n, c, h, w], &g),
            &norm_on(&g, DType::F16),
            true,
        )
        .unwrap();
        assert_eq!(ours.dtype(), DType::F16);
        let reference = kernels::group_norm_silu_reference(
            tensor(&x, [n, c, h, w], &cpu()),
            &norm_on(&cpu(), DType::F32),
            true,
        );
        let (ours, reference) = (to_vec(ours), to_vec(reference));
        assert!(
            ours.iter().all(|v| v.is_finite()),
            "f16 GroupNorm {i}: inf/NaN"
        );
        let e = rel_err(&ours, &reference);
        assert!(e <= 1e-3, "f16 GroupNorm+SiLU {i}: relative error {e:e}");
    }
    // The swap selects (m is 0 or 1): exact in f16.
    let (n, c, h, w, hm, wm) = (1, 5, 33, 17, 66, 34);
    let x = f16_rounded(&values(n * c * h * w, 60, -2.0, 2.0));
    let cond = f16_rounded(&values(n * c * h * w, 61, -2.0, 2.0));
    let mask: Vec<f32> = values(n * hm * wm, 62, 0.0, 1.0)
        .iter()
        .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
        .collect();
    let ours = kernels::mask_swap(
        half_tensor(&x, [n, c, h, w], &g),
        half_tensor(&cond, [n, c, h, w], &g),
        half_tensor(&mask, [n, 1, hm, wm], &g),
    );
    assert_eq!(ours.dtype(), DType::F16);
    let reference = kernels::mask_swap_reference(
        tensor(&x, [n, c, h, w], &cpu()),
        tensor(&cond, [n, c, h, w], &cpu()),
        tensor(&mask, [n, 1, hm, wm], &cpu()),
    );
    assert_eq!(to_vec(ours), to_vec(reference), "f16 mask swap");
}

#[test]
fn mask_swap_matches_the_tensor_reference() {
    let g = gpu();
    for (i, &(n, c, h, w, hm, wm)) in [
        (1, 8, 16, 16, 128, 128),
        (2, 3, 7, 9, 56, 72),
        (1, 5, 33, 17, 33, 17),
        (1, 4, 10, 6, 15, 9), // a non-integer factor
    ]
    .iter()
    .enumerate()
    {
        let s = 100 + 3 * i as u64;
        let x = values(n * c * h * w, s, -2.0, 2.0);
        let cond = values(n * c * h * w, s + 1, -2.0, 2.0);
        let mask: Vec<f32> = values(n * hm * wm, s + 2, 0.0, 1.0)
            .iter()
            .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
            .collect();
        let run = |dev: &burn::tensor::Device, gpu: bool| {
            let (a, b, m) = (
                tensor(&x, [n, c, h, w], dev),
                tensor(&cond, [n, c, h, w], dev),
                tensor(&mask, [n, 1, hm, wm], dev),
            );
            to_vec(if gpu {
                kernels::mask_swap(a, b, m)
            } else {
                kernels::mask_swap_reference(a, b, m)
            })
        };
        close(
            &format!("mask swap {n}x{c}x{h}x{w} <- {hm}x{wm}"),
            &run(&g, true),
            &run(&cpu(), false),
        );
    }
}

fn picture(w: u32, h: u32, seed: u64) -> RgbaImage {
    let v = values((w * h * 4) as usize, seed, 0.0, 256.0);
    RgbaImage::from_fn(w, h, |x, y| {
        let i = ((y * w + x) * 4) as usize;
        Rgba([v[i] as u8, v[i + 1] as u8, v[i + 2] as u8, v[i + 3] as u8])
    })
}

fn gray(w: u32, h: u32, seed: u64) -> GrayImage {
    let v = values((w * h) as usize, seed, 0.0, 256.0);
    GrayImage::from_fn(w, h, |x, y| Luma([v[(y * w + x) as usize] as u8]))
}

#[test]
fn image_in_and_out_match_exactly() {
    let g = gpu();
    for (i, &(w, h)) in [(16, 16), (97, 61), (1, 1), (300, 257)].iter().enumerate() {
        let img = picture(w, h, 200 + i as u64);
        // In: RGBA8 -> [-1, 1].
        close(
            &format!("RGBA8 -> tensor {w}x{h}"),
            &to_vec(kernels::image_to_tensor(&img, &g)),
            &to_vec(kernels::image_to_tensor(&img, &cpu())),
        );
        // Out: values beyond [-1, 1] (clamped) and exactly on the rounding half-way points.
        let mut t = values((3 * w * h) as usize, 300 + i as u64, -1.2, 1.2);
        for (k, v) in t.iter_mut().enumerate().step_by(7) {
            *v = ((k % 256) as f32 + 0.5) / 127.5 - 1.0;
        }
        let run = |dev: &burn::tensor::Device, paste: Option<(&RgbaImage, &GrayImage)>| {
            kernels::tensor_to_image(tensor(&t, [1, 3, h as usize, w as usize], dev), paste)
        };
        let (a, b) = (run(&g, None), run(&cpu(), None));
        let diff: Vec<_> = a
            .pixels()
            .zip(b.pixels())
            .enumerate()
            .filter(|(_, (p, q))| p != q)
            .map(|(k, (p, q))| (k, p.0, q.0, [t[k], t[k + (w * h) as usize]]))
            .take(3)
            .collect();
        assert!(diff.is_empty(), "tensor -> RGBA8 {w}x{h}: {diff:?}");
        let mask = gray(w, h, 400 + i as u64);
        let orig = picture(w, h, 500 + i as u64);
        let ours = run(&g, Some((&orig, &mask)));
        assert!(
            ours == run(&cpu(), Some((&orig, &mask))),
            "paste-back {w}x{h}"
        );
        // Where the mask is 0 the original is kept bit for bit, alpha included.
        for (x, y, m) in mask.enumerate_pixels() {
            if m[0] == 0 {
                assert_eq!(ours.get_pixel(x, y), orig.get_pixel(x, y));
            }
        }
    }
}

#[test]
fn mask_grow_shrink_and_feather_match() {
    let g = gpu();
    for (i, &(w, h)) in [(64, 48), (97, 61), (5, 300)].iter().enumerate() {
        // Blobs, so that grow / shrink change something.
        let m: Vec<f32> = values(w * h, 600 + i as u64, 0.0, 1.0)
            .iter()
            .map(|v| if *v > 0.8 { 1.0 } else { 0.0 })
            .collect();
        for r in [1, 3, -2] {
            close(
                &format!("grow {r} {w}x{h}"),
                &to_vec(kernels::grow_mask(tensor(&m, [h, w], &g), r)),
                &to_vec(kernels::grow_mask_reference(tensor(&m, [h, w], &cpu()), r)),
            );
        }
        for sigma in [0.7, 2.0, 4.5] {
            close(
                &format!("feather {sigma} {w}x{h}"),
                &to_vec(kernels::feather_mask(tensor(&m, [h, w], &g), sigma)),
                &to_vec(kernels::feather_mask_reference(
                    tensor(&m, [h, w], &cpu()),
                    sigma,
                )),
            );
        }
    }
    // The references do what they say: growing a single pixel by 2 gives a 5x5 square, and
    // shrinking it back by 1 a 3x3 one; a feather keeps the mask's mass.
    let mut one = vec![0f32; 20 * 20];
    one[10 * 20 + 10] = 1.0;
    let grown = kernels::grow_mask_reference(tensor(&one, [20, 20], &cpu()), 2);
    assert_eq!(to_vec(grown.clone()).iter().sum::<f32>(), 25.0);
    let shrunk = kernels::grow_mask_reference(grown, -1);
    assert_eq!(to_vec(shrunk).iter().sum::<f32>(), 9.0);
    let blurred = kernels::feather_mask_reference(tensor(&one, [20, 20], &cpu()), 1.0);
    assert!((to_vec(blurred).iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn plasma_colormap_matches_exactly() {
    let g = gpu();
    for (i, &(w, h)) in [(16, 16), (97, 61), (513, 3)].iter().enumerate() {
        let mut v = values(w * h, 700 + i as u64, -0.5, 3.5);
        v[0] = f32::NAN;
        let (lo, hi) = (0.0, 3.0);
        let ours = kernels::colorize(tensor(&v, [h, w], &g), lo, hi);
        let reference = kernels::colorize_reference(tensor(&v, [h, w], &cpu()), lo, hi);
        assert!(ours == reference, "plasma {w}x{h}");
        // The ends of the map are plasma's ends.
        assert_eq!(
            ours.get_pixel(0, 0).0[..3],
            clearpaint_core::imaging::plasma(0.0)
        );
    }
    // The table follows the colormap (within the table's step).
    let t = kernels::plasma_table();
    let [r, gg, b, _] = t[512].to_le_bytes();
    let p = clearpaint_core::imaging::plasma(512.0 / 1023.0);
    assert_eq!([r, gg, b], p);
}
