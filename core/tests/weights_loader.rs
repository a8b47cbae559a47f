//! The weights loader end to end against PyTorch: a GroupNorm + Conv2d + Linear block saved by
//! torch (tools/reference/make_loader_fixture.py) in f32, fp16 (diffusers `.fp16` folder) and
//! bf16, loaded by us, run on flex and wgpu, and compared with PyTorch's outputs. Plus the
//! ways a weight file can be broken, each of which must be a one-line error naming the file.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};
use clearpaint_core::testing::{assert_close, fixture, load_tensor, test_devices, to_vec};
use clearpaint_core::weights::{
    KeyRemap, LoadOptions, SafetensorsFile, WeightsError, component_files, load_module,
};

#[derive(Module, Debug)]
struct Block {
    norm: GroupNorm,
    conv: Conv2d,
    proj: Linear,
    heads: Vec<Linear>,
}

impl Block {
    fn new(device: &Device) -> Self {
        Block {
            norm: GroupNormConfig::new(4, 8).with_epsilon(1e-6).init(device),
            conv: Conv2dConfig::new([8, 16], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            proj: LinearConfig::new(16, 12).init(device),
            heads: vec![
                LinearConfig::new(12, 12).init(device),
                LinearConfig::new(12, 12).with_bias(false).init(device),
            ],
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = silu(self.norm.forward(x));
        let h = self.conv.forward(h);
        let mut h = h.permute([0, 2, 3, 1]);
        h = self.proj.forward(h);
        for head in &self.heads {
            h = h.clone() + head.forward(h);
        }
        h.permute([0, 3, 1, 2])
    }
}

fn load(files: &[SafetensorsFile], device: &Device) -> Result<Block, WeightsError> {
    load_module(Block::new(device), files, &LoadOptions::default()).map(|(m, _)| m)
}

fn check_layout(files: Vec<SafetensorsFile>, expected_key: &str) {
    let io = SafetensorsFile::open(fixture("loader_block_io.safetensors")).unwrap();
    for dev in test_devices() {
        let (block, report) =
            load_module(Block::new(&dev.device), &files, &LoadOptions::default()).unwrap();
        assert!(report.is_complete(), "{report}");
        assert_eq!(report.loaded, 9, "{report}");
        let x: Tensor<4> = load_tensor(&io, "x", &dev.device);
        let y = block.forward(x);
        let reference = io.read_f32(expected_key).unwrap();
        assert_eq!(y.dims(), [1, 12, 6, 5]);
        assert_close(
            &format!("{expected_key} on {}", dev.name),
            &to_vec(y),
            &reference,
            dev.tolerance,
        );
    }
}

#[test]
fn f32_diffusers_folder_matches_pytorch() {
    let comp = component_files(fixture("loader_block")).unwrap();
    assert!(comp.weights[0].ends_with("diffusion_pytorch_model.safetensors"));
    check_layout(comp.open().unwrap(), "y_f32");
}

#[test]
fn fp16_variant_folder_matches_pytorch() {
    let comp = component_files(fixture("loader_block_fp16")).unwrap();
    assert!(comp.weights[0].ends_with("diffusion_pytorch_model.fp16.safetensors"));
    check_layout(comp.open().unwrap(), "y_fp16");
}

#[test]
fn bf16_file_matches_pytorch() {
    let f = SafetensorsFile::open(fixture("loader_block_bf16.safetensors")).unwrap();
    check_layout(vec![f], "y_bf16");
}

/// Half-precision parameters from a file in the same type are its bits, as stored (a linear
/// weight transposed): no rounding trip through anything else. From an f32 file, each value
/// rounded to nearest even, as a cast of the f32 value gives.
#[test]
fn half_parameters_keep_the_files_bits() {
    use burn::tensor::{DType, FloatDType};
    let cases = [
        (
            "loader_block_fp16/diffusion_pytorch_model.fp16.safetensors",
            FloatDType::F16,
        ),
        ("loader_block_bf16.safetensors", FloatDType::BF16),
        (
            "loader_block/diffusion_pytorch_model.safetensors",
            FloatDType::F16,
        ),
    ];
    for (path, dtype) in cases {
        let f = SafetensorsFile::open(fixture(path)).unwrap();
        let options = LoadOptions {
            float_dtype: Some(dtype),
            ..Default::default()
        };
        let dev = Device::flex();
        let (block, report) = load_module(Block::new(&dev), std::slice::from_ref(&f), &options)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(report.is_complete(), "{report}");
        // proj.weight is [out 12, in 16] in the file, [in 16, out 12] in burn.
        let file = f.read_f32("proj.weight").unwrap();
        let raw = f.raw("proj.weight").unwrap();
        let param = block.proj.weight.val();
        assert_eq!(param.dtype(), DType::from(dtype));
        // f16 and bf16 are both two little-endian bytes.
        let data = param.into_data();
        let bits: Vec<u16> = data
            .as_bytes()
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        for o in 0..12 {
            for i in 0..16 {
                let k = o * 16 + i;
                let want = if path.contains("fp16") || path.contains("bf16") {
                    u16::from_le_bytes([raw[2 * k], raw[2 * k + 1]])
                } else {
                    half::f16::from_f32(file[k]).to_bits()
                };
                assert_eq!(bits[i * 12 + o], want, "{path}: proj.weight[{o}][{i}]");
            }
        }
    }
}

// ---- broken inputs -------------------------------------------------------------------------

fn good_bytes() -> Vec<u8> {
    std::fs::read(fixture("loader_block/diffusion_pytorch_model.safetensors")).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Opens `bytes` as a file and returns the error message, which must be one line naming it.
fn open_err(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, bytes);
    let err = SafetensorsFile::open(&p)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains(name), "error does not name the file: {err}");
    assert!(!err.contains('\n'), "error is not one line: {err}");
    err
}

/// Splits a safetensors file into (header JSON, data).
fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

#[test]
fn truncated_file_is_a_clear_error() {
    let bytes = good_bytes();
    let err = open_err("truncated.safetensors", &bytes[..bytes.len() - 100]);
    assert!(err.contains("truncated"), "{err}");
    // Cut inside the header too.
    let err = open_err("cut_header.safetensors", &bytes[..40]);
    assert!(err.contains("header"), "{err}");
}

#[test]
fn garbage_and_empty_files_are_clear_errors() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let err = open_err("garbage.safetensors", &garbage);
    assert!(err.contains("not a safetensors file"), "{err}");
    let err = open_err(
        "text.safetensors",
        b"{\"hello\": \"this is json, not safetensors\"}",
    );
    assert!(err.contains("not a safetensors file"), "{err}");
    let err = open_err("empty.safetensors", b"");
    assert!(err.contains("empty"), "{err}");
    let err = open_err("short.safetensors", b"abc");
    assert!(err.contains("too short"), "{err}");
}

#[test]
fn header_with_out_of_range_offsets_is_a_clear_error() {
    let (mut header, data) = split(&good_bytes());
    // Point the conv weight past the end of the data.
    let end = data.len() as u64;
    header["conv.weight"]["data_offsets"] = serde_json::json!([end, end + 4608]);
    let err = open_err("lying.safetensors", &join(&header, &data));
    assert!(
        err.contains("conv.weight") || err.contains("corrupt"),
        "{err}"
    );

    // Offsets that disagree with shape x dtype.
    let (mut header, data) = split(&good_bytes());
    header["proj.bias"]["shape"] = serde_json::json!([13]);
    let err = open_err("badshape.safetensors", &join(&header, &data));
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn wrong_shape_names_the_key_and_both_shapes() {
    let (mut header, data) = split(&good_bytes());
    // Declare proj.weight (16 -> 12, stored [12, 16]) as [16, 12]: same bytes, wrong shape.
    header["proj.weight"]["shape"] = serde_json::json!([16, 12]);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "transposed.safetensors", &join(&header, &data));
    let file = SafetensorsFile::open(&p).unwrap();
    let err = load(&[file], &Device::flex()).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("transposed.safetensors"), "{msg}");
    assert!(
        msg.contains("proj.weight: model [12, 16], file [16, 12]"),
        "{msg}"
    );
    match err {
        WeightsError::Mismatch { report, .. } => {
            assert_eq!(report.mismatched.len(), 1);
            assert!(report.missing.is_empty() && report.unexpected.is_empty());
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn missing_and_unexpected_keys_are_reported() {
    let (mut header, data) = split(&good_bytes());
    let obj = header.as_object_mut().unwrap();
    // Rename one tensor: it is then both missing (heads.0.bias) and unexpected (heads.0.b).
    let v = obj.remove("heads.0.bias").unwrap();
    obj.insert("heads.0.b".into(), v);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "renamed.safetensors", &join(&header, &data));
    let file = SafetensorsFile::open(&p).unwrap();
    let msg = load(std::slice::from_ref(&file), &Device::flex())
        .expect_err("must fail")
        .to_string();
    assert!(msg.contains("renamed.safetensors"), "{msg}");
    assert!(msg.contains("1 missing (heads.0.bias [12])"), "{msg}");
    assert!(msg.contains("1 unexpected (heads.0.b)"), "{msg}");
    assert!(!msg.contains('\n'));

    // A partial load is allowed when asked for, and still reports.
    let opts = LoadOptions {
        allow_partial: true,
        ..Default::default()
    };
    let (_, report) = load_module(Block::new(&Device::flex()), &[file], &opts).unwrap();
    assert_eq!(report.loaded, 8);
    assert_eq!(report.missing.len(), 1);

    // A remap table fixes the name.
    let dir2 = tempfile::tempdir().unwrap();
    let p = write(dir2.path(), "renamed.safetensors", &join(&header, &data));
    let file = SafetensorsFile::open(&p).unwrap();
    let opts = LoadOptions {
        remap: KeyRemap::new().rule(r"^heads\.(\d+)\.b$", "heads.$1.bias"),
        ..Default::default()
    };
    let (_, report) = load_module(Block::new(&Device::flex()), &[file], &opts).unwrap();
    assert!(report.is_complete(), "{report}");
}

#[test]
fn integer_tensor_where_a_weight_belongs_is_an_error() {
    let (mut header, data) = split(&good_bytes());
    // proj.bias: 12 f32 = 48 bytes = 12 i32.
    header["proj.bias"]["dtype"] = serde_json::json!("I32");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "int.safetensors", &join(&header, &data));
    let file = SafetensorsFile::open(&p).unwrap();
    let msg = load(&[file], &Device::flex())
        .expect_err("must fail")
        .to_string();
    assert!(msg.contains("proj.bias") && msg.contains("I32"), "{msg}");
}

#[test]
fn folder_errors_name_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = component_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let err = component_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no weights"), "{err}");
    std::fs::write(dir.path().join("diffusion_pytorch_model.bin"), "x").unwrap();
    let err = component_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains(".bin"), "{err}");
    let err = component_files(dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such folder"), "{err}");
}
