//! Quality of the classical fill, measured: PSNR inside the hole against the ground truth, on
//! textures, periodic patterns, gradients and crops of the sample photo, with masks of several
//! shapes. PatchMatch must beat both a mean-colour fill and Telea's boundary diffusion on the
//! textured images; pixels outside the mask never change.

use clearpaint_core::classical::{Method, fill, mean_fill, psnr_in_mask};
use image::{GrayImage, Luma, Rgba, RgbaImage};

const N: u32 = 96;

fn textured() -> Vec<(&'static str, RgbaImage)> {
    let tile: Vec<[u8; 3]> = {
        let mut s = 12345u32;
        (0..256)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                [(s >> 24) as u8, (s >> 16) as u8, (s >> 8) as u8]
            })
            .collect()
    };
    vec![
        (
            "checkerboard",
            RgbaImage::from_fn(N, N, |x, y| {
                if (x / 8 + y / 8) % 2 == 0 {
                    Rgba([230, 220, 200, 255])
                } else {
                    Rgba([40, 60, 90, 255])
                }
            }),
        ),
        (
            "diagonal stripes",
            RgbaImage::from_fn(N, N, |x, y| {
                if (x + y) / 6 % 2 == 0 {
                    Rgba([200, 50, 50, 255])
                } else {
                    Rgba([250, 240, 230, 255])
                }
            }),
        ),
        (
            "dot grid",
            RgbaImage::from_fn(N, N, |x, y| {
                let (dx, dy) = (x as i32 % 12 - 6, y as i32 % 12 - 6);
                if dx * dx + dy * dy < 10 {
                    Rgba([20, 20, 20, 255])
                } else {
                    Rgba([180, 200, 220, 255])
                }
            }),
        ),
        (
            "tiled noise",
            RgbaImage::from_fn(N, N, |x, y| {
                let c = tile[((y % 16) * 16 + x % 16) as usize];
                Rgba([c[0], c[1], c[2], 255])
            }),
        ),
        (
            "bricks",
            RgbaImage::from_fn(N, N, |x, y| {
                let row = y / 10;
                let off = if row % 2 == 0 { 0 } else { 10 };
                if y % 10 == 0 || (x + off) % 20 == 0 {
                    Rgba([200, 200, 200, 255])
                } else {
                    Rgba([150, 60, 40, 255])
                }
            }),
        ),
    ]
}

fn smooth() -> Vec<(&'static str, RgbaImage)> {
    let sample = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample.png"))
        .unwrap()
        .to_rgba8();
    vec![
        (
            "linear gradient",
            RgbaImage::from_fn(N, N, |x, y| Rgba([(x * 2) as u8, (y * 2) as u8, 128, 255])),
        ),
        (
            "radial gradient",
            RgbaImage::from_fn(N, N, |x, y| {
                let d =
                    (((x as f32 - 48.0).powi(2) + (y as f32 - 48.0).powi(2)).sqrt() * 3.0) as u8;
                Rgba([d, 255 - d, 100, 255])
            }),
        ),
        (
            "sample photo (hills)",
            image::imageops::crop_imm(&sample, 40, 180, N, N).to_image(),
        ),
        (
            "sample photo (sky)",
            image::imageops::crop_imm(&sample, 300, 20, N, N).to_image(),
        ),
    ]
}

fn masks() -> Vec<(&'static str, GrayImage)> {
    vec![
        (
            "rectangle",
            GrayImage::from_fn(N, N, |x, y| {
                Luma([if (30..62).contains(&x) && (36..60).contains(&y) {
                    255
                } else {
                    0
                }])
            }),
        ),
        (
            "circle",
            GrayImage::from_fn(N, N, |x, y| {
                let d = (x as i32 - 50).pow(2) + (y as i32 - 44).pow(2);
                Luma([if d < 15 * 15 { 255 } else { 0 }])
            }),
        ),
        (
            "blob",
            GrayImage::from_fn(N, N, |x, y| {
                let (fx, fy) = (x as f32, y as f32);
                let v = ((fx / 9.0).sin() + (fy / 7.0).cos()) * 8.0 + 18.0;
                let d = ((fx - 48.0).powi(2) + (fy - 48.0).powi(2)).sqrt();
                Luma([if d < v { 255 } else { 0 }])
            }),
        ),
        (
            "scratch",
            GrayImage::from_fn(N, N, |x, y| {
                Luma([
                    if (x as i32 - y as i32).abs() <= 1 && (10..86).contains(&x) {
                        255
                    } else {
                        0
                    },
                ])
            }),
        ),
    ]
}

fn unchanged_outside(a: &RgbaImage, b: &RgbaImage, m: &GrayImage) {
    for ((p, q), k) in a.pixels().zip(b.pixels()).zip(m.pixels()) {
        if k[0] < 128 {
            assert_eq!(p, q, "a pixel outside the mask changed");
        }
    }
}

#[test]
fn patchmatch_beats_mean_and_telea_on_textures() {
    let mut table = Vec::new();
    for (iname, img) in textured() {
        for (mname, mask) in masks().into_iter().filter(|(n, _)| *n != "scratch") {
            let pm = fill(&img, &mask, Method::PatchMatch);
            let te = fill(&img, &mask, Method::Telea);
            let mf = mean_fill(&img, &mask);
            unchanged_outside(&img, &pm, &mask);
            unchanged_outside(&img, &te, &mask);
            let (p, t, m) = (
                psnr_in_mask(&pm, &img, &mask),
                psnr_in_mask(&te, &img, &mask),
                psnr_in_mask(&mf, &img, &mask),
            );
            table.push(format!(
                "{iname:22} {mname:10} patchmatch {p:6.2} dB  telea {t:6.2} dB  mean {m:6.2} dB"
            ));
            assert!(
                p > t + 1.0 && p > m + 1.0,
                "{iname} / {mname}: patchmatch {p:.2} dB, telea {t:.2} dB, mean {m:.2} dB"
            );
        }
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn smooth_images_and_thin_masks_are_filled_well() {
    let mut table = Vec::new();
    for (iname, img) in smooth().into_iter().chain(textured()) {
        for (mname, mask) in masks() {
            let auto = fill(&img, &mask, Method::Auto);
            unchanged_outside(&img, &auto, &mask);
            let mf = mean_fill(&img, &mask);
            let (a, m) = (
                psnr_in_mask(&auto, &img, &mask),
                psnr_in_mask(&mf, &img, &mask),
            );
            table.push(format!(
                "{iname:22} {mname:10} auto {a:6.2} dB  mean {m:6.2} dB"
            ));
            // Never worse than a flat fill of the mean colour.
            assert!(
                a >= m - 0.5,
                "{iname} / {mname}: auto {a:.2} dB < mean {m:.2} dB"
            );
        }
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn a_large_photo_with_a_small_mask_works_on_a_crop() {
    use clearpaint_core::pipelines::inpaint::{InpaintRequest, Region, run_classical};
    let img = RgbaImage::from_fn(4000, 3000, |x, y| {
        Rgba([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 16 + y / 16) % 2 * 200) as u8,
            255,
        ])
    });
    let mask = GrayImage::from_fn(4000, 3000, |x, y| {
        Luma([if (2000..2040).contains(&x) && (1500..1530).contains(&y) {
            255
        } else {
            0
        }])
    });
    let req = InpaintRequest {
        region: Region::Auto,
        mask_blur: 0,
        ..Default::default()
    };
    let out = run_classical(&img, &mask, &req).unwrap();
    assert_eq!(out.image.dimensions(), (4000, 3000));
    let (_, _, w, h) = out.region;
    assert!(w < 400 && h < 400, "worked on {w}x{h}, not a crop");
    unchanged_outside(&img, &out.image, &mask);
}
