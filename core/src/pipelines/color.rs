//! Colour match of a repainted area to its surroundings (A1111's colour correction, IOPaint's
//! `sd_match_histograms`): the generated pixels under the mask take the per-channel colour
//! statistics of the region's unmasked pixels, by mean and standard deviation or by histogram.

use image::{GrayImage, RgbaImage};

/// How the repainted area's colours are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMatch {
    Off,
    /// Per channel: the masked pixels' mean and standard deviation to the surroundings'.
    MeanStd,
    /// Per channel: the masked pixels' histogram to the surroundings' (CDF matching).
    Histogram,
}

impl std::str::FromStr for ColorMatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(ColorMatch::Off),
            "mean-std" => Ok(ColorMatch::MeanStd),
            "histogram" => Ok(ColorMatch::Histogram),
            _ => Err(format!(
                "color match '{s}': expected off, mean-std or histogram"
            )),
        }
    }
}

/// The bounds a mean-std match may scale a channel's spread by.
const MAX_SPREAD: f64 = 2.0;

/// Matches `generated` (the region's result, region coordinates) under the mask to the
/// unmasked pixels of `image` within `rect`; nothing changes when either side is empty.
pub fn color_match(
    generated: &mut RgbaImage,
    image: &RgbaImage,
    mask: &GrayImage,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
    mode: ColorMatch,
) {
    if mode == ColorMatch::Off {
        return;
    }
    let mut target = [[0u64; 256]; 3];
    let mut reference = [[0u64; 256]; 3];
    for y in 0..rh {
        for x in 0..rw {
            let masked = mask.get_pixel(rx + x, ry + y)[0] > 0;
            let (hist, p) = if masked {
                (&mut target, generated.get_pixel(x, y))
            } else {
                (&mut reference, image.get_pixel(rx + x, ry + y))
            };
            for c in 0..3 {
                hist[c][p[c] as usize] += 1;
            }
        }
    }
    if target[0].iter().sum::<u64>() == 0 || reference[0].iter().sum::<u64>() == 0 {
        return;
    }
    let maps: Vec<[u8; 256]> = (0..3)
        .map(|c| match mode {
            ColorMatch::Histogram => histogram_map(&target[c], &reference[c]),
            _ => mean_std_map(&target[c], &reference[c]),
        })
        .collect();
    for y in 0..rh {
        for x in 0..rw {
            if mask.get_pixel(rx + x, ry + y)[0] > 0 {
                let p = generated.get_pixel_mut(x, y);
                for c in 0..3 {
                    p[c] = maps[c][p[c] as usize];
                }
            }
        }
    }
}

fn stats(h: &[u64; 256]) -> (f64, f64) {
    let n = h.iter().sum::<u64>() as f64;
    let mean = h
        .iter()
        .enumerate()
        .map(|(v, &k)| v as f64 * k as f64)
        .sum::<f64>()
        / n;
    let var = h
        .iter()
        .enumerate()
        .map(|(v, &k)| (v as f64 - mean).powi(2) * k as f64)
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

fn mean_std_map(target: &[u64; 256], reference: &[u64; 256]) -> [u8; 256] {
    let (mt, st) = stats(target);
    let (mr, sr) = stats(reference);
    let gain = if st > 1e-6 {
        (sr / st).clamp(1.0 / MAX_SPREAD, MAX_SPREAD)
    } else {
        1.0
    };
    std::array::from_fn(|v| ((v as f64 - mt) * gain + mr).round().clamp(0.0, 255.0) as u8)
}

/// Each target level to the reference level at the same cumulative fraction.
fn histogram_map(target: &[u64; 256], reference: &[u64; 256]) -> [u8; 256] {
    let cdf = |h: &[u64; 256]| {
        let n = h.iter().sum::<u64>() as f64;
        let mut acc = 0u64;
        h.map(|k| {
            acc += k;
            acc as f64 / n
        })
    };
    let (ct, cr) = (cdf(target), cdf(reference));
    std::array::from_fn(|v| {
        let f = ct[v];
        cr.iter().position(|&r| r >= f - 1e-12).unwrap_or(255) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured picture, a masked square, and a fill with a deliberate colour cast.
    fn scene() -> (RgbaImage, GrayImage, RgbaImage) {
        let img = RgbaImage::from_fn(96, 80, |x, y| {
            let t = ((x * 7 + y * 13) % 23) as u8;
            image::Rgba([90 + t, 120 + t / 2, 60 + 2 * t, 255])
        });
        let mask = GrayImage::from_fn(96, 80, |x, y| {
            image::Luma([if (30..66).contains(&x) && (20..60).contains(&y) {
                255
            } else {
                0
            }])
        });
        let mut fill = img.clone();
        for p in fill.pixels_mut() {
            p[0] = p[0].saturating_add(45);
            p[2] = p[2].saturating_sub(30);
        }
        (img, mask, fill)
    }

    /// Mean absolute difference of the masked fill's mean colour to the surroundings'.
    fn mean_colour_error(fill: &RgbaImage, img: &RgbaImage, mask: &GrayImage) -> f64 {
        let mean = |pick: &dyn Fn(u32, u32) -> Option<[u8; 4]>| {
            let mut s = [0f64; 3];
            let mut n = 0.0;
            for y in 0..80 {
                for x in 0..96 {
                    if let Some(p) = pick(x, y) {
                        (0..3).for_each(|c| s[c] += p[c] as f64);
                        n += 1.0;
                    }
                }
            }
            s.map(|v| v / n)
        };
        let m = |x, y| mask.get_pixel(x, y)[0] > 0;
        let inside = mean(&|x, y| m(x, y).then(|| fill.get_pixel(x, y).0));
        let outside = mean(&|x, y| (!m(x, y)).then(|| img.get_pixel(x, y).0));
        (0..3).map(|c| (inside[c] - outside[c]).abs()).sum::<f64>() / 3.0
    }

    #[test]
    fn a_colour_cast_in_the_fill_is_removed_and_off_changes_nothing() {
        let (img, mask, fill) = scene();
        let before = mean_colour_error(&fill, &img, &mask);
        let mut off = fill.clone();
        color_match(&mut off, &img, &mask, (0, 0, 96, 80), ColorMatch::Off);
        assert_eq!(off, fill);
        for mode in [ColorMatch::MeanStd, ColorMatch::Histogram] {
            let mut g = fill.clone();
            color_match(&mut g, &img, &mask, (0, 0, 96, 80), mode);
            let after = mean_colour_error(&g, &img, &mask);
            eprintln!("{mode:?}: mean colour error {before:.1} -> {after:.2}");
            assert!(
                before > 20.0 && after < before * 0.1,
                "{mode:?}: {before} -> {after}"
            );
            // Pixels outside the mask are not touched.
            for (x, y, p) in g.enumerate_pixels() {
                if mask.get_pixel(x, y)[0] == 0 {
                    assert_eq!(p, fill.get_pixel(x, y));
                }
            }
        }
    }
}
