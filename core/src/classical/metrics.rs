//! Quality measures of a fill against the ground truth, inside the hole: PSNR, and the
//! Laplacian's variance (how much fine detail; a fill's over the truth's says how sharp it is).

use image::{GrayImage, RgbaImage};

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

/// Variance of the 4-neighbour Laplacian of the luma over the hole's pixels (borders of the
/// image excluded).
pub fn laplacian_variance(img: &RgbaImage, mask: &GrayImage) -> f64 {
    let (w, h) = img.dimensions();
    let luma = |x: u32, y: u32| {
        let p = img.get_pixel(x, y);
        0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
    };
    let mut v = Vec::new();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            if mask.get_pixel(x, y)[0] >= 128 {
                v.push(
                    luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)
                        - 4.0 * luma(x, y),
                );
            }
        }
    }
    if v.is_empty() {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sharpness measure: a flat fill has none, a checkerboard a known amount.
    #[test]
    fn laplacian_variance_of_flat_and_checkerboard() {
        let mask = GrayImage::from_pixel(8, 8, image::Luma([255]));
        let flat = RgbaImage::from_pixel(8, 8, image::Rgba([90, 90, 90, 255]));
        assert_eq!(laplacian_variance(&flat, &mask), 0.0);
        let board = RgbaImage::from_fn(8, 8, |x, y| {
            let v = if (x + y) % 2 == 0 { 100 } else { 0 };
            image::Rgba([v, v, v, 255])
        });
        // Interior Laplacians are ±400 (luma 100 vs four 0s, or 0 vs four 100s), in equal
        // numbers (18 each on the 6x6 interior): variance 400².
        let v = laplacian_variance(&board, &mask);
        assert!((v - 160_000.0).abs() < 1.0, "{v}");
    }
}
