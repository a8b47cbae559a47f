//! Inpainting without model weights.
//!
//! * [`telea`]: fast-marching fill (Telea 2004): pixels are filled from the boundary inwards,
//!   each as a weighted average of already-known neighbours (direction, distance and level-set
//!   weights). Right for thin masks: scratches, text, wires.
//! * [`patchmatch`]: exemplar-based completion (Wexler et al. 2007 with Barnes et al.'s
//!   PatchMatch nearest-neighbour search): coarse-to-fine over an image pyramid, alternating a
//!   randomized nearest-neighbour field (random init, propagation, random search) from patches
//!   touching the hole to patches entirely outside it, and patch voting. Right for objects and
//!   textures.
//! * [`fill`] picks one: Telea when no hole pixel is more than a few pixels from the boundary.
//!
//! Pixels outside the mask are never changed; alpha is kept.

use image::{GrayImage, RgbaImage};

mod patchmatch;
mod telea;

use patchmatch::patchmatch;
use telea::telea;

/// Which classical method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Telea for thin masks, PatchMatch otherwise.
    Auto,
    Telea,
    PatchMatch,
}

/// A float RGB image with a hole mask.
#[derive(Clone)]
struct Img {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Img {
    fn from_rgba(img: &RgbaImage) -> Self {
        Img {
            w: img.width() as usize,
            h: img.height() as usize,
            px: img
                .pixels()
                .map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
                .collect(),
        }
    }
}

fn hole_of(mask: &GrayImage) -> Vec<bool> {
    mask.pixels().map(|p| p[0] >= 128).collect()
}

/// Distance (in pixels, city-block approximated by two passes) from each hole pixel to the
/// nearest known pixel; 0 outside the hole.
fn hole_depth(hole: &[bool], w: usize, h: usize) -> Vec<u32> {
    let inf = u32::MAX / 2;
    let mut d: Vec<u32> = hole.iter().map(|&m| if m { inf } else { 0 }).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if x > 0 {
                d[i] = d[i].min(d[i - 1] + 1);
            }
            if y > 0 {
                d[i] = d[i].min(d[i - w] + 1);
            }
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            if x + 1 < w {
                d[i] = d[i].min(d[i + 1] + 1);
            }
            if y + 1 < h {
                d[i] = d[i].min(d[i + w] + 1);
            }
        }
    }
    d
}

/// Fills the masked pixels (mask >= 128) of `image`; everything else is returned unchanged.
pub fn fill(image: &RgbaImage, mask: &GrayImage, method: Method) -> RgbaImage {
    assert_eq!(
        image.dimensions(),
        mask.dimensions(),
        "mask must match the image"
    );
    let hole = hole_of(mask);
    if !hole.iter().any(|&h| h) {
        return image.clone();
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let method = match method {
        Method::Auto => {
            let deepest = hole_depth(&hole, w, h).into_iter().max().unwrap_or(0);
            if deepest <= 3 {
                Method::Telea
            } else {
                Method::PatchMatch
            }
        }
        m => m,
    };
    if hole.iter().all(|&h| h) {
        // Nothing to copy from: a neutral gray.
        let mut out = image.clone();
        for p in out.pixels_mut() {
            p[0] = 128;
            p[1] = 128;
            p[2] = 128;
        }
        return out;
    }
    let src = Img::from_rgba(image);
    let filled = match method {
        Method::Telea => telea(&src, &hole, 5),
        _ => patchmatch(&src, &hole),
    };
    let mut out = image.clone();
    for (i, p) in out.pixels_mut().enumerate() {
        if hole[i] {
            let c = filled.px[i];
            p[0] = c[0].round().clamp(0.0, 255.0) as u8;
            p[1] = c[1].round().clamp(0.0, 255.0) as u8;
            p[2] = c[2].round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The mean colour of the known pixels in every hole pixel (a baseline for quality tests).
pub fn mean_fill(image: &RgbaImage, mask: &GrayImage) -> RgbaImage {
    let hole = hole_of(mask);
    let (mut sum, mut n) = ([0f64; 3], 0f64);
    for (p, &m) in image.pixels().zip(&hole) {
        if !m {
            for c in 0..3 {
                sum[c] += p[c] as f64;
            }
            n += 1.0;
        }
    }
    let mean = sum.map(|s| (s / n.max(1.0)).round() as u8);
    let mut out = image.clone();
    for (p, &m) in out.pixels_mut().zip(&hole) {
        if m {
            p[0] = mean[0];
            p[1] = mean[1];
            p[2] = mean[2];
        }
    }
    out
}

/// PSNR (dB) of `a` against `b` over the pixels where `mask` is set (RGB).
pub fn psnr_in_mask(a: &RgbaImage, b: &RgbaImage, mask: &GrayImage) -> f64 {
    let mut se = 0f64;
    let mut n = 0f64;
    for ((p, q), m) in a.pixels().zip(b.pixels()).zip(mask.pixels()) {
        if m[0] >= 128 {
            for c in 0..3 {
                se += (p[c] as f64 - q[c] as f64).powi(2);
            }
            n += 3.0;
        }
    }
    if se == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / (se / n)).log10()
}
