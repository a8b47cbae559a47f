//! Inpainting without model weights.
//!
//! * [`telea`]: fast-marching fill (Telea 2004): pixels are filled from the boundary inwards,
//!   each as a weighted average of already-known neighbours (direction, distance and level-set
//!   weights). Right for thin masks: scratches, text, wires.
//! * [`patchmatch`]: exemplar-based completion (Wexler et al. 2007 with Barnes et al.'s
//!   PatchMatch nearest-neighbour search): coarse-to-fine over an image pyramid, alternating a
//!   randomized nearest-neighbour field (random init, propagation, random search) from patches
//!   touching the hole to patches entirely outside it, and patch voting. Its final fill is
//!   composed ([`compose`]) of a smooth structure layer (Telea, the membrane and the thin plate
//!   of [`smooth`]) and the exemplar's fine detail. Right for objects and textures.
//! * [`fill`] picks one: Telea when no hole pixel is more than a few pixels from the boundary.
//!
//! Pixels outside the mask are never changed; alpha is kept.

use image::{GrayImage, RgbaImage};

mod compose;
mod metrics;
mod patchmatch;
mod smooth;
mod telea;

use compose::compose;
pub use metrics::{laplacian_variance, psnr_in_mask};
use patchmatch::patchmatch;
use smooth::{membrane, thin_plate};
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
        _ => {
            let l = layers_of(&src, &hole);
            // Patches can match no better than the image's grain allows.
            let scale = TRUST_COST + GRAIN_COSTS * grain(&src, &hole);
            let trust: Vec<f32> = l.cost.iter().map(|&d| (-d / scale).exp()).collect();
            compose(&l.structure, &l.exemplar, &l.voted, &hole, &trust)
        }
    };
    to_rgba(image, &hole, &filled)
}

/// Patch cost (mean squared difference per channel, 0..255 scale) at which the exemplar's
/// low frequencies are trusted with weight 1/e.
const TRUST_COST: f32 = 2.0;

/// How many times the image's grain (see [`grain`]) is added to [`TRUST_COST`].
const GRAIN_COSTS: f32 = 1.0;

/// The image's fine grain: the median over known pixels of the squared detail band (what a
/// Gaussian of `SPLIT_SIGMA` removes), per channel; sensor noise and film grain, which no
/// patch can match.
fn grain(src: &Img, hole: &[bool]) -> f32 {
    let lo = compose::blur(src, compose::SPLIT_SIGMA);
    let mut v: Vec<f32> = (0..src.px.len())
        .filter(|&i| !hole[i])
        .map(|i| {
            (0..3)
                .map(|c| (src.px[i][c] - lo.px[i][c]).powi(2))
                .sum::<f32>()
                / 3.0
        })
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// `image` with the hole's pixels taken from `filled`.
fn to_rgba(image: &RgbaImage, hole: &[bool], filled: &Img) -> RgbaImage {
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

/// The layers the PatchMatch method's fill is composed of.
struct FillLayers {
    /// Telea, the membrane and the thin plate, averaged.
    structure: Img,
    /// The exemplar (PatchMatch) fill.
    exemplar: Img,
    /// The exemplar's voted fill (before its last pass copies patch centres).
    voted: Img,
    /// Per pixel, the exemplar's patch cost.
    cost: Vec<f32>,
}

const TELEA_RADIUS: i32 = 3;

fn layers_of(src: &Img, hole: &[bool]) -> FillLayers {
    // The exemplar and the structure are independent: one core each where there are two.
    let ((exemplar, voted, cost), structure) =
        rayon::join(|| patchmatch(src, hole), || structure_of(src, hole));
    FillLayers {
        structure,
        exemplar,
        voted,
        cost,
    }
}

/// Telea, the membrane (started from Telea) and the thin plate (from the membrane), averaged.
fn structure_of(src: &Img, hole: &[bool]) -> Img {
    let te = telea(src, hole, TELEA_RADIUS);
    let mem = membrane(src, hole, &te);
    let plate = thin_plate(src, hole, &mem);
    let mut structure = te;
    for ((s, m), p) in structure.px.iter_mut().zip(&mem.px).zip(&plate.px) {
        for c in 0..3 {
            s[c] = (s[c] + m[c] + p[c]) / 3.0;
        }
    }
    structure
}

/// The PatchMatch method's layers as images (structure, exemplar) and the exemplar's patch
/// cost per pixel, for benchmarks that show what each contributes.
pub fn fill_layers(image: &RgbaImage, mask: &GrayImage) -> (RgbaImage, RgbaImage, Vec<f32>) {
    let hole = hole_of(mask);
    let src = Img::from_rgba(image);
    let l = layers_of(&src, &hole);
    (
        to_rgba(image, &hole, &l.structure),
        to_rgba(image, &hole, &l.exemplar),
        l.cost,
    )
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
