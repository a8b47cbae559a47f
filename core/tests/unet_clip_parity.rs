//! CLIP text encoder vs transformers and UNet2DConditionModel vs diffusers
//! (tools/reference/make_unet_clip_fixtures.py), on flex and wgpu: tiny configs with random
//! weights, and the real SD 1.5 inpainting UNet config loaded from an f16 diffusers folder.

use burn::tensor::Tensor;
use clearpaint_core::models::{clip, unet};
use clearpaint_core::testing::{
    TestDevice, assert_close, fixture, load_tensor, test_devices, to_vec, write_sd15_inpaint_unet,
};
use clearpaint_core::weights::{SafetensorsFile, read_config};

fn check3(dev: &TestDevice, what: &str, ours: Tensor<3>, io: &SafetensorsFile, key: &str) {
    assert_eq!(ours.dims().to_vec(), io.entry(key).unwrap().shape, "{what}");
    assert_close(
        &format!("{what} on {}", dev.name),
        &to_vec(ours),
        &io.read_f32(key).unwrap(),
        dev.tolerance,
    );
}

fn check4(dev: &TestDevice, what: &str, ours: Tensor<4>, io: &SafetensorsFile, key: &str) {
    assert_eq!(ours.dims().to_vec(), io.entry(key).unwrap().shape, "{what}");
    assert_close(
        &format!("{what} on {}", dev.name),
        &to_vec(ours),
        &io.read_f32(key).unwrap(),
        dev.tolerance,
    );
}

fn ids(io: &SafetensorsFile) -> Vec<Vec<u32>> {
    let flat = io.read_ints("input_ids").unwrap();
    flat.chunks(77)
        .map(|c| c.iter().map(|&v| v as u32).collect())
        .collect()
}

#[test]
fn clip_text_encoder_matches_transformers() {
    let io = SafetensorsFile::open(fixture("clip_tiny_io.safetensors")).unwrap();
    for dev in test_devices() {
        let loaded = clip::load_folder(fixture("clip_tiny"), &dev.device).unwrap();
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        let out = loaded
            .model
            .forward(clip::ids_tensor(&ids(&io), &dev.device));
        check3(
            &dev,
            "CLIP last hidden state",
            out,
            &io,
            "last_hidden_state",
        );
    }
}

#[test]
fn clip_transformers4_names_load_the_same() {
    let io = SafetensorsFile::open(fixture("clip_tiny_io.safetensors")).unwrap();
    let config: clip::ClipTextConfig = read_config(fixture("clip_tiny/config.json")).unwrap();
    let file = SafetensorsFile::open(fixture("clip_tiny_v4.safetensors")).unwrap();
    assert!(file.keys().all(|k| k.starts_with("text_model.")));
    assert!(file.entry("text_model.embeddings.position_ids").is_some());
    let dev = &test_devices()[0];
    let loaded = clip::load_files(&[file], config, &dev.device).unwrap();
    assert!(loaded.report.is_complete(), "{}", loaded.report);
    let out = loaded
        .model
        .forward(clip::ids_tensor(&ids(&io), &dev.device));
    check3(
        dev,
        "CLIP (transformers 4 names)",
        out,
        &io,
        "last_hidden_state",
    );
}

fn timesteps(io: &SafetensorsFile) -> Vec<f32> {
    io.read_f32("t").unwrap()
}

#[test]
fn tiny_unets_match_diffusers() {
    let io = SafetensorsFile::open(fixture("unet_tiny_io.safetensors")).unwrap();
    for dev in test_devices() {
        let before = clearpaint_core::kernels::launches();
        let ctx = load_tensor::<3>(&io, "context", &dev.device);
        for name in ["inpaint", "linear"] {
            let loaded =
                unet::load_folder(fixture(&format!("unet_tiny_{name}")), &dev.device).unwrap();
            assert!(loaded.report.is_complete(), "{}", loaded.report);
            for tag in ["8", "odd"] {
                let x = load_tensor::<4>(&io, &format!("{name}_x_{tag}"), &dev.device);
                let y = loaded.model.forward(x, &timesteps(&io), &ctx);
                check4(
                    &dev,
                    &format!("UNet {name} {tag}"),
                    y,
                    &io,
                    &format!("{name}_y_{tag}"),
                );
            }
        }
        // On wgpu every ResNet's GroupNorm+SiLU ran as the fused kernel.
        let launched = clearpaint_core::kernels::launches() - before;
        if dev.name == "wgpu" {
            assert!(launched > 20, "only {launched} kernel launches on wgpu");
        } else {
            assert_eq!(launched, 0);
        }
    }
}

#[test]
fn sd15_inpainting_unet_from_an_f16_folder_matches_diffusers() {
    let io = SafetensorsFile::open(fixture("unet_sd15_inpaint_io.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The real layout: diffusers key names, float16, in diffusion_pytorch_model.fp16.safetensors.
    let (unet_dir, config) = write_sd15_inpaint_unet(dir.path());
    assert_eq!(config.in_channels, 9);
    assert_eq!(config.block_out_channels, vec![320, 640, 1280, 1280]);
    let n_tensors = io.read_ints("n_tensors").unwrap()[0] as usize;
    for dev in test_devices() {
        let loaded = unet::load_folder(&unet_dir, &dev.device).unwrap();
        assert!(loaded.report.is_complete(), "{}", loaded.report);
        assert_eq!(loaded.report.loaded, n_tensors, "{}", loaded.report);
        let x = load_tensor::<4>(&io, "x", &dev.device);
        let ctx = load_tensor::<3>(&io, "context", &dev.device);
        let y = loaded.model.forward(x, &io.read_f32("t").unwrap(), &ctx);
        check4(&dev, "SD 1.5 inpainting UNet", y, &io, "y");
    }
}
