//! bf16 on the CPU (flex) against the f32 references: each output's error is held to at most
//! twice PyTorch's own bf16 autocast error against the same f32 reference on the same inputs
//! (`tools/reference/make_bf16_fixtures.py`). The models `--precision bf16` runs in bf16: the
//! VAE decoders (SD's KL decoder and the asymmetric one, tiny and at the x-1-5 widths), the UNet
//! (tiny, both projection kinds, and the real SD 1.5 inpainting widths) and the CLIP text
//! encoder. Weights are stored in bf16, activations in f32, statistics in f32; each check runs
//! with the products on the f32 kernels (bf16 weights widened) and, where the CPU has
//! AVX512_BF16, on the bf16 dot products (bf16 inputs, f32 sums, as autocast).

use burn::tensor::{DType, Device, FloatDType, Tensor};
use clearpaint_core::device;
use clearpaint_core::models::vae::{self, AutoencoderKL, VaeConfig};
use clearpaint_core::models::{clip, unet};
use clearpaint_core::precision::{Half, Precision};
use clearpaint_core::testing::{
    assert_inpaint_within_twice_reference, assert_within_twice_reference, clip_tiny_ids, fixture,
    for_each_bf16_kernel, load_tensor, write_formula_weights, write_sd15_inpaint_unet,
};
use clearpaint_core::weights::SafetensorsFile;

const BF16: FloatDType = FloatDType::BF16;

fn check<const D: usize>(
    refs: &str,
    what: &str,
    ours: Tensor<D>,
    io: &SafetensorsFile,
    key: (&str, &str),
) {
    assert_within_twice_reference("bf16", refs, what, ours, io, key);
}

fn bf16_decoder(vae: AutoencoderKL) -> AutoencoderKL {
    let vae = vae.with_decoder_dtype(BF16);
    assert_eq!(vae.decoder_dtype(), DType::BF16);
    vae
}

#[test]
fn kl_decoder_in_bf16_is_as_close_as_pytorch_autocast() {
    for_each_bf16_kernel(|| {
        let dev = Device::flex();
        let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
        let m = bf16_decoder(
            vae::load_folder(fixture("vae_kl_tiny"), &dev)
                .unwrap()
                .model,
        );
        let out = m.decode(load_tensor::<4>(&io, "z", &dev), None);
        assert_eq!(out.dtype(), DType::F32, "decode returns f32");
        check(
            "bf16_vae.safetensors",
            "KL decoder",
            out,
            &io,
            ("dec", "kl_tiny.dec"),
        );
    });
}

fn asym_checks(m: &AutoencoderKL, io: &SafetensorsFile, tag: &str) {
    let dev = Device::flex();
    let x = load_tensor::<4>(io, "x", &dev);
    let mask = load_tensor::<4>(io, "mask", &dev);
    let z = load_tensor::<4>(io, "z", &dev);
    for (key, cond) in [("dec_masked", Some((x, mask))), ("dec_plain", None)] {
        let out = m.decode(z.clone(), cond);
        let what = format!("{tag} {key}");
        let ref_key = format!("{tag}.{key}");
        check("bf16_vae.safetensors", &what, out, io, (key, &ref_key));
    }
}

#[test]
fn asymmetric_decoders_in_bf16_are_as_close_as_pytorch_autocast() {
    for_each_bf16_kernel(|| {
        let dev = Device::flex();
        let io = SafetensorsFile::open(fixture("vae_asym_tiny_io.safetensors")).unwrap();
        let m = bf16_decoder(
            vae::load_folder(fixture("vae_asym_tiny"), &dev)
                .unwrap()
                .model,
        );
        asym_checks(&m, &io, "asym_tiny");

        let io = SafetensorsFile::open(fixture("vae_asym_x15_io.safetensors")).unwrap();
        let config = VaeConfig::asymmetric_x1_5();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x15.safetensors");
        write_formula_weights(AutoencoderKL::new(&config, &dev), &path);
        let file = SafetensorsFile::open(&path).unwrap();
        let loaded = vae::load_files(std::slice::from_ref(&file), config, &dev).unwrap();
        asym_checks(&bf16_decoder(loaded.model), &io, "x15");
    });
}

#[test]
fn unets_in_bf16_are_as_close_as_pytorch_autocast() {
    for_each_bf16_kernel(|| {
        let dev = Device::flex();
        let io = SafetensorsFile::open(fixture("unet_tiny_io.safetensors")).unwrap();
        let ctx = load_tensor::<3>(&io, "context", &dev);
        let t = io.read_f32("t").unwrap();
        for name in ["inpaint", "linear"] {
            let dir = fixture(&format!("unet_tiny_{name}"));
            let m = unet::load_folder_as(&dir, &dev, BF16).unwrap().model;
            assert_eq!(m.dtype(), DType::BF16);
            for tag in ["8", "odd"] {
                let x = load_tensor::<4>(&io, &format!("{name}_x_{tag}"), &dev);
                let key = format!("{name}_y_{tag}");
                let y = m.forward(x, &t, &ctx);
                assert_eq!(y.dtype(), DType::F32, "forward returns f32");
                let what = format!("UNet {name} {tag}");
                check("bf16_unet.safetensors", &what, y, &io, (&key, &key));
            }
        }
        let io = SafetensorsFile::open(fixture("unet_sd15_inpaint_io.safetensors")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (unet_dir, _) = write_sd15_inpaint_unet(dir.path());
        let m = unet::load_folder_as(&unet_dir, &dev, BF16).unwrap().model;
        let te = m.time_embedding.linear_1.weight.val().dtype();
        assert_eq!(te, DType::F32, "the timestep embedding computes in f32");
        let x = load_tensor::<4>(&io, "x", &dev);
        let ctx = load_tensor::<3>(&io, "context", &dev);
        let y = m.forward(x, &io.read_f32("t").unwrap(), &ctx);
        let what = "SD 1.5 inpainting UNet";
        check("bf16_unet.safetensors", what, y, &io, ("y", "sd15_y"));
    });
}

#[test]
fn text_encoder_in_bf16_is_as_close_as_pytorch_autocast() {
    for_each_bf16_kernel(|| {
        let dev = Device::flex();
        let io = SafetensorsFile::open(fixture("clip_tiny_io.safetensors")).unwrap();
        let ids = clip_tiny_ids(&io);
        let m = clip::load_folder_as(fixture("clip_tiny"), &dev, BF16)
            .unwrap()
            .model;
        assert_eq!(m.dtype(), DType::BF16);
        let out = m.forward(clip::ids_tensor(&ids, &dev));
        assert_eq!(out.dtype(), DType::F32);
        let key = ("last_hidden_state", "last_hidden_state");
        check("bf16_clip.safetensors", "CLIP text encoder", out, &io, key);
    });
}

/// The whole inpaint (9-channel tiny pipeline, guidance 7.5, asymmetric decoder) with
/// `--precision bf16`, every scheduler: its PNG against diffusers' f32 PNG, within twice the
/// error of diffusers' pipeline under bf16 autocast (`bf16_pipeline.safetensors`).
#[test]
fn whole_inpaint_in_bf16_is_as_close_as_pytorch_autocast_for_every_scheduler() {
    for_each_bf16_kernel(|| {
        let selected = device::cpu().with_precision(Precision::Bf16).unwrap();
        assert_eq!(selected.half, Half::Bf16);
        assert_inpaint_within_twice_reference(&selected, "bf16_pipeline.safetensors", "bf16");
    });
}
