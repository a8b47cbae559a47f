//! `clearpaint bench --workload batch-weather`: images per second of batch weather over a
//! folder of JPEG frames (1280x720, BDD100K's size) with the real-size AU-GAN (random weights)
//! at the default 256x512, through the same pipeline `batch weather` runs, once without
//! prefetch (read, run, write in turn) and once with it.

use std::time::Instant;

use anyhow::{Result, anyhow};
use clearpaint_core::device::Selected;
use clearpaint_core::imaging::{self, Loaded};
use clearpaint_core::models::augan::{AuganConfig, AuganGenerator};
use clearpaint_core::pipelines::weather::{self, DEFAULT_SIZE, WeatherRequest};
use image::{Rgba, RgbaImage};

use super::Item;
use super::pipeline::{self, Outcome, Stages};
use super::store::{Created, Place};

/// Frames in the benchmark folder.
const FRAMES: usize = 12;

/// A street-like frame: smooth gradients, edges and noise, so JPEG and PNG work as on photos.
fn frame(k: u32) -> RgbaImage {
    let mut seed = 0x9E37_79B9u32.wrapping_mul(k + 1);
    RgbaImage::from_fn(1280, 720, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed % 24) as f32;
        let sky = if y < 300 { 40.0 } else { 10.0 };
        let v = ((x as f32 / 37.0 + k as f32).sin() * 30.0 + sky + n) as u8;
        Rgba([v, v / 2 + (x % 64) as u8, (y / 4) as u8, 255])
    })
}

/// Runs the benchmark; prints one line per setting and returns (setting, prefetch, images/s,
/// seconds). Settings: the model, and "io-only" (the same reads, decodes and two PNG writes per
/// frame with the model left out: the ceiling a fast GPU would leave).
pub fn weather(selected: &Selected) -> Result<Vec<(&'static str, usize, f64, f64)>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("frames");
    std::fs::create_dir_all(&input)?;
    for k in 0..FRAMES {
        let img = image::DynamicImage::ImageRgba8(frame(k as u32)).to_rgb8();
        img.save_with_format(input.join(format!("f{k:03}.jpg")), image::ImageFormat::Jpeg)
            .map_err(|e| anyhow!("benchmark frames: {e}"))?;
    }
    let config = AuganConfig {
        ngf: 64,
        transfer: true,
        uncertainty: true,
    };
    let model = AuganGenerator::new(config, &selected.device);
    let req = WeatherRequest {
        size: DEFAULT_SIZE,
        uncertainty: true,
    };
    let input = Place::Local(input);
    let keys = input.list_images(false)?;
    // One warm-up image (kernels compiled, buffers allocated) before any timing.
    let warm = imaging::load_bytes("warm-up", &input.read(&keys[0])?)?;
    weather::run(&model, &selected.device, &warm.rgba, &req)?;
    let mut results = Vec::new();
    for (setting, prefetch) in [("model", 0), ("model", 4), ("io-only", 0), ("io-only", 4)] {
        let out = Place::Local(dir.path().join(format!("{setting}{prefetch}")));
        let items: Vec<Item> = keys
            .iter()
            .map(|k| Item {
                key: k.clone(),
                outs: vec![
                    super::output_key(k, ""),
                    super::output_key(k, "_uncertainty"),
                ],
                mask: None,
            })
            .collect();
        let read = |item: &Item| -> Result<Option<Loaded>> {
            Ok(Some(imaging::load_bytes(
                &input.show(&item.key),
                &input.read(&item.key)?,
            )?))
        };
        let mut compute = |_: &Item, img: Loaded| {
            if setting == "io-only" {
                return Ok((Some(img.rgba.clone()), img.rgba));
            }
            let r = weather::run(&model, &selected.device, &img.rgba, &req)?;
            Ok((r.sigma_image(), r.image))
        };
        let save = |item: &Item, (sigma, img): (Option<RgbaImage>, RgbaImage)| {
            if let Some(s) = sigma {
                out.create(
                    &item.outs[1],
                    imaging::encode_png(&s, false, &[]).map_err(anyhow::Error::msg)?,
                )?;
            }
            out.create(
                &item.outs[0],
                imaging::encode_png(&img, false, &[]).map_err(anyhow::Error::msg)?,
            )
        };
        let failures = std::sync::Mutex::new(Vec::new());
        let record = |item: &Item, r: Result<Outcome>| {
            if !matches!(r, Ok(Outcome::Saved(Created::Written))) {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("{}: {r:?}", item.key));
            }
        };
        let t = Instant::now();
        pipeline::run(
            &items,
            prefetch,
            Stages::new(&read, &mut compute, &save, &record),
        );
        let secs = t.elapsed().as_secs_f64();
        let failures = failures.into_inner().unwrap_or_default();
        if let Some(f) = failures.first() {
            anyhow::bail!("batch-weather benchmark: {f}");
        }
        let ips = items.len() as f64 / secs;
        println!(
            "batch-weather  {setting:7} prefetch {prefetch}: {ips:7.3} images/s ({} JPEG \
             1280x720 frames, {secs:.1} s, image + uncertainty PNGs)",
            items.len()
        );
        results.push((setting, prefetch, ips, secs));
    }
    Ok(results)
}
