//! Paint-by-Example against diffusers (make_example_fixtures.py): CLIP's preprocessing of an
//! exemplar that must be resized and cropped, the tiny image encoder, the whole pipeline on the
//! tiny folder (three schedulers, guidance on and off, diffusers' VAE decode and the asymmetric
//! decoder conditioned on the image and mask), the encoder at CLIP ViT-L/14's real widths, and
//! the errors for a folder of the wrong kind.

use burn::tensor::Tensor;
use clearpaint_core::device;
use clearpaint_core::models::clip_image::ClipImageProcessor;
use clearpaint_core::models::clip_vision::ClipVisionConfig;
use clearpaint_core::models::paint_by_example::{self, PaintByExampleImageEncoder};
use clearpaint_core::pipelines::example::{self, ExampleModels};
use clearpaint_core::pipelines::inpaint::{DecoderChoice, InpaintModels, InpaintRequest, Region};
use clearpaint_core::progress::{CancelToken, NoProgress};
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::testing::{
    assert_close, fixture, pipeline_inputs, rel_err, to_vec, write_formula_weights_as,
};
use clearpaint_core::weights::SafetensorsFile;

fn io() -> SafetensorsFile {
    SafetensorsFile::open(fixture("example_io.safetensors")).unwrap()
}

/// The `[h, w, 3]` bytes under `key` as an image.
fn rgb(io: &SafetensorsFile, key: &str) -> image::RgbaImage {
    let e = io.entry(key).unwrap();
    let (h, w) = (e.shape[0] as u32, e.shape[1] as u32);
    let v = io.read_ints(key).unwrap();
    image::RgbaImage::from_fn(w, h, |x, y| {
        let i = ((y * w + x) * 3) as usize;
        image::Rgba([v[i] as u8, v[i + 1] as u8, v[i + 2] as u8, 255])
    })
}

fn max_diff(img: &image::RgbaImage, want: &[i64]) -> i64 {
    img.pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .zip(want)
        .map(|(v, w)| (v as i64 - w).abs())
        .max()
        .unwrap()
}

#[test]
fn preprocessing_and_tiny_encoder_match_transformers_and_diffusers() {
    let io = io();
    let cpu = device::cpu();
    let models =
        ExampleModels::load(&fixture("tiny_pbe"), None, DecoderChoice::Standard, &cpu).unwrap();
    let ex = rgb(&io, "exemplar");
    let pixels = models.processor.preprocess(&ex, &cpu.device);
    assert_eq!(pixels.dims(), [1, 3, 32, 32]);
    let want = io.read_f32("exemplar.pixels").unwrap();
    let worst = to_vec(pixels.clone())
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "pixel values differ by {worst}");
    let emb = models.image_encoder.forward(pixels);
    assert_eq!(emb.dims(), [1, 1, 16]);
    let want_emb = io.read_f32("exemplar.embedding").unwrap();
    assert_close("embedding", &to_vec(emb), &want_emb, 1e-4);
    let uncond = io.read_f32("exemplar.uncond").unwrap();
    assert_close(
        "uncond",
        &to_vec(models.image_encoder.uncond()),
        &uncond,
        1e-6,
    );
}

#[test]
fn pipeline_matches_diffusers_for_schedulers_guidance_and_decoders() {
    let io = io();
    let pio = SafetensorsFile::open(fixture("pipeline_io.safetensors")).unwrap();
    let (image, mask, latents) = pipeline_inputs(&pio);
    let ex = rgb(&io, "exemplar");
    let cpu = device::cpu();
    let mut worst = Vec::new();
    for (decoder, dname) in [
        (DecoderChoice::Asymmetric, "asymmetric"),
        (DecoderChoice::Standard, "standard"),
    ] {
        let asym = fixture("vae_asym_tiny");
        let vae = (decoder == DecoderChoice::Asymmetric).then_some(asym.as_path());
        let models = ExampleModels::load(&fixture("tiny_pbe"), vae, decoder, &cpu).unwrap();
        for kind in [
            SchedulerKind::Pndm,
            SchedulerKind::Ddim,
            SchedulerKind::Euler,
        ] {
            for g in [1.0, 5.0] {
                let req = InpaintRequest {
                    steps: 4,
                    guidance: g,
                    scheduler: kind,
                    latents: Some(latents.clone()),
                    region: Region::Full,
                    paste_back: false,
                    decoder,
                    ..InpaintRequest::default()
                };
                let out = example::run(
                    &models,
                    &image,
                    &mask,
                    &ex,
                    &req,
                    &NoProgress,
                    &CancelToken::new(),
                )
                .unwrap();
                let key = format!("out.{}.{g:?}.{dname}", kind.name());
                let max = max_diff(&out.image, &io.read_ints(&key).unwrap());
                eprintln!("{key}: max diff {max}/255");
                worst.push((key, max));
            }
        }
    }
    assert!(
        worst.iter().all(|(_, m)| *m <= 1),
        "max pixel differences {worst:?}"
    );
}

/// Our module paths to diffusers' keys (the mapper's feed-forward numbering).
fn diffusers_key(k: &str) -> String {
    k.replace("example_mapper.", "mapper.")
        .replace(".ff.proj.", ".ff.net.0.proj.")
        .replace(".ff.out.", ".ff.net.2.")
}

#[test]
fn vit_l14_encoder_matches_diffusers_at_real_widths() {
    let io = io();
    let cpu = device::cpu();
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("image_encoder");
    std::fs::create_dir_all(&enc_dir).unwrap();
    let config = ClipVisionConfig::vit_l14();
    std::fs::write(
        enc_dir.join("config.json"),
        r#"{"architectures": ["PaintByExampleImageEncoder"], "hidden_size": 1024,
            "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 224, "patch_size": 14, "projection_dim": 768,
            "model_type": "clip_vision_model"}"#,
    )
    .unwrap();
    write_formula_weights_as(
        PaintByExampleImageEncoder::new(&config, &cpu.device),
        &enc_dir.join("model.safetensors"),
        safetensors::Dtype::F16,
        diffusers_key,
    );
    let enc = paint_by_example::load_folder(&enc_dir, &cpu.device).unwrap();
    assert_eq!(enc.config, config);
    assert!(enc.report.is_complete(), "{:?}", enc.report);
    let pixels = ClipImageProcessor::default().preprocess(&rgb(&io, "vitl.exemplar"), &cpu.device);
    assert_eq!(pixels.dims(), [1, 3, 224, 224]);
    let sums = to_vec(pixels.clone().sum_dim(2).sum_dim(3));
    let want_sums = io.read_f32("vitl.pixels.sum").unwrap();
    assert!(
        rel_err(&sums, &want_sums) < 1e-5,
        "pixel sums {sums:?} vs {want_sums:?}"
    );
    let emb: Tensor<3> = enc.model.forward(pixels);
    let want = io.read_f32("vitl.embedding").unwrap();
    assert_close("ViT-L/14 embedding", &to_vec(emb), &want, 1e-4);
}

#[test]
fn a_folder_of_the_wrong_kind_names_what_is_missing() {
    let cpu = device::cpu();
    let e = ExampleModels::load(
        &fixture("tiny_sd_inpaint9"),
        None,
        DecoderChoice::Standard,
        &cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("tiny_sd_inpaint9") && e.contains("no image_encoder/"),
        "{e}"
    );
    let e = InpaintModels::load(&fixture("tiny_pbe"), None, DecoderChoice::Standard, &cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("tiny_pbe") && e.contains("--example"), "{e}");
    // A 4-channel UNet in a Paint-by-Example folder.
    let dir = tempfile::tempdir().unwrap();
    for sub in ["image_encoder", "vae", "feature_extractor"] {
        copy_dir(&fixture("tiny_pbe").join(sub), &dir.path().join(sub));
    }
    copy_dir(
        &fixture("tiny_sd_inpaint4").join("unet"),
        &dir.path().join("unet"),
    );
    let e = ExampleModels::load(dir.path(), None, DecoderChoice::Standard, &cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unet") && e.contains("takes 9"), "{e}");
}

#[test]
fn processor_configs_in_either_form_and_bad_ones() {
    // Fantasy-Studio/Paint-by-Example's file: numbers for size and crop_size.
    let old: ClipImageProcessor = serde_json::from_str(
        r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "feature_extractor_type": "CLIPFeatureExtractor", "resample": 3, "size": 224,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
    )
    .unwrap();
    old.validate(224).unwrap();
    let img = image::RgbaImage::from_fn(61, 47, |x, y| {
        image::Rgba([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8, 255])
    });
    let cpu = device::cpu();
    let a = to_vec(old.preprocess(&img, &cpu.device));
    let b = to_vec(ClipImageProcessor::default().preprocess(&img, &cpu.device));
    assert_eq!(a, b);
    let e = old.validate(32).unwrap_err();
    assert!(e.contains("224x224") && e.contains("32x32"), "{e}");
    let bad: ClipImageProcessor =
        serde_json::from_str(r#"{"resample": 0, "image_std": [0, 1, 1]}"#).unwrap();
    assert!(bad.validate(224).unwrap_err().contains("resample 0"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn weights_check_validates_a_paint_by_example_folder() {
    use clearpaint_core::models::check::{ModelKind, check_path};
    let parts = check_path(&fixture("tiny_pbe"), None);
    for p in &parts {
        assert!(
            p.problems.is_empty(),
            "{}: {:?}",
            p.path.display(),
            p.problems
        );
    }
    assert!(
        parts
            .iter()
            .any(|p| p.kind == Some(ModelKind::ImageEncoder))
    );
    // A tensor of the wrong shape in image_encoder/ is named.
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("image_encoder");
    copy_dir(&fixture("tiny_pbe").join("image_encoder"), &enc);
    let cfg = std::fs::read_to_string(enc.join("config.json")).unwrap();
    std::fs::write(
        enc.join("config.json"),
        cfg.replace("\"projection_dim\": 16", "\"projection_dim\": 24"),
    )
    .unwrap();
    let parts = check_path(&enc, None);
    let problems: Vec<&String> = parts.iter().flat_map(|p| &p.problems).collect();
    assert!(
        problems.iter().any(|p| p.contains("proj_out.weight")),
        "{problems:?}"
    );
}

#[test]
fn transformers_4_files_with_vision_model_names_load_the_same() {
    let cpu = device::cpu();
    let src = fixture("tiny_pbe").join("image_encoder");
    let file = SafetensorsFile::open(src.join("model.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let tower = [
        "model.embeddings.",
        "model.encoder.",
        "model.pre_layrnorm.",
        "model.post_layernorm.",
    ];
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .keys()
        .map(|k| {
            let e = file.entry(k).unwrap();
            let name = if tower.iter().any(|p| k.starts_with(p)) {
                k.replacen("model.", "model.vision_model.", 1)
            } else {
                k.to_string()
            };
            (
                name,
                e.dtype,
                e.shape.clone(),
                file.raw(k).unwrap().to_vec(),
            )
        })
        .collect();
    let ids: Vec<u8> = (0..17i64).flat_map(|i| i.to_le_bytes()).collect();
    tensors.push((
        "model.vision_model.embeddings.position_ids".into(),
        safetensors::Dtype::I64,
        vec![1, 17],
        ids,
    ));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    let old = paint_by_example::load_folder(dir.path(), &cpu.device).unwrap();
    let new = paint_by_example::load_folder(&src, &cpu.device).unwrap();
    let io = io();
    let pixels = Tensor::<4>::from_data(
        burn::tensor::TensorData::new(io.read_f32("exemplar.pixels").unwrap(), [1, 3, 32, 32]),
        &cpu.device,
    );
    let a = to_vec(old.model.forward(pixels.clone()));
    assert_eq!(a, to_vec(new.model.forward(pixels)));
    assert_close(
        "embedding",
        &a,
        &io.read_f32("exemplar.embedding").unwrap(),
        1e-4,
    );
}
