//! Masks and working regions, shared by the pipelines: the mask at the image's size, the
//! region the model sees (whole image or the mask's bounding box plus padding), the region
//! padded to the latent grid, and the result placed back with a feathered paste.

use image::{GrayImage, RgbaImage};

/// The error of an empty mask.
pub const EMPTY_MASK: &str =
    "the mask is empty: nothing to repaint (white = repaint, black = keep)";

/// Which part of the image the model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Crop when the mask covers a small part of a large image, else the whole image.
    Auto,
    /// The whole image.
    Full,
    /// The mask's bounding box plus padding (A1111 "only masked", IOPaint "crop").
    Crop,
}

/// Binary mask (true = repaint) at the image's size: a mask of another size is resized
/// (nearest) with a note; values >= 128 repaint.
pub fn prepare_mask(
    mask: &GrayImage,
    width: u32,
    height: u32,
    notes: &mut Vec<String>,
) -> GrayImage {
    let m = if mask.dimensions() != (width, height) {
        notes.push(format!(
            "mask is {}x{}, image is {width}x{height}: the mask was resized to the image",
            mask.width(),
            mask.height()
        ));
        image::imageops::resize(mask, width, height, image::imageops::FilterType::Nearest)
    } else {
        mask.clone()
    };
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if m.get_pixel(x, y)[0] >= 128 { 255 } else { 0 }])
    })
}

/// The request's mask at the image's size: resized (with a note) or, when resizing is off,
/// refused if its size differs.
pub fn request_mask(
    mask: &GrayImage,
    iw: u32,
    ih: u32,
    resize: bool,
    notes: &mut Vec<String>,
) -> Result<GrayImage, String> {
    if !resize && mask.dimensions() != (iw, ih) {
        return Err(format!(
            "the mask is {}x{} but the image is {iw}x{ih} (mask resizing is off)",
            mask.width(),
            mask.height()
        ));
    }
    Ok(prepare_mask(mask, iw, ih, notes))
}

/// Bounding box `(x0, y0, x1, y1)` (exclusive) of the repaint pixels.
pub fn bbox(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    (x0 != u32::MAX).then_some((x0, y0, x1, y1))
}

/// The working region for `region` mode.
pub fn choose_region(
    mode: Region,
    mask: &GrayImage,
    padding: u32,
) -> Result<(u32, u32, u32, u32), String> {
    let (w, h) = mask.dimensions();
    let Some((x0, y0, x1, y1)) = bbox(mask) else {
        return Err(EMPTY_MASK.into());
    };
    let cx0 = x0.saturating_sub(padding);
    let cy0 = y0.saturating_sub(padding);
    let cx1 = (x1 + padding).min(w);
    let cy1 = (y1 + padding).min(h);
    let crop = (cx0, cy0, cx1 - cx0, cy1 - cy0);
    let full = (0, 0, w, h);
    Ok(match mode {
        Region::Full => full,
        Region::Crop => crop,
        Region::Auto => {
            let crop_area = crop.2 as u64 * crop.3 as u64;
            if (w as u64 * h as u64) > 4 * crop_area && w.max(h) > 768 {
                crop
            } else {
                full
            }
        }
    })
}

/// Gaussian feather of a binary mask (separable, radius `r` pixels), values in [0, 1].
pub fn feather(mask: &GrayImage, r: u32) -> Vec<f32> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let mut v: Vec<f32> = mask.pixels().map(|p| p[0] as f32 / 255.0).collect();
    if r == 0 {
        return v;
    }
    let sigma = r as f32 / 2.0;
    let k: Vec<f32> = (-(r as i32)..=r as i32)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|x| x / sum).collect();
    let r = r as i32;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, kv) in k.iter().enumerate() {
                let xx = (x as i32 + i as i32 - r).clamp(0, w as i32 - 1) as usize;
                acc += kv * v[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, kv) in k.iter().enumerate() {
                let yy = (y as i32 + i as i32 - r).clamp(0, h as i32 - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            v[y * w + x] = acc;
        }
    }
    // Never lighten a repaint pixel: the feather only grows outward.
    for (o, p) in v.iter_mut().zip(mask.pixels()) {
        if p[0] > 0 {
            *o = 1.0;
        }
    }
    v
}

/// Puts `generated` (the region's result, at least `rw x rh`) into a copy of `image`, keeping
/// alpha; with `paste_back = Some(blur)`, blends through the mask feathered over `blur` pixels
/// so unmasked pixels stay exact.
pub fn place_back(
    image: &RgbaImage,
    mask: &GrayImage,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
    generated: &RgbaImage,
    paste_back: Option<u32>,
) -> RgbaImage {
    let iw = image.width();
    let soft = paste_back.map(|blur| feather(mask, blur));
    let mut out = image.clone();
    for y in 0..rh {
        for x in 0..rw {
            let (gx, gy) = (rx + x, ry + y);
            let g = generated.get_pixel(x, y);
            let src = *image.get_pixel(gx, gy);
            let px = match &soft {
                None => image::Rgba([g[0], g[1], g[2], src[3]]),
                Some(m) => {
                    let a = m[(gy * iw + gx) as usize];
                    if a <= 0.0 {
                        src
                    } else {
                        let mix = |c: usize| {
                            (src[c] as f32 * (1.0 - a) + g[c] as f32 * a)
                                .round()
                                .clamp(0.0, 255.0) as u8
                        };
                        image::Rgba([mix(0), mix(1), mix(2), src[3]])
                    }
                }
            };
            out.put_pixel(gx, gy, px);
        }
    }
    out
}

/// The working region `(rx, ry, rw, rh)` of `image` and `mask`, padded to a multiple of 8 (the
/// image edge-replicated, the padding kept, i.e. not repainted).
pub fn padded_region(
    image: &RgbaImage,
    mask: &GrayImage,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
) -> (RgbaImage, GrayImage) {
    let (pw, ph) = (rw.next_multiple_of(8), rh.next_multiple_of(8));
    let work = RgbaImage::from_fn(pw, ph, |x, y| {
        *image.get_pixel(rx + x.min(rw - 1), ry + y.min(rh - 1))
    });
    let work_mask = GrayImage::from_fn(pw, ph, |x, y| {
        if x < rw && y < rh {
            *mask.get_pixel(rx + x, ry + y)
        } else {
            image::Luma([0])
        }
    });
    (work, work_mask)
}

/// The size the model runs a working region at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkingSize {
    /// About the model's trained area, the region's aspect kept (sides multiples of 8); a
    /// region already within 0.8x–1.25x of it runs at its own size.
    Auto,
    /// The region's own size, padded to a multiple of 8 (diffusers' behaviour).
    Native,
    /// Exactly `W x H` (multiples of 8).
    Exact(u32, u32),
}

/// The largest side `--size WxH` accepts.
pub const MAX_WORK_SIDE: u32 = 4096;

impl std::str::FromStr for WorkingSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => return Ok(WorkingSize::Auto),
            "native" => return Ok(WorkingSize::Native),
            _ => {}
        }
        let bad = || format!("size '{s}': expected auto, native or WxH (multiples of 8)");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
        if w == 0 || h == 0 || w % 8 != 0 || h % 8 != 0 || w.max(h) > MAX_WORK_SIDE {
            return Err(format!(
                "size {w}x{h}: each side must be a multiple of 8 between 8 and {MAX_WORK_SIDE}"
            ));
        }
        Ok(WorkingSize::Exact(w, h))
    }
}

impl std::fmt::Display for WorkingSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkingSize::Auto => f.write_str("auto"),
            WorkingSize::Native => f.write_str("native"),
            WorkingSize::Exact(w, h) => write!(f, "{w}x{h}"),
        }
    }
}

/// The size a `rw x rh` region is resized to before encoding, or `None` to run it at its own
/// size; `model_px` is the side the model was trained at.
pub fn working_size(size: WorkingSize, rw: u32, rh: u32, model_px: u32) -> Option<(u32, u32)> {
    match size {
        WorkingSize::Native => None,
        WorkingSize::Exact(w, h) => Some((w, h)).filter(|&t| t != (rw, rh)),
        WorkingSize::Auto => {
            let scale = (model_px as f64 * model_px as f64 / (rw as f64 * rh as f64)).sqrt();
            if (0.8..=1.25).contains(&scale) {
                return None;
            }
            let side = |v: u32| {
                (((v as f64 * scale) / 8.0).round() as u32).clamp(1, MAX_WORK_SIDE / 8) * 8
            };
            Some((side(rw), side(rh)))
        }
    }
}

/// The working region resized to `tw x th`: the image with Lanczos, the mask so that any
/// repaint pixel under an output pixel marks it (a thin stroke is never lost).
pub fn resized_region(
    image: &RgbaImage,
    mask: &GrayImage,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
    (tw, th): (u32, u32),
) -> (RgbaImage, GrayImage) {
    use image::imageops::{FilterType, crop_imm, resize};
    let crop = crop_imm(image, rx, ry, rw, rh).to_image();
    let crop_mask = crop_imm(mask, rx, ry, rw, rh).to_image();
    let work = resize(&crop, tw, th, FilterType::Lanczos3);
    let soft = resize(&crop_mask, tw, th, FilterType::Triangle);
    let work_mask = GrayImage::from_fn(tw, th, |x, y| {
        let (sx, sy) = ((x * rw) / tw, (y * rh) / th);
        let covered = soft.get_pixel(x, y)[0] > 0 || crop_mask.get_pixel(sx, sy)[0] > 0;
        image::Luma([if covered { 255 } else { 0 }])
    });
    (work, work_mask)
}

/// The decoded working region back at the region's size (Lanczos).
pub fn resize_back(generated: &RgbaImage, rw: u32, rh: u32) -> RgbaImage {
    image::imageops::resize(generated, rw, rh, image::imageops::FilterType::Lanczos3)
}

/// A crop grown to the aspect of `tw x th` inside an `iw x ih` image (A1111's
/// `expand_crop_region`): the short side grows about its centre, shifted back inside the image,
/// clamped where the image ends. A whole-image region is returned as is.
pub fn expand_to_aspect(
    (rx, ry, rw, rh): (u32, u32, u32, u32),
    (tw, th): (u32, u32),
    iw: u32,
    ih: u32,
) -> (u32, u32, u32, u32) {
    // One axis of the grow: `(start, len)` to `want` within `0..limit`.
    let grow = |start: u32, len: u32, want: f64, limit: u32| -> (u32, u32) {
        let diff = (want - len as f64).max(0.0) as i64;
        let (mut a, mut b) = (
            start as i64 - diff / 2,
            (start + len) as i64 + diff - diff / 2,
        );
        if b > limit as i64 {
            a -= b - limit as i64;
            b = limit as i64;
        }
        if a < 0 {
            b = (b - a).min(limit as i64);
            a = 0;
        }
        (a as u32, (b - a) as u32)
    };
    if (rw, rh) == (iw, ih) || rw == 0 || rh == 0 {
        return (rx, ry, rw, rh);
    }
    let target = tw as f64 / th as f64;
    if rw as f64 / rh as f64 > target {
        let (y, h) = grow(ry, rh, rw as f64 / target, ih);
        (rx, y, rw, h)
    } else {
        let (x, w) = grow(rx, rw, rh as f64 * target, iw);
        (x, ry, w, rh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_grow_to_the_target_aspect_inside_the_image() {
        // 100x50 crop to a square target: height grows to 100 about the centre.
        assert_eq!(
            expand_to_aspect((200, 200, 100, 50), (512, 512), 1000, 800),
            (200, 175, 100, 100)
        );
        // At the top edge it shifts down instead of leaving the image.
        assert_eq!(
            expand_to_aspect((200, 0, 100, 50), (512, 512), 1000, 800),
            (200, 0, 100, 100)
        );
        // Narrow crop to a wide target, against the right edge.
        assert_eq!(
            expand_to_aspect((950, 100, 50, 100), (768, 512), 1000, 800),
            (850, 100, 150, 100)
        );
        // An image too small for the aspect: clamped to the image.
        assert_eq!(
            expand_to_aspect((0, 10, 100, 20), (512, 512), 100, 60),
            (0, 0, 100, 60)
        );
        // The whole image is left alone.
        assert_eq!(
            expand_to_aspect((0, 0, 100, 60), (512, 512), 100, 60),
            (0, 0, 100, 60)
        );
    }
}
