//! LoRA / LyCORIS merging vs A1111's Lora extension (and diffusers' `fuse_lora` for the kohya
//! and PEFT files), tools/reference/make_lora_fixtures.py: kohya LoRA + LoCon (with a Tucker
//! `lora_mid` and a 4-channel LoRA on the 9-channel conv_in), PEFT, older diffusers, LoHa,
//! LoKr and two LoRAs at once, at separate text-encoder and UNet weights, on flex and wgpu.

use burn::tensor::{Int, Tensor, TensorData};
use clearpaint_core::lora::{self, LoraSpec, keys::Net};
use clearpaint_core::models::{clip, unet};
use clearpaint_core::testing::{
    assert_close, fixture, formula_value, load_tensor, test_devices, to_vec,
    write_formula_weights_as,
};
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

/// The four formula LoRA files of `lora_real_keys.json` (kohya, PEFT, LoHa, LoKr: each tensor
/// from `formula_value` or the listed constant), written into `dir`.
fn formula_loras(dir: &std::path::Path) -> Vec<LoraSpec> {
    type Entry = (String, Vec<usize>, Option<f32>);
    let listing: std::collections::BTreeMap<String, Vec<Entry>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("lora_real_keys.json")).unwrap())
            .unwrap();
    let mut specs = Vec::new();
    for (format, entries) in &listing {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = entries
            .iter()
            .map(|(k, s, c)| {
                let v = c.map_or_else(|| formula_value(k, s), |c| vec![c]);
                (
                    k.clone(),
                    s.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(k, s, b)| {
                let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
                (k.clone(), v.unwrap())
            })
            .collect();
        let path = dir.join(format!("{format}.safetensors"));
        safetensors::serialize_to_file(views, None, &path).unwrap();
        specs.push(LoraSpec {
            path,
            te: 0.6,
            unet: 0.8,
        });
    }
    assert_eq!(specs.len(), 4);
    specs
}

#[test]
fn real_width_unet_and_text_encoder_with_four_lora_formats_match_a1111() {
    let io = SafetensorsFile::open(fixture("lora_io.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = burn::tensor::Device::flex();
    let spec = formula_loras(dir.path());
    let files = lora::open_all(&spec).unwrap();
    // The SD 1.5 inpainting UNet: the real config, formula weights in an f16 diffusers folder.
    let (unet_dir, _) = clearpaint_core::testing::write_sd15_inpaint_unet(dir.path());
    let u = unet::load_folder(&unet_dir, &d).unwrap().model;
    let pu = lora::patch_net(&u, &files, Net::Unet).unwrap().unwrap();
    drop(u);
    let y = pu.forward(
        load_tensor::<4>(&io, "real_x", &d),
        &io.read_f32("real_t").unwrap(),
        &load_tensor::<3>(&io, "real_context", &d),
    );
    assert_close(
        "SD 1.5 UNet with kohya, PEFT, LoHa and LoKr files",
        &to_vec(y),
        &io.read_f32("real_unet").unwrap(),
        1e-4,
    );
    drop(pu);
    // SD 1.x's CLIP ViT-L text encoder, formula weights (transformers 4 names).
    let c: clip::ClipTextConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
        "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5
    }))
    .unwrap();
    let te_dir = dir.path().join("text_encoder");
    std::fs::create_dir(&te_dir).unwrap();
    std::fs::write(
        te_dir.join("config.json"),
        serde_json::to_string(&serde_json::json!({
            "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
            "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5
        }))
        .unwrap(),
    )
    .unwrap();
    write_formula_weights_as(
        clip::ClipTextModel::new(&c, &d),
        &te_dir.join("model.safetensors"),
        safetensors::Dtype::F32,
        |k| k.to_string(),
    );
    let te = clip::load_folder(&te_dir, &d).unwrap().model;
    let pt = lora::patch_net(&te, &files, Net::Text).unwrap().unwrap();
    let ids: Vec<i64> = io.read_ints("real_ids").unwrap();
    let e = pt.forward(Tensor::<2, Int>::from_data(
        TensorData::new(ids, [1, 77]),
        &d,
    ));
    assert_close(
        "CLIP ViT-L with kohya, PEFT, LoHa and LoKr files",
        &to_vec(e),
        &io.read_f32("real_text").unwrap(),
        1e-4,
    );
}

#[test]
fn a_whole_inpaint_with_two_loras_matches_diffusers_within_one_level() {
    use clearpaint_core::pipelines::inpaint::{
        self, DecoderChoice, InpaintModels, InpaintRequest, Region,
    };
    use clearpaint_core::progress::{CancelToken, NoProgress};
    let pio = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let io = SafetensorsFile::open(fixture("lora_io.safetensors")).unwrap();
    let (image, mask, latents) = clearpaint_core::testing::pipeline_inputs(&pio);
    let cpu = clearpaint_core::device::cpu();
    let models = InpaintModels::load(
        &fixture("tiny_sd_inpaint9"),
        None,
        DecoderChoice::Standard,
        &cpu,
    )
    .unwrap();
    let spec = |name: &str, w: f64| LoraSpec {
        path: fixture(&format!("lora/{name}.safetensors")),
        te: w,
        unet: w,
    };
    let req = InpaintRequest {
        prompt: "a red fox in the snow".into(),
        negative_prompt: "blurry".into(),
        steps: 4,
        guidance: 7.5,
        scheduler: clearpaint_core::schedulers::SchedulerKind::Ddim,
        latents: Some(latents),
        region: Region::Full,
        crop_padding: 0,
        mask_blur: 0,
        paste_back: false,
        decoder: DecoderChoice::Standard,
        loras: vec![spec("kohya_attn", 0.5), spec("peft", 1.2)],
        ..InpaintRequest::default()
    };
    let out = inpaint::run(
        &models,
        &image,
        &mask,
        &req,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    let want = io.read_ints("inpaint_two_loras").unwrap();
    let max = out
        .image
        .pixels()
        .enumerate()
        .flat_map(|(i, p)| (0..3).map(move |c| (i, c, p[c])))
        .map(|(i, c, v)| (v as i64 - want[i * 3 + c]).abs())
        .max()
        .unwrap();
    let base = pio.read_ints("out.9.ddim.7.5.standard").unwrap();
    let d = |a: &[i64]| {
        a.iter()
            .zip(&base)
            .map(|(x, y)| (x - y).abs())
            .max()
            .unwrap()
    };
    let ours: Vec<i64> = out
        .image
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .map(i64::from)
        .collect();
    assert!(
        d(&ours) > 10,
        "the LoRAs changed the result by {}/255 only",
        d(&ours)
    );
    eprintln!("two LoRAs, whole inpaint: max diff {max}/255");
    assert!(max <= 1, "max pixel difference {max}/255");
}
