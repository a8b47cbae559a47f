//! `clearpaint bench --workload classical-photos`: the classical engine's quality on
//! photographs and textures (`tools/reference/fixtures/photos`, written by
//! `make_photo_inpaint_fixtures.py` from scikit-image's sample data), next to OpenCV's Telea and
//! xphoto FSR (fast, best) filled on the same inputs. Per image: PSNR inside the hole against
//! the ground truth, and the Laplacian-variance ratio inside the hole (fill / ground truth:
//! 1 = as sharp as the truth, near 0 = blurred flat).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clearpaint_core::classical::{Method, fill, laplacian_variance, psnr_in_mask};
use image::RgbaImage;

/// The fixture images and whether each is a photo (else a texture).
const IMAGES: [(&str, bool); 9] = [
    ("astronaut", true),
    ("coffee", true),
    ("chelsea", true),
    ("rocket", true),
    ("camera", true),
    ("coins", true),
    ("brick", false),
    ("grass", false),
    ("gravel", false),
];

/// The methods compared: ours, then the stored baselines (file suffix).
const BASELINES: [(&str, &str); 3] = [
    ("Telea", "_telea"),
    ("FSR fast", "_fsr_fast"),
    ("FSR best", "_fsr_best"),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures/photos")
}

fn open_rgba(p: &Path) -> Result<RgbaImage> {
    Ok(clearpaint_core::imaging::load(p)?.rgba)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Runs the comparison and prints the table; returns the JSON rows.
pub fn classical_photos() -> Result<Vec<serde_json::Value>> {
    let d = dir();
    println!(
        "classical fill on {} (PSNR in the hole, dB / Laplacian-variance ratio)",
        d.display()
    );
    println!(
        "{:10} {:>14} {:>14} {:>14} {:>14}   ours s",
        "image", "ours", "Telea", "FSR fast", "FSR best"
    );
    let mut rows = Vec::new();
    // Per method: (photo PSNRs, photo ratios, texture PSNRs, texture ratios).
    let mut agg = vec![(Vec::new(), Vec::new(), Vec::new(), Vec::new()); 4];
    for (name, photo) in IMAGES {
        let truth = open_rgba(&d.join(format!("{name}.png")))
            .with_context(|| "run tools/reference/make_photo_inpaint_fixtures.py")?;
        let mask = clearpaint_core::imaging::load(d.join(format!("{name}_mask.png")))?;
        let mask = image::DynamicImage::ImageRgba8(mask.rgba).to_luma8();
        let t = Instant::now();
        let ours = fill(&truth, &mask, Method::PatchMatch);
        let secs = t.elapsed().as_secs_f64();
        let mut fills = vec![("ours", ours)];
        for (label, suffix) in BASELINES {
            fills.push((label, open_rgba(&d.join(format!("{name}{suffix}.png")))?));
        }
        let sharp = laplacian_variance(&truth, &mask).max(1e-9);
        let mut line = format!("{name:10}");
        for (k, (label, img)) in fills.iter().enumerate() {
            let psnr = psnr_in_mask(img, &truth, &mask);
            let ratio = laplacian_variance(img, &mask) / sharp;
            line += &format!(" {psnr:8.2}/{ratio:5.2}");
            let a = &mut agg[k];
            if photo {
                a.0.push(psnr);
                a.1.push(ratio);
            } else {
                a.2.push(psnr);
                a.3.push(ratio);
            }
            rows.push(serde_json::json!({
                "workload": "classical-photos", "image": name, "method": label,
                "photo": photo, "psnr_db": psnr, "laplacian_variance_ratio": ratio,
            }));
        }
        println!("{line}   {secs:6.3}");
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut line = format!("{:10}", "photos");
    for a in &agg {
        line += &format!(" {:8.2}/{:5.2}", mean(&a.0), median(a.1.clone()));
    }
    println!("{line}   (mean PSNR / median ratio)");
    let mut line = format!("{:10}", "textures");
    for a in &agg {
        line += &format!(" {:8.2}/{:5.2}", mean(&a.2), median(a.3.clone()));
    }
    println!("{line}");
    Ok(rows)
}
