//! VAE parity with diffusers (tools/reference/make_vae_fixtures.py): AutoencoderKL and
//! AsymmetricAutoencoderKL at tiny configs (random weights, diffusers folders, legacy and
//! original key layouts) and at the real x-1-5 widths (formula weights, 16x16), on flex and
//! wgpu.

use burn::tensor::{Device, Tensor};
use clearpaint_core::models::vae::{self, AutoencoderKL, VaeConfig, VaeConfigJson};
use clearpaint_core::testing::{
    TestDevice, assert_close, fixture, formula_value, load_tensor, test_devices, to_vec,
    write_formula_weights,
};
use clearpaint_core::weights::{SafetensorsFile, WeightsError, read_config};

fn check(dev: &TestDevice, what: &str, ours: Tensor<4>, io: &SafetensorsFile, key: &str) {
    let reference = io.read_f32(key).unwrap();
    assert_eq!(
        ours.dims().to_vec(),
        io.entry(key).unwrap().shape,
        "{what}: shape"
    );
    assert_close(
        &format!("{what} on {}", dev.name),
        &to_vec(ours),
        &reference,
        dev.tolerance,
    );
}

#[test]
fn kl_tiny_matches_diffusers() {
    let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
    for dev in test_devices() {
        let loaded = vae::load_folder(fixture("vae_kl_tiny"), &dev.device).unwrap();
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        assert!(!loaded.model.is_asymmetric());
        assert_eq!(loaded.config.scale_factor(), 2);
        let m = &loaded.model;
        let x = load_tensor::<4>(&io, "x", &dev.device);
        let post = m.encode(x);
        check(&dev, "KL encoder mean", post.mean.clone(), &io, "mean");
        check(
            &dev,
            "KL encoder logvar",
            post.logvar.clone(),
            &io,
            "logvar",
        );
        let eps = load_tensor::<4>(&io, "eps", &dev.device);
        check(
            &dev,
            "KL posterior sample",
            post.sample_with(eps),
            &io,
            "sample",
        );
        let z = load_tensor::<4>(&io, "z", &dev.device);
        check(&dev, "KL decoder", m.decode(z, None), &io, "dec");
    }
}

#[test]
fn kl_legacy_attention_names_load_the_same() {
    let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
    let json: VaeConfigJson = read_config(fixture("vae_kl_tiny/config.json")).unwrap();
    let config = VaeConfig::from_json(&json).unwrap();
    let file = SafetensorsFile::open(fixture("vae_kl_tiny_legacy.safetensors")).unwrap();
    assert!(
        file.keys()
            .any(|k| k.ends_with("attentions.0.query.weight"))
    );
    assert_eq!(
        file.entry("decoder.mid_block.attentions.0.query.weight")
            .unwrap()
            .shape
            .len(),
        4,
        "legacy fixture stores 1x1-conv shaped attention weights"
    );
    let dev = &test_devices()[0];
    let loaded = vae::load_files(&[file], config, &dev.device).unwrap();
    assert!(loaded.report.is_complete(), "{}", loaded.report);
    let x = load_tensor::<4>(&io, "x", &dev.device);
    check(
        dev,
        "legacy KL mean",
        loaded.model.encode(x).mean,
        &io,
        "mean",
    );
    let z = load_tensor::<4>(&io, "z", &dev.device);
    check(
        dev,
        "legacy KL decoder",
        loaded.model.decode(z, None),
        &io,
        "dec",
    );
}

fn asym_checks(dev: &TestDevice, m: &AutoencoderKL, io: &SafetensorsFile, tag: &str) {
    let x = load_tensor::<4>(io, "x", &dev.device);
    let mask = load_tensor::<4>(io, "mask", &dev.device);
    let z = load_tensor::<4>(io, "z", &dev.device);
    check(
        dev,
        &format!("{tag} encoder mean"),
        m.encode(x.clone()).mean,
        io,
        "mean",
    );
    check(
        dev,
        &format!("{tag} decoder with mask"),
        m.decode(z.clone(), Some((x, mask))),
        io,
        "dec_masked",
    );
    check(
        dev,
        &format!("{tag} decoder without condition"),
        m.decode(z, None),
        io,
        "dec_plain",
    );
}

#[test]
fn asymmetric_tiny_matches_diffusers() {
    let io = SafetensorsFile::open(fixture("vae_asym_tiny_io.safetensors")).unwrap();
    // The mask is non-trivial: both values present.
    let mask = io.read_f32("mask").unwrap();
    let ones = mask.iter().filter(|v| **v == 1.0).count();
    assert!(ones > 0 && ones < mask.len());
    for dev in test_devices() {
        let loaded = vae::load_folder(fixture("vae_asym_tiny"), &dev.device).unwrap();
        assert!(loaded.model.is_asymmetric());
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        let before = clearpaint_core::kernels::launches();
        asym_checks(&dev, &loaded.model, &io, "asym tiny");
        // On wgpu the fused GroupNorm+SiLU and mask-swap kernels did the work; flex used
        // the references.
        let launched = clearpaint_core::kernels::launches() - before;
        if dev.name == "wgpu" {
            assert!(launched > 10, "only {launched} kernel launches on wgpu");
        } else {
            assert_eq!(launched, 0);
        }
    }
}

#[test]
fn original_checkpoint_layout_matches_the_diffusers_folder() {
    let io = SafetensorsFile::open(fixture("vae_asym_tiny_io.safetensors")).unwrap();
    let json: VaeConfigJson = read_config(fixture("vae_asym_tiny/config.json")).unwrap();
    let config = VaeConfig::from_json(&json).unwrap();
    let file = SafetensorsFile::open(fixture("vae_asym_tiny_original.safetensors")).unwrap();
    assert!(file.keys().any(|k| k.starts_with("decoder.up.3.block.")));
    assert!(
        file.keys()
            .any(|k| k.starts_with("decoder.encoder.layers."))
    );
    assert!(file.keys().any(|k| k.starts_with("loss.")));
    let dev = &test_devices()[0];
    let loaded = vae::load_files(&[file], config, &dev.device).unwrap();
    // Everything used, training-only keys ignored rather than "unexpected".
    assert!(loaded.report.is_complete(), "{}", loaded.report);
    asym_checks(dev, &loaded.model, &io, "asym original layout");
}

#[test]
fn x1_5_widths_match_diffusers() {
    let io = SafetensorsFile::open(fixture("vae_asym_x15_io.safetensors")).unwrap();
    // The formula agrees with Python's bit for bit.
    for key in [
        "decoder.up_blocks.1.resnets.2.conv1.weight",
        "encoder.mid_block.attentions.0.group_norm.weight",
    ] {
        let check_key = format!("check.{key}");
        let expected = io.read_f32(&check_key).unwrap();
        let shape: Vec<usize> = if key.contains("conv1") {
            vec![768, 768, 3, 3]
        } else {
            vec![512]
        };
        let ours = formula_value(key, &shape);
        let same = ours[..expected.len()] == expected[..];
        assert!(
            same,
            "{key}: formula differs from Python's ({:?} vs {:?})",
            &ours[..4],
            &expected[..4]
        );
    }
    let config = VaeConfig::asymmetric_x1_5();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x15.safetensors");
    write_formula_weights(AutoencoderKL::new(&config, &Device::flex()), &path);
    let file = SafetensorsFile::open(&path).unwrap();
    for dev in test_devices() {
        let loaded =
            vae::load_files(std::slice::from_ref(&file), config.clone(), &dev.device).unwrap();
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        // diffusers: 290 tensors, 194,300,519 parameters.
        assert_eq!(loaded.report.loaded, 290, "{}", loaded.report);
        asym_checks(&dev, &loaded.model, &io, "x-1-5");
    }
}

#[test]
fn broken_vae_folders_name_the_tensor() {
    let src = fixture("vae_asym_tiny");
    let bytes = std::fs::read(src.join("diffusion_pytorch_model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = bytes[8 + n..].to_vec();
    let write = |header: &serde_json::Value| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
        let h = serde_json::to_vec(header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&data);
        std::fs::write(dir.path().join("diffusion_pytorch_model.safetensors"), out).unwrap();
        dir
    };
    let dev = Device::flex();

    // Renamed tensor.
    let mut renamed = header.clone();
    let obj = renamed.as_object_mut().unwrap();
    let v = obj
        .remove("decoder.condition_encoder.layers.2.weight")
        .unwrap();
    obj.insert("decoder.condition_encoder.layer.2.weight".into(), v);
    let dir = write(&renamed);
    let msg = vae::load_folder(dir.path(), &dev)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        msg.contains("missing (decoder.condition_encoder.layers.2.weight [32, 16, 4, 4])"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected (decoder.condition_encoder.layer.2.weight)"),
        "{msg}"
    );

    // Mis-shaped tensor (same byte count: [8, 4, 3, 3] declared as [4, 8, 3, 3]).
    let key = "decoder.up_blocks.3.resnets.0.conv1.weight";
    let shape = header[key]["shape"].clone();
    assert_eq!(shape, serde_json::json!([8, 16, 3, 3]));
    header[key]["shape"] = serde_json::json!([16, 8, 3, 3]);
    let dir = write(&header);
    let err = vae::load_folder(dir.path(), &dev).err().expect("must fail");
    assert!(matches!(err, WeightsError::Mismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{key}: model [8, 16, 3, 3], file [16, 8, 3, 3]")),
        "{msg}"
    );
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
}

#[test]
fn unsupported_asymmetric_configs_are_refused() {
    let mut c = VaeConfig::asymmetric_x1_5();
    c.up_channels = vec![192, 384, 384, 768];
    let err = c.validate().unwrap_err();
    assert!(
        err.contains("do not line up with the condition encoder"),
        "{err}"
    );
    c.up_channels = vec![192, 384, 768, 768];
    c.groups = 7;
    assert!(c.validate().unwrap_err().contains("groups"));
    assert!(VaeConfig::asymmetric_x2().validate().is_ok());
    assert!(VaeConfig::sd1().validate().is_ok());
}

#[test]
fn seeded_posterior_samples_are_reproducible() {
    let dev = Device::flex();
    let a = clearpaint_core::noise::gaussian_noise([1, 4, 16, 16], 42, &dev);
    let b = clearpaint_core::noise::gaussian_noise([1, 4, 16, 16], 42, &dev);
    let c = clearpaint_core::noise::gaussian_noise([1, 4, 16, 16], 43, &dev);
    let (a, b, c) = (to_vec(a), to_vec(b), to_vec(c));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let n = a.len() as f64;
    let mean = a.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = a.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.15,
        "mean {mean} var {var}"
    );
}
