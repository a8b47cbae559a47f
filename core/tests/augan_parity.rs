//! AU-GAN generators against the original TensorFlow ops (tools/reference/make_augan_fixture.py):
//! random weights saved as a real TF1 checkpoint with both generators, converted by
//! weights/convert_augan_tf.py into one file; night→day image and σ map, and day→night
//! (`generatorB2A`, no T-net, no σ) image, compared at 32x64 and at 36x68 (odd 9x17
//! bottleneck), on flex and wgpu.

use clearpaint_core::models::augan::{AuganConfig, AuganGenerator, Direction};
use clearpaint_core::testing::{assert_close, fixture, load_tensor, test_devices, to_vec};
use clearpaint_core::weights::{SafetensorsFile, WeightsError};

#[test]
fn generator_matches_tensorflow() {
    let io = SafetensorsFile::open(fixture("augan_io.safetensors")).unwrap();
    for dev in test_devices() {
        let (g, report) =
            AuganGenerator::load(fixture("augan_tiny.safetensors"), &dev.device).unwrap();
        assert_eq!(report.loaded, 92, "{report}");
        assert!(g.has_uncertainty());
        for tag in ["32", "36"] {
            let x = load_tensor::<4>(&io, &format!("x{tag}"), &dev.device);
            let [_, _, h, w] = x.dims();
            let out = g.forward(x, true);
            assert_eq!(out.image.dims(), [1, 3, h, w]);
            let sigma = out.sigma.expect("sigma requested");
            assert_eq!(sigma.dims(), [1, 1, h, w]);
            assert_close(
                &format!("AU-GAN image {h}x{w} on {}", dev.name),
                &to_vec(out.image),
                &io.read_f32(&format!("y{tag}")).unwrap(),
                dev.tolerance,
            );
            assert_close(
                &format!("AU-GAN sigma {h}x{w} on {}", dev.name),
                &to_vec(sigma),
                &io.read_f32(&format!("s{tag}")).unwrap(),
                dev.tolerance,
            );
        }
    }
}

#[test]
fn config_is_read_from_the_file() {
    let f = SafetensorsFile::open(fixture("augan_tiny.safetensors")).unwrap();
    assert_eq!(
        AuganGenerator::config_of(&f).unwrap(),
        AuganConfig {
            ngf: 8,
            transfer: true,
            uncertainty: true
        }
    );
    assert_eq!(
        AuganGenerator::config_for(&f, Direction::DayToNight).unwrap(),
        AuganConfig {
            ngf: 8,
            transfer: false,
            uncertainty: false
        }
    );
    assert_eq!(
        AuganGenerator::directions(&f),
        vec![Direction::NightToDay, Direction::DayToNight]
    );
    assert_eq!(
        f.metadata().get("format").map(String::as_str),
        Some("clearpaint-augan-v1")
    );
}

#[test]
fn a_non_augan_file_is_refused_by_name() {
    let err = AuganGenerator::load(
        fixture("loader_block/diffusion_pytorch_model.safetensors"),
        &burn::tensor::Device::flex(),
    )
    .unwrap_err();
    assert!(matches!(err, WeightsError::BadFile { .. }));
    let msg = err.to_string();
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
    assert!(msg.contains("not an AU-GAN weights file"), "{msg}");
}

#[test]
fn day_to_night_generator_matches_tensorflow() {
    let io = SafetensorsFile::open(fixture("augan_io.safetensors")).unwrap();
    for dev in test_devices() {
        let (g, report) = AuganGenerator::load_direction(
            fixture("augan_tiny.safetensors"),
            Direction::DayToNight,
            &dev.device,
        )
        .unwrap();
        assert_eq!(report.loaded, 64, "{report}");
        assert!(!g.has_uncertainty());
        for tag in ["32", "36"] {
            let x = load_tensor::<4>(&io, &format!("x{tag}"), &dev.device);
            let [_, _, h, w] = x.dims();
            let out = g.forward(x, false);
            assert_close(
                &format!("AU-GAN day->night {h}x{w} on {}", dev.name),
                &to_vec(out.image),
                &io.read_f32(&format!("yb{tag}")).unwrap(),
                dev.tolerance,
            );
        }
    }
}

#[test]
fn a_file_with_only_night_to_day_says_so_for_day_to_night() {
    let f = SafetensorsFile::open(fixture("augan_tiny.safetensors")).unwrap();
    let keys: Vec<String> = f
        .keys()
        .filter(|k| !k.starts_with("day_to_night."))
        .map(String::from)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("night_only.safetensors");
    clearpaint_core::testing::copy_tensors(&f, &keys, &path);
    let dev = burn::tensor::Device::flex();
    assert!(AuganGenerator::load(&path, &dev).is_ok());
    let err = AuganGenerator::load_direction(&path, Direction::DayToNight, &dev).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("night_only.safetensors") && msg.contains("only the night-to-day"),
        "{msg}"
    );
}
