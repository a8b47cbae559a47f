//! Half precision on wgpu (lavapipe here: it has shader-f16) against the f32 references: each
//! output's error is held to at most twice diffusers' own fp16 error against the same f32
//! reference on the same inputs (`tools/reference/make_half_fixtures.py`). The VAE decoders
//! (SD's KL decoder and the asymmetric mask-conditioned one, tiny and at the x-1-5 widths) and
//! the UNet (tiny, both projection kinds, and the real SD 1.5 inpainting widths), and the CLIP
//! text encoder (tiny; against transformers' fp16); and the whole inpaint pipeline at
//! `--precision f16`, every scheduler (against diffusers' pipeline in fp16).

use burn::tensor::{DType, Device, FloatDType, Tensor};
use clearpaint_core::models::vae::{self, AutoencoderKL, VaeConfig};
use clearpaint_core::models::{clip, unet};
use clearpaint_core::testing::{
    TestDevice, assert_inpaint_within_twice_reference, assert_within_twice_reference,
    clip_tiny_ids, fixture, load_tensor, rel_err, test_devices, to_vec, write_formula_weights,
    write_sd15_inpaint_unet,
};
use clearpaint_core::weights::SafetensorsFile;

fn gpu() -> TestDevice {
    test_devices()
        .into_iter()
        .find(|d| d.name == "wgpu")
        .expect("a wgpu device")
}

/// Ours (f16) against the f32 reference `io[key]`, within twice diffusers' fp16 error
/// (`half_vae.safetensors[half_key]` against the same reference).
fn check_half(what: &str, ours: Tensor<4>, io: &SafetensorsFile, key: &str, half_key: &str) {
    check_half_in("half_vae.safetensors", what, ours, io, key, half_key)
}

fn check_half_in<const D: usize>(
    refs: &str,
    what: &str,
    ours: Tensor<D>,
    io: &SafetensorsFile,
    key: &str,
    half_key: &str,
) {
    assert_within_twice_reference("f16", refs, what, ours, io, (key, half_key));
}

fn half(vae: AutoencoderKL) -> AutoencoderKL {
    let vae = vae.with_decoder_dtype(FloatDType::F16);
    assert_eq!(vae.decoder_dtype(), DType::F16);
    vae
}

#[test]
fn kl_decoder_in_f16_is_as_close_as_diffusers_fp16() {
    let dev = gpu();
    let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
    let m = half(
        vae::load_folder(fixture("vae_kl_tiny"), &dev.device)
            .unwrap()
            .model,
    );
    let z = load_tensor::<4>(&io, "z", &dev.device);
    let out = m.decode(z, None);
    assert_eq!(out.dtype(), DType::F32, "decode returns f32");
    check_half("KL decoder", out, &io, "dec", "kl_tiny.dec");
}

fn asym_checks(dev: &TestDevice, m: &AutoencoderKL, io: &SafetensorsFile, tag: &str) {
    let x = load_tensor::<4>(io, "x", &dev.device);
    let mask = load_tensor::<4>(io, "mask", &dev.device);
    let z = load_tensor::<4>(io, "z", &dev.device);
    let masked = m.decode(z.clone(), Some((x, mask)));
    let what = format!("{tag} decoder with mask");
    check_half(
        &what,
        masked,
        io,
        "dec_masked",
        &format!("{tag}.dec_masked"),
    );
    let what = format!("{tag} decoder without condition");
    check_half(
        &what,
        m.decode(z, None),
        io,
        "dec_plain",
        &format!("{tag}.dec_plain"),
    );
}

#[test]
fn asymmetric_decoders_in_f16_are_as_close_as_diffusers_fp16() {
    let dev = gpu();
    let io = SafetensorsFile::open(fixture("vae_asym_tiny_io.safetensors")).unwrap();
    let m = half(
        vae::load_folder(fixture("vae_asym_tiny"), &dev.device)
            .unwrap()
            .model,
    );
    asym_checks(&dev, &m, &io, "asym_tiny");

    let io = SafetensorsFile::open(fixture("vae_asym_x15_io.safetensors")).unwrap();
    let config = VaeConfig::asymmetric_x1_5();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x15.safetensors");
    write_formula_weights(AutoencoderKL::new(&config, &Device::flex()), &path);
    let file = SafetensorsFile::open(&path).unwrap();
    let loaded = vae::load_files(std::slice::from_ref(&file), config, &dev.device).unwrap();
    asym_checks(&dev, &half(loaded.model), &io, "x15");
}

/// Latents far outside the usual range overflow f16's 65504 inside the decoder: the decode is
/// redone in f32 and matches the f32 decoder, instead of returning inf/NaN.
#[test]
fn an_overflowing_f16_decode_is_redone_in_f32() {
    let dev = gpu();
    let loaded = vae::load_folder(fixture("vae_kl_tiny"), &dev.device).unwrap();
    let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
    let z = load_tensor::<4>(&io, "z", &dev.device) * 1e5;
    let m = half(loaded.model.clone());
    // The redo's weights are the f16 ones, widened: compare with exactly that decoder.
    let widened = m.clone().with_decoder_dtype(FloatDType::F32);
    let full = widened.decode(z.clone(), None);
    assert!(vae::all_finite(&full), "f32 decode of the test input");
    assert!(
        !vae::all_finite(&m.decode(z.clone(), None)),
        "the test input must overflow f16"
    );
    let out = m.decode_within(&loaded.config, z, None, 1 << 30);
    assert!(out.redone_in_f32);
    assert!(out.notes().iter().any(|n| n.contains("redone in f32")));
    let (ours, f32_ref) = (to_vec(out.image), to_vec(full));
    assert!(ours.iter().all(|v| v.is_finite()));
    let err = rel_err(&ours, &f32_ref);
    assert!(err < 1e-5, "redo differs from the f32 decode by {err:.1e}");
    // And a decode that does not overflow is not redone.
    let z = load_tensor::<4>(&io, "z", &dev.device);
    assert!(
        !m.decode_within(&loaded.config, z, None, 1 << 30)
            .redone_in_f32
    );
}

#[test]
fn unets_in_f16_are_as_close_as_diffusers_fp16() {
    let dev = gpu();
    let io = SafetensorsFile::open(fixture("unet_tiny_io.safetensors")).unwrap();
    let ctx = load_tensor::<3>(&io, "context", &dev.device);
    let t = io.read_f32("t").unwrap();
    for name in ["inpaint", "linear"] {
        let loaded = unet::load_folder(fixture(&format!("unet_tiny_{name}")), &dev.device).unwrap();
        let m = loaded.model.with_dtype(FloatDType::F16);
        assert_eq!(m.dtype(), DType::F16);
        for tag in ["8", "odd"] {
            let x = load_tensor::<4>(&io, &format!("{name}_x_{tag}"), &dev.device);
            let key = format!("{name}_y_{tag}");
            let y = m.forward(x, &t, &ctx);
            assert_eq!(y.dtype(), DType::F32, "forward returns f32");
            let what = format!("UNet {name} {tag}");
            check_half_in("half_unet.safetensors", &what, y, &io, &key, &key);
        }
    }
    let io = SafetensorsFile::open(fixture("unet_sd15_inpaint_io.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (unet_dir, _) = write_sd15_inpaint_unet(dir.path());
    // As a run loads it: f16 weights straight onto the device, the time embedding widened.
    let m = unet::load_folder_as(&unet_dir, &dev.device, FloatDType::F16)
        .unwrap()
        .model;
    assert_eq!(m.dtype(), DType::F16);
    let te = m.time_embedding.linear_1.weight.val().dtype();
    assert_eq!(te, DType::F32, "the timestep embedding computes in f32");
    let x = load_tensor::<4>(&io, "x", &dev.device);
    let ctx = load_tensor::<3>(&io, "context", &dev.device);
    let y = m.forward(x, &io.read_f32("t").unwrap(), &ctx);
    check_half_in(
        "half_unet.safetensors",
        "SD 1.5 inpainting UNet",
        y,
        &io,
        "y",
        "sd15_y",
    );
}

#[test]
fn text_encoder_in_f16_is_as_close_as_transformers_fp16() {
    let dev = gpu();
    let io = SafetensorsFile::open(fixture("clip_tiny_io.safetensors")).unwrap();
    let ids = clip_tiny_ids(&io);
    let m = clip::load_folder_as(fixture("clip_tiny"), &dev.device, FloatDType::F16)
        .unwrap()
        .model;
    assert_eq!(m.dtype(), DType::F16);
    let out = m.forward(clip::ids_tensor(&ids, &dev.device));
    assert_eq!(out.dtype(), DType::F32);
    let key = "last_hidden_state";
    check_half_in(
        "half_clip.safetensors",
        "CLIP text encoder",
        out,
        &io,
        key,
        key,
    );
}

/// The whole inpaint (9-channel tiny pipeline, guidance 7.5, asymmetric decoder) with
/// `--precision f16` on wgpu, every scheduler: its PNG against diffusers' f32 PNG, within twice
/// the error of diffusers' pipeline in fp16 (`half_pipeline.safetensors`).
#[test]
fn whole_inpaint_in_f16_is_as_close_as_diffusers_fp16_for_every_scheduler() {
    let selected = clearpaint_core::device::select(clearpaint_core::device::DeviceChoice::Gpu)
        .expect("a wgpu adapter")
        .with_precision(clearpaint_core::precision::Precision::F16)
        .unwrap();
    assert_eq!(selected.half, clearpaint_core::precision::Half::On);
    assert_inpaint_within_twice_reference(&selected, "half_pipeline.safetensors", "f16");
}
