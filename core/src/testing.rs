//! Helpers shared by the parity tests: the reference fixtures written by
//! `tools/reference/*.py`, the devices every model is checked on, and the relative error.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};

use crate::device::{self, DeviceChoice};
use crate::weights::SafetensorsFile;

/// f32 on the CPU (flex) must match the reference within this relative error.
pub const CPU_TOLERANCE: f32 = 1e-4;
/// wgpu must match the reference within this relative error.
pub const GPU_TOLERANCE: f32 = 1e-3;

/// The folder the reference scripts write to: `tools/reference/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

/// A fixture file by name, with a message saying how to regenerate it if absent.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    assert!(
        p.exists(),
        "fixture {} is missing; regenerate with tools/reference/README.md",
        p.display()
    );
    p
}

/// A device to check a model on, with its tolerance.
pub struct TestDevice {
    pub name: &'static str,
    pub device: Device,
    pub tolerance: f32,
    /// Largest single tensor the device holds (bytes).
    pub max_tensor_bytes: u64,
}

/// The CPU (flex) device and a wgpu device. A machine where wgpu finds no adapter fails here:
/// the GPU code path must not be skipped silently (install Mesa's lavapipe,
/// `mesa-vulkan-drivers`, to test it on a CPU).
pub fn test_devices() -> Vec<TestDevice> {
    let gpu = match device::select(DeviceChoice::Gpu) {
        Ok(s) => s,
        Err(e) => panic!("wgpu tests need an adapter: {e}"),
    };
    vec![
        TestDevice {
            name: "flex",
            device: Device::flex(),
            tolerance: CPU_TOLERANCE,
            max_tensor_bytes: device::CPU_MAX_TENSOR_BYTES,
        },
        TestDevice {
            name: "wgpu",
            device: gpu.device,
            tolerance: GPU_TOLERANCE,
            max_tensor_bytes: gpu.max_tensor_bytes,
        },
    ]
}

/// ‖ours − reference‖ / ‖reference‖ (plain L2 over all elements).
pub fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(
        ours.len(),
        reference.len(),
        "compared tensors differ in size"
    );
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in ours.iter().zip(reference) {
        let d = (*a as f64) - (*b as f64);
        num += d * d;
        den += (*b as f64) * (*b as f64);
    }
    if den == 0.0 {
        return num.sqrt() as f32;
    }
    (num / den).sqrt() as f32
}

/// Reads tensor `key` of a fixture file onto `device`.
pub fn load_tensor<const D: usize>(
    file: &SafetensorsFile,
    key: &str,
    device: &Device,
) -> Tensor<D> {
    let entry = file
        .entry(key)
        .unwrap_or_else(|| panic!("{}: no tensor '{key}'", file.path().display()));
    let values = file.read_f32(key).unwrap_or_else(|e| panic!("{e}"));
    Tensor::from_data(TensorData::new(values, entry.shape.clone()), device)
}

/// The values of a tensor, on the host.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

/// Asserts `ours` matches `reference` within `tol` relative error, printing the error.
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32], tol: f32) {
    let err = rel_err(ours, reference);
    eprintln!("{what}: rel err {err:.3e} (tolerance {tol:.0e})");
    assert!(
        err <= tol,
        "{what}: relative error {err:.3e} exceeds {tol:.0e}"
    );
}

/// Half-precision parity: `ours` (a model run in f16 or bf16, `label`) against the f32
/// reference `io[key]`, held to at most twice the reference implementation's own error in the
/// same precision (`refs[ref_key]`, written by `make_half_fixtures.py` or
/// `make_bf16_fixtures.py`) against the same f32 output. Also refuses an f32-sized error, so a
/// model that silently ran in f32 fails.
pub fn assert_within_twice_reference<const D: usize>(
    label: &str,
    refs: &str,
    what: &str,
    ours: Tensor<D>,
    io: &SafetensorsFile,
    (key, ref_key): (&str, &str),
) {
    let reference = io.read_f32(key).unwrap();
    let theirs = SafetensorsFile::open(fixture(refs))
        .unwrap()
        .read_f32(ref_key)
        .unwrap();
    let bound = rel_err(&theirs, &reference);
    let ours = to_vec(ours);
    assert!(ours.iter().all(|v| v.is_finite()), "{what}: non-finite");
    let err = rel_err(&ours, &reference);
    eprintln!(
        "{what}: {label} rel err {err:.3e}, reference {label} {bound:.3e} ({:.2}x)",
        err / bound
    );
    assert!(
        err > 1e-5,
        "{what}: error {err:.1e} is f32's, not {label}'s"
    );
    assert!(
        err <= 2.0 * bound,
        "{what}: {label} error {err:.3e} exceeds twice the reference's own {label} error \
         {bound:.3e}"
    );
}

/// FNV-1a, 32 bit (mirrors `fnv1a` in tools/reference/make_vae_fixtures.py).
pub fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `n` values in [-1, 1) from an integer hash of (key, index), bit-identical to the Python
/// `uniform` of the fixture scripts.
pub fn formula_uniform(key: &str, n: usize) -> Vec<f32> {
    let seed = fnv1a(key);
    (0..n as u64)
        .map(|i| {
            let mut x = (i.wrapping_mul(0x9E37_79B1).wrapping_add(seed as u64)) as u32;
            x ^= x >> 16;
            x = x.wrapping_mul(0x7FEB_352D);
            x ^= x >> 15;
            x = x.wrapping_mul(0x846C_A68B);
            x ^= x >> 16;
            ((x >> 8) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Formula weights for a PyTorch state-dict entry (mirrors `formula_value`): norms' weights
/// near 1, biases small, other tensors uniform with std 1/sqrt(fan_in).
pub fn formula_value(key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let u = formula_uniform(key, n);
    let is_norm = key.contains("norm") && shape.len() == 1;
    if is_norm && key.ends_with("weight") {
        return u.iter().map(|v| 1.0 + 0.2 * v).collect();
    }
    if shape.len() == 1 {
        return u.iter().map(|v| 0.05 * v).collect();
    }
    let fan_in: usize = shape[1..].iter().product();
    let s = (3.0f64 / fan_in as f64).sqrt() as f32;
    u.iter().map(|v| v * s).collect()
}

/// Writes formula weights for every parameter of `module` (named and shaped as PyTorch
/// state-dict entries) to a safetensors file at `path`, so they load through the real loader.
pub fn write_formula_weights<M: burn::module::Module>(module: M, path: &std::path::Path) {
    write_formula_weights_as(module, path, safetensors::Dtype::F32, |k| k.to_string())
}

/// [`write_formula_weights`] in `dtype` (F32 or F16), with `rename` mapping a module path to
/// its key in the file (for modules whose paths differ from the PyTorch names).
pub fn write_formula_weights_as<M: burn::module::Module>(
    module: M,
    path: &std::path::Path,
    dtype: safetensors::Dtype,
    rename: impl Fn(&str) -> String,
) {
    use crate::weights::{LoadOptions, load_module};
    let opts = LoadOptions {
        allow_partial: true,
        ..Default::default()
    };
    let (_, report) = load_module(module, &[], &opts).expect("listing parameters");
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = report
        .missing
        .iter()
        .map(|(k, shape)| {
            let key = rename(k);
            let values = formula_value(&key, shape);
            let bytes = match dtype {
                safetensors::Dtype::F16 => values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (key, shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(dtype, s.clone(), b).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write formula weights");
}

/// Writes the tensors `keys` of `file`, byte for byte, to a new safetensors file at `path` (to
/// make partial or altered copies of a fixture).
pub fn copy_tensors(file: &SafetensorsFile, keys: &[String], path: &std::path::Path) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = keys
        .iter()
        .map(|k| {
            let e = file.entry(k).unwrap_or_else(|| panic!("no tensor {k}"));
            let raw = file.raw(k).expect("raw bytes");
            (
                k.clone(),
                safetensors::tensor::TensorView::new(e.dtype, e.shape.clone(), raw).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write copy");
}

/// The image (40x32), mask and initial latents of `pipeline_io.safetensors`
/// (make_pipeline_fixtures.py), as the pipeline tests feed them to a run.
pub fn pipeline_inputs(io: &SafetensorsFile) -> (image::RgbaImage, image::GrayImage, Vec<f32>) {
    let img = io.read_ints("image").expect("image");
    let mask = io.read_ints("mask").expect("mask");
    let rgba = image::RgbaImage::from_fn(40, 32, |x, y| {
        let i = ((y * 40 + x) * 3) as usize;
        image::Rgba([img[i] as u8, img[i + 1] as u8, img[i + 2] as u8, 255])
    });
    let m = image::GrayImage::from_fn(40, 32, |x, y| {
        image::Luma([mask[(y * 40 + x) as usize] as u8])
    });
    (rgba, m, io.read_f32("latents").expect("latents"))
}

/// The token ids `[B][77]` of `clip_tiny_io.safetensors` (make_unet_clip_fixtures.py).
pub fn clip_tiny_ids(io: &SafetensorsFile) -> Vec<Vec<u32>> {
    io.read_ints("input_ids")
        .expect("input_ids")
        .chunks(77)
        .map(|c| c.iter().map(|&v| v as u32).collect())
        .collect()
}

/// The request `pipeline_io.safetensors` was made with (make_pipeline_fixtures.py): its
/// prompts, 4 steps, strength 1, the given latents, the whole image, no blur or paste-back.
pub fn pipeline_request(
    kind: crate::schedulers::SchedulerKind,
    guidance: f64,
    decoder: crate::pipelines::inpaint::DecoderChoice,
    latents: Vec<f32>,
) -> crate::pipelines::inpaint::InpaintRequest {
    crate::pipelines::inpaint::InpaintRequest {
        prompt: "a red fox in the snow".into(),
        negative_prompt: "blurry".into(),
        steps: 4,
        guidance,
        strength: 1.0,
        scheduler: kind,
        seed: 0,
        latents: Some(latents),
        region: crate::pipelines::inpaint::Region::Full,
        crop_padding: 0,
        mask_blur: 0,
        paste_back: false,
        decoder,
        eta: 0.0,
        resize_mask: true,
        ..Default::default()
    }
}

/// Runs `check` with bf16 layers' products on the f32 kernels, then, where the CPU has
/// AVX512_BF16, on the bf16 dot products (`cpu::gemm_bf16`), asserting they ran; each run is
/// announced on stderr, so the errors printed by `check` say which they belong to.
pub fn for_each_bf16_kernel(mut check: impl FnMut()) {
    eprintln!("-- bf16 products on the f32 kernels");
    crate::cpu::with_bf16_kernels(false, &mut check);
    if !crate::cpu::bf16_kernels_available() {
        eprintln!("-- no AVX512_BF16 on this CPU: the bf16 dot products are not run");
        return;
    }
    eprintln!("-- bf16 products on the bf16 dot products");
    let before = crate::cpu::bf16_gemms();
    crate::cpu::with_bf16_kernels(true, check);
    assert!(
        crate::cpu::bf16_gemms() > before,
        "the bf16 dot products ran"
    );
}

/// The whole inpaint of `pipeline_io.safetensors` (9-channel tiny pipeline, guidance 7.5,
/// asymmetric decoder) on `selected` at its precision, every scheduler with a fixture: each
/// PNG against diffusers' f32 PNG, within twice the error of the reference's own half-precision
/// run (`refs`, e.g. `half_pipeline.safetensors`) against the same PNG, and not identical to it
/// (the half path was taken).
pub fn assert_inpaint_within_twice_reference(selected: &device::Selected, refs: &str, label: &str) {
    use crate::pipelines::inpaint::{self, DecoderChoice, InpaintModels};
    use crate::progress::{CancelToken, NoProgress};
    use crate::schedulers::SchedulerKind;
    let io = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let refs = SafetensorsFile::open(fixture(refs)).unwrap();
    let (image, mask, latents) = pipeline_inputs(&io);
    let decoder = DecoderChoice::Asymmetric;
    let models = InpaintModels::load(
        &fixture("tiny_sd_inpaint9"),
        Some(&fixture("vae_asym_tiny")),
        decoder,
        selected,
    )
    .unwrap();
    for kind in SchedulerKind::ALL {
        if kind == SchedulerKind::EulerAncestral {
            continue; // its noise draws differ from torch's by design (no fixture)
        }
        let req = pipeline_request(kind, 7.5, decoder, latents.clone());
        let (cancel, quiet) = (CancelToken::new(), NoProgress);
        let out = inpaint::run(&models, &image, &mask, &req, &quiet, &cancel).unwrap();
        let rgb = out.image.pixels().flat_map(|p| [p[0], p[1], p[2]]);
        let ours: Vec<f32> = rgb.map(f32::from).collect();
        let key = format!("out.9.{}.7.5.asymmetric", kind.name());
        let f = |file: &SafetensorsFile| -> Vec<f32> {
            let v = file.read_ints(&key).unwrap();
            v.iter().map(|&v| v as f32).collect()
        };
        let (want, theirs) = (f(&io), f(&refs));
        let (err, bound) = (rel_err(&ours, &want), rel_err(&theirs, &want));
        eprintln!("{key}: {label} rel err {err:.3e}, reference's own {bound:.3e}");
        assert!(err > 0.0, "{key}: identical to f32: {label} was not used");
        assert!(err <= 2.0 * bound, "{key}: {err:.3e} > 2 x {bound:.3e}");
    }
}

/// Writes the SD 1.5 inpainting UNet as a diffusers folder `dir/unet` in the real layout
/// (`unet_sd15_inpaint_config.json`, formula weights in float16 under diffusers' key names, in
/// `diffusion_pytorch_model.fp16.safetensors`) and returns the folder and its config.
pub fn write_sd15_inpaint_unet(
    dir: &std::path::Path,
) -> (PathBuf, crate::models::unet::UNetConfig) {
    use crate::models::unet;
    let unet_dir = dir.join("unet");
    std::fs::create_dir_all(&unet_dir).expect("unet folder");
    std::fs::copy(
        fixture("unet_sd15_inpaint_config.json"),
        unet_dir.join("config.json"),
    )
    .expect("config");
    let config: unet::UNetConfig =
        crate::weights::read_config(unet_dir.join("config.json")).expect("config");
    write_formula_weights_as(
        unet::UNet2DConditionModel::new(&config, &Device::flex()),
        &unet_dir.join("diffusion_pytorch_model.fp16.safetensors"),
        safetensors::Dtype::F16,
        |k| {
            k.replace(".ff.net.geglu.proj.", ".ff.net.0.proj.")
                .replace(".ff.net.out.", ".ff.net.2.")
        },
    );
    (unet_dir, config)
}
