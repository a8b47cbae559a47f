//! Outpainting: the canvas extended by a border that is masked for repainting and pre-filled
//! for the model to start from (A1111's "masked content" choices): the image's edge stretched
//! outward, the classical fill, or seeded noise. The extended image and mask then go through
//! the inpaint pipeline unchanged, so its diffusers parity carries over.

use image::{GrayImage, Luma, Rgba, RgbaImage};

/// Pixels added on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extend {
    pub left: u32,
    pub top: u32,
    pub right: u32,
    pub bottom: u32,
}

/// The most pixels one side may grow by.
pub const MAX_EXTEND: u32 = 4096;

impl std::str::FromStr for Extend {
    type Err = String;

    /// `N` (every side) or `LEFT,TOP,RIGHT,BOTTOM`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("extend '{s}': expected N or LEFT,TOP,RIGHT,BOTTOM (pixels)");
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let e = match v[..] {
            [n] => Extend {
                left: n,
                top: n,
                right: n,
                bottom: n,
            },
            [left, top, right, bottom] => Extend {
                left,
                top,
                right,
                bottom,
            },
            _ => return Err(bad()),
        };
        if [e.left, e.top, e.right, e.bottom]
            .iter()
            .any(|&p| p > MAX_EXTEND)
        {
            return Err(format!("extend '{s}': at most {MAX_EXTEND} pixels a side"));
        }
        if e == Extend::default() {
            return Err(format!("extend '{s}': nothing to extend"));
        }
        Ok(e)
    }
}

impl std::fmt::Display for Extend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.left, self.top, self.right, self.bottom
        )
    }
}

/// What the new border starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefill {
    /// The nearest edge pixel of the image (A1111's "fill" in spirit; keeps colours continuous).
    Edge,
    /// The classical engine's fill (PatchMatch / Telea) of the border.
    Classical,
    /// Uniform noise from the seed (A1111's "latent noise", in pixels).
    Noise,
}

impl std::str::FromStr for Prefill {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "edge" => Ok(Prefill::Edge),
            "classical" => Ok(Prefill::Classical),
            "noise" => Ok(Prefill::Noise),
            _ => Err(format!(
                "extend fill '{s}': expected edge, classical or noise"
            )),
        }
    }
}

/// The extended image (border pre-filled, alpha opaque there) and mask (the border white,
/// plus `mask`'s own repaint pixels inside, when given). Sizes are checked by the caller.
pub fn extend(
    image: &RgbaImage,
    mask: Option<&GrayImage>,
    e: Extend,
    prefill: Prefill,
    seed: u64,
) -> (RgbaImage, GrayImage) {
    let (w, h) = image.dimensions();
    let (nw, nh) = (w + e.left + e.right, h + e.top + e.bottom);
    let inside =
        |x: u32, y: u32| (e.left..e.left + w).contains(&x) && (e.top..e.top + h).contains(&y);
    let out_mask = GrayImage::from_fn(nw, nh, |x, y| {
        if !inside(x, y) {
            Luma([255])
        } else {
            mask.map(|m| *m.get_pixel(x - e.left, y - e.top))
                .unwrap_or(Luma([0]))
        }
    });
    let edge = RgbaImage::from_fn(nw, nh, |x, y| {
        let sx = (x as i64 - e.left as i64).clamp(0, w as i64 - 1) as u32;
        let sy = (y as i64 - e.top as i64).clamp(0, h as i64 - 1) as u32;
        let p = *image.get_pixel(sx, sy);
        if inside(x, y) {
            p
        } else {
            Rgba([p[0], p[1], p[2], 255])
        }
    });
    let filled = match prefill {
        Prefill::Edge => edge,
        Prefill::Classical => {
            let border =
                GrayImage::from_fn(nw, nh, |x, y| Luma([if inside(x, y) { 0 } else { 255 }]));
            crate::classical::fill(&edge, &border, crate::classical::Method::Auto)
        }
        Prefill::Noise => {
            let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            };
            let mut img = edge;
            for (x, y, p) in img.enumerate_pixels_mut() {
                if !inside(x, y) {
                    *p = Rgba([next(), next(), next(), 255]);
                }
            }
            img
        }
    };
    (filled, out_mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture() -> RgbaImage {
        RgbaImage::from_fn(40, 30, |x, y| {
            Rgba([(x * 6) as u8, (y * 8) as u8, 100, 200])
        })
    }

    #[test]
    fn each_prefill_keeps_the_original_and_masks_only_the_border() {
        let img = picture();
        let e: Extend = "8,0,16,4".parse().unwrap();
        for prefill in [Prefill::Edge, Prefill::Classical, Prefill::Noise] {
            let (out, mask) = extend(&img, None, e, prefill, 3);
            assert_eq!(out.dimensions(), (64, 34));
            for (x, y, p) in out.enumerate_pixels() {
                let orig = (8..48).contains(&x) && y < 30;
                assert_eq!(
                    mask.get_pixel(x, y)[0] == 0,
                    orig,
                    "{prefill:?} mask at ({x}, {y})"
                );
                if orig {
                    assert_eq!(p, img.get_pixel(x - 8, y));
                } else {
                    assert_eq!(p[3], 255);
                }
            }
            let corner = *out.get_pixel(63, 33);
            match prefill {
                Prefill::Edge => assert_eq!(corner, Rgba([234, 232, 100, 255])),
                Prefill::Noise => {
                    assert_ne!(out, extend(&img, None, e, prefill, 4).0, "the seed matters");
                    assert_eq!(out, extend(&img, None, e, prefill, 3).0);
                }
                Prefill::Classical => assert_ne!(out, extend(&img, None, e, Prefill::Edge, 3).0),
            }
        }
        // A mask of the original area is kept inside the extended mask.
        let m = GrayImage::from_fn(40, 30, |x, _| Luma([if x < 5 { 255 } else { 0 }]));
        let (_, mask) = extend(&img, Some(&m), e, Prefill::Edge, 0);
        assert_eq!(mask.get_pixel(8, 10)[0], 255);
        assert_eq!(mask.get_pixel(20, 10)[0], 0);
    }

    #[test]
    fn extends_parse() {
        assert_eq!("16".parse::<Extend>().unwrap().to_string(), "16,16,16,16");
        for bad in ["", "1,2", "a", "0", "5000,0,0,0", "-1"] {
            assert!(bad.parse::<Extend>().is_err(), "{bad}");
        }
        assert!(
            "blur"
                .parse::<Prefill>()
                .unwrap_err()
                .contains("edge, classical or noise")
        );
    }
}
