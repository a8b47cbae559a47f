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
        },
        TestDevice {
            name: "wgpu",
            device: gpu.device,
            tolerance: GPU_TOLERANCE,
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
