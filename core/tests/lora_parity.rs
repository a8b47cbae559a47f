//! LoRA / LyCORIS merging vs A1111's Lora extension (and diffusers' `fuse_lora` for the kohya
//! and PEFT files), tools/reference/make_lora_fixtures.py: kohya LoRA + LoCon (with a Tucker
//! `lora_mid` and a 4-channel LoRA on the 9-channel conv_in), PEFT, older diffusers, LoHa,
//! LoKr and two LoRAs at once, at separate text-encoder and UNet weights, on flex and wgpu.

use burn::tensor::{Int, Tensor, TensorData};
use clearpaint_core::lora::{self, LoraSpec, keys::Net};
use clearpaint_core::models::{clip, unet};
use clearpaint_core::testing::{assert_close, fixture, load_tensor, test_devices, to_vec};
use clearpaint_core::weights::SafetensorsFile;

/// (file, text-encoder weight, UNet weight) of each LoRA in a case.
type Parts = &'static [(&'static str, f64, f64)];

const CASES: [(&str, Parts); 7] = [
    ("locon", &[("locon", 0.7, 1.3)]),
    ("kohya_attn", &[("kohya_attn", 0.8, 0.8)]),
    ("peft", &[("peft", 1.0, 0.6)]),
    ("old_diffusers", &[("old_diffusers", 1.0, 1.0)]),
    ("loha", &[("loha", 0.9, 0.6)]),
    ("lokr", &[("lokr", 1.1, 1.2)]),
    ("locon_loha", &[("locon", 0.5, 0.5), ("loha", 1.0, 1.0)]),
];

fn specs(parts: &[(&str, f64, f64)]) -> Vec<LoraSpec> {
    parts
        .iter()
        .map(|(name, te, unet)| LoraSpec {
            path: fixture(&format!("lora/{name}.safetensors")),
            te: *te,
            unet: *unet,
        })
        .collect()
}

#[test]
fn merged_networks_match_a1111_and_leave_the_base_model_unchanged() {
    let io = SafetensorsFile::open(fixture("lora_io.safetensors")).unwrap();
    let base = fixture("tiny_sd_inpaint9");
    for dev in test_devices() {
        let d = &dev.device;
        let u = unet::load_folder(base.join("unet"), d).unwrap().model;
        let te = clip::load_folder(base.join("text_encoder"), d)
            .unwrap()
            .model;
        let x = load_tensor::<4>(&io, "x", d);
        let ctx = load_tensor::<3>(&io, "context", d);
        let t = io.read_f32("t").unwrap();
        let ids: Vec<i64> = io.read_ints("ids").unwrap();
        let ids = || Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, 77]), d);
        for (case, parts) in CASES {
            let specs = specs(parts);
            let files = lora::open_all(&specs).unwrap();
            let pu = lora::patch_net(&u, &files, Net::Unet)
                .unwrap()
                .expect("UNet layers");
            let what = format!("UNet with {case} on {}", dev.name);
            let y = pu.forward(x.clone(), &t, &ctx);
            assert_close(
                &what,
                &to_vec(y),
                &io.read_f32(&format!("unet_{case}")).unwrap(),
                dev.tolerance,
            );
            let text_ref = io.read_f32(&format!("text_{case}")).unwrap();
            let text = match lora::patch_net(&te, &files, Net::Text).unwrap() {
                Some(pt) => pt.forward(ids()),
                None => te.forward(ids()),
            };
            let what = format!("text encoder with {case} on {}", dev.name);
            assert_close(&what, &to_vec(text), &text_ref, dev.tolerance);
        }
        // The loaded networks are the base ones still: the next run starts clean.
        let y = u.forward(x.clone(), &t, &ctx);
        assert_close(
            "base UNet after the LoRAs",
            &to_vec(y),
            &io.read_f32("unet_base").unwrap(),
            dev.tolerance,
        );
        let e = te.forward(ids());
        assert_close(
            "base text encoder after",
            &to_vec(e),
            &io.read_f32("text_base").unwrap(),
            dev.tolerance,
        );
    }
}

fn write_lora(dir: &std::path::Path, name: &str, tensors: &[(&str, Vec<usize>)]) -> LoraSpec {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, s)| {
            let n: usize = s.iter().product();
            (k.to_string(), s.clone(), vec![0u8; 4 * n])
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(k, s, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (k.clone(), v.unwrap())
        })
        .collect();
    let path = dir.join(name);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    LoraSpec {
        path,
        te: 1.0,
        unet: 1.0,
    }
}

#[test]
fn a_lora_for_another_model_or_of_another_format_is_an_error_naming_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = burn::tensor::Device::flex();
    let u = unet::load_folder(fixture("tiny_sd_inpaint9/unet"), &d)
        .unwrap()
        .model;
    // SDXL's kohya names (LDM-style blocks) match no layer of an SD 1.x UNet.
    let k = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q";
    let sdxl = write_lora(
        dir.path(),
        "sdxl.safetensors",
        &[
            (&format!("{k}.lora_down.weight"), vec![2, 16]),
            (&format!("{k}.lora_up.weight"), vec![16, 2]),
        ],
    );
    let files = lora::open_all(std::slice::from_ref(&sdxl)).unwrap();
    let e = lora::patch_net(&u, &files, Net::Unet)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sdxl.safetensors") && e.contains(&k[10..]) && e.contains("match no layer"),
        "{e}"
    );
    // The right layer with the wrong widths (an SD 2.x LoRA: 1024-wide context).
    let k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k";
    let wide = write_lora(
        dir.path(),
        "wide.safetensors",
        &[
            (&format!("{k}.lora_down.weight"), vec![2, 1024]),
            (&format!("{k}.lora_up.weight"), vec![16, 2]),
        ],
    );
    let files = lora::open_all(std::slice::from_ref(&wide)).unwrap();
    let e = lora::patch_net(&u, &files, Net::Unet)
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong size") && e.contains("attn2_to_k"), "{e}");
    // Not a LoRA at all: a UNet's own weights.
    let other = write_lora(
        dir.path(),
        "unet.safetensors",
        &[("conv_in.weight", vec![4, 9, 3, 3])],
    );
    let e = lora::open_all(std::slice::from_ref(&other))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unet.safetensors") && e.contains("conv_in.weight"),
        "{e}"
    );
}
