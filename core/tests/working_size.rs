//! The model's working resolution: a small mask on a large photo runs at about the model's
//! trained size (not the crop's own), a whole large image is scaled down to it, the result
//! comes back at exactly the input's size with every pixel outside the feathered mask
//! unchanged, `native` keeps diffusers' behaviour, and the resize round trip is measured.

use clearpaint_core::device;
use clearpaint_core::pipelines::inpaint::{
    self, DecoderChoice, InpaintModels, InpaintRequest, Region, WorkingSize,
};
use clearpaint_core::pipelines::region;
use clearpaint_core::progress::{CancelToken, NoProgress};
use clearpaint_core::testing::fixture;
use image::{GrayImage, Luma, Rgba, RgbaImage};

/// tiny_sd_inpaint9 with `sample_size` 64 in its UNet config (SD 1.x's: 512 pixels).
fn sd_sized_model(dir: &std::path::Path) -> std::path::PathBuf {
    let src = fixture("tiny_sd_inpaint9");
    let model = dir.join("model");
    for sub in ["", "unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
        std::fs::create_dir_all(model.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), model.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let cfg = model.join("unet/config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["sample_size"] = 64.into();
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    model
}

fn photo(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w as f32;
        let fy = y as f32 / h as f32;
        let r = 128.0 + 100.0 * (fx * 9.0).sin() * (fy * 5.0).cos();
        let g = 60.0 + 150.0 * fy;
        let b = 200.0 - 120.0 * fx + 20.0 * ((x / 7 + y / 5) % 3) as f32;
        Rgba([r as u8, g as u8, b as u8, 255])
    })
}

fn rect_mask(w: u32, h: u32, (x0, y0, mw, mh): (u32, u32, u32, u32)) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let inside = (x0..x0 + mw).contains(&x) && (y0..y0 + mh).contains(&y);
        Luma([if inside { 255 } else { 0 }])
    })
}

fn request() -> InpaintRequest {
    InpaintRequest {
        prompt: "a stone".into(),
        steps: 2,
        seed: 4,
        decoder: DecoderChoice::Standard,
        ..InpaintRequest::default()
    }
}

/// Every pixel the feathered paste-back mask leaves at 0 equals the input.
fn assert_outside_unchanged(out: &RgbaImage, input: &RgbaImage, mask: &GrayImage, blur: u32) {
    let soft = region::feather(mask, blur);
    let w = input.width();
    let mut checked = 0u64;
    for (x, y, p) in out.enumerate_pixels() {
        if soft[(y * w + x) as usize] <= 0.0 {
            assert_eq!(
                p,
                input.get_pixel(x, y),
                "({x}, {y}) changed outside the mask"
            );
            checked += 1;
        }
    }
    assert!(checked > (w as u64 * input.height() as u64) / 2);
}

#[test]
fn a_small_mask_on_a_large_photo_runs_near_the_models_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let model = sd_sized_model(dir.path());
    let cpu = device::cpu();
    let models = InpaintModels::load(&model, None, DecoderChoice::Standard, &cpu).unwrap();
    let (w, h) = (3000, 2000);
    let input = photo(w, h);
    let mask = rect_mask(w, h, (1400, 900, 100, 80));
    let req = request();
    let out = inpaint::run(
        &models,
        &input,
        &mask,
        &req,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(out.image.dimensions(), (w, h));
    // The crop is the mask's box plus 32 px: 164x144, scaled by ~3.3 to about 512x512.
    assert_eq!(out.region, (1368, 868, 164, 144));
    assert_eq!(out.work_size, (544, 480));
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("ran at 544x480") && n.contains("164x144")),
        "{:?}",
        out.notes
    );
    let params = inpaint::a1111_parameters(&req, &models, out.work_size.0, out.work_size.1);
    assert!(
        params.contains("Size: 544x480") && params.contains("Inpaint area: Auto"),
        "{params}"
    );
    assert_outside_unchanged(&out.image, &input, &mask, req.mask_blur);

    // native: the crop's own size, padded to a multiple of 8 (diffusers' behaviour).
    let native = InpaintRequest {
        size: WorkingSize::Native,
        ..request()
    };
    let out = inpaint::run(
        &models,
        &input,
        &mask,
        &native,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(out.work_size, (168, 144));
    assert_outside_unchanged(&out.image, &input, &mask, req.mask_blur);

    // An exact square size: the 164x144 crop grows to 164x164 (nothing stretched).
    let exact = InpaintRequest {
        size: WorkingSize::Exact(512, 512),
        ..request()
    };
    let out = inpaint::run(
        &models,
        &input,
        &mask,
        &exact,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(out.region, (1368, 858, 164, 164));
    assert_eq!(out.work_size, (512, 512));
    assert_outside_unchanged(&out.image, &input, &mask, req.mask_blur);
}

#[test]
fn a_whole_large_image_is_scaled_down_to_the_models_resolution_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = sd_sized_model(dir.path());
    let cpu = device::cpu();
    let models = InpaintModels::load(&model, None, DecoderChoice::Standard, &cpu).unwrap();
    let (w, h) = (1800, 1200);
    let input = photo(w, h);
    let mask = rect_mask(w, h, (300, 200, 900, 600));
    let req = InpaintRequest {
        region: Region::Full,
        ..request()
    };
    let out = inpaint::run(
        &models,
        &input,
        &mask,
        &req,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(out.image.dimensions(), (w, h));
    // 1800x1200 scaled by sqrt(512² / (1800·1200)) ≈ 0.35: 624x416.
    assert_eq!(out.work_size, (624, 416));
    assert_outside_unchanged(&out.image, &input, &mask, req.mask_blur);
    // An exact size runs at exactly that size.
    let exact = InpaintRequest {
        size: "640x448".parse().unwrap(),
        ..req
    };
    let out = inpaint::run(
        &models,
        &input,
        &mask,
        &exact,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(out.work_size, (640, 448));
    assert_eq!(out.image.dimensions(), (w, h));
}

#[test]
fn working_sizes_parse_and_choose() {
    use region::working_size;
    assert_eq!(working_size(WorkingSize::Auto, 500, 520, 512), None);
    assert_eq!(
        working_size(WorkingSize::Auto, 160, 128, 512),
        Some((576, 456))
    );
    assert_eq!(working_size(WorkingSize::Native, 160, 128, 512), None);
    assert_eq!(
        working_size(WorkingSize::Exact(512, 512), 512, 512, 512),
        None
    );
    assert_eq!(
        "768x512".parse::<WorkingSize>(),
        Ok(WorkingSize::Exact(768, 512))
    );
    for bad in ["0x8", "100x100", "8", "axb", "8192x8"] {
        let e = bad.parse::<WorkingSize>().unwrap_err();
        assert!(e.contains(bad.split('x').next().unwrap()), "{bad}: {e}");
    }
}

/// Down to the working size and back up, on a photo-like region: the loss the resize adds
/// where the feathered paste-back blends (the unmasked pixels themselves are kept exactly).
#[test]
fn resize_round_trip_is_measured() {
    let input = photo(1800, 1200);
    let mask = rect_mask(1800, 1200, (0, 0, 1, 1));
    for (rect, target) in [
        ((0, 0, 1800, 1200), (624, 416)),
        ((600, 400, 160, 128), (568, 456)),
    ] {
        let (work, _) = region::resized_region(&input, &mask, rect, target);
        let back = region::resize_back(&work, rect.2, rect.3);
        let orig = image::imageops::crop_imm(&input, rect.0, rect.1, rect.2, rect.3).to_image();
        let mse: f64 = back
            .pixels()
            .zip(orig.pixels())
            .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as f64 - b[c] as f64).powi(2)))
            .sum::<f64>()
            / (rect.2 as f64 * rect.3 as f64 * 3.0);
        let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10();
        eprintln!(
            "round trip {}x{} -> {}x{}: PSNR {psnr:.1} dB",
            rect.2, rect.3, target.0, target.1
        );
        assert!(psnr > 25.0, "{psnr}");
    }
}

#[test]
fn color_match_changes_only_the_repainted_area_and_is_recorded() {
    use clearpaint_core::pipelines::inpaint::ColorMatch;
    let cpu = device::cpu();
    let models = InpaintModels::load(
        &fixture("tiny_sd_inpaint9"),
        None,
        DecoderChoice::Standard,
        &cpu,
    )
    .unwrap();
    let input = photo(64, 48);
    let mask = rect_mask(64, 48, (16, 12, 24, 20));
    let off = request();
    let a = inpaint::run(
        &models,
        &input,
        &mask,
        &off,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    let on = InpaintRequest {
        color_match: ColorMatch::MeanStd,
        ..request()
    };
    let b = inpaint::run(
        &models,
        &input,
        &mask,
        &on,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_ne!(a.image, b.image);
    assert_outside_unchanged(&b.image, &input, &mask, on.mask_blur);
    let params = inpaint::a1111_parameters(&on, &models, 64, 48);
    assert!(params.contains("Color match: mean-std"), "{params}");
    assert!(
        "rgb"
            .parse::<ColorMatch>()
            .unwrap_err()
            .contains("mean-std")
    );
}
