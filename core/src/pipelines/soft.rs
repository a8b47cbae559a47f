//! Soft masks (`--mask-mode soft`): the mask's grey levels are per-pixel strengths, carried
//! through the denoising loop by differential diffusion (Levin & Fried 2023, "Differential
//! Diffusion: Giving Each Pixel Its Strength"; the reference is the paper's code,
//! exx8/differential-diffusion `SD2/diff_pipe.py`, whose rule diffusers' community
//! differential img2img pipelines and ComfyUI's DifferentialDiffusion node share).
//!
//! A pixel of strength `s` (grey / 255) is held to the original image, noised to the current
//! step, for the first `1 - s` of the run's steps and denoised freely after: at step `k` of
//! `n`, latents where `1 - s > k / n` are replaced by the noised original (step 0 starts from
//! the noised original everywhere). White (1) changes as much as binary inpainting, 0.3 only
//! over the last 30% of the steps, black never. The map reaches the latent grid as the
//! reference resizes it (torchvision `Resize(antialias=None)` on a tensor: bilinear, half-pixel
//! centres, no antialiasing).
//!
//! A 9-channel UNet gets the conditioning diffusers computes from such a mask (binarized at
//! 0.5: grey >= 128 is masked); so does the asymmetric decoder. The working region and the
//! paste-back cover every pixel with a strength above 0. A mask with only black and white has
//! no strengths to give and runs exactly as binary inpainting.

use image::{GrayImage, Luma};

use super::denoise::Release;
use super::inpaint::Rect;
use burn::tensor::{Device, Tensor};

/// How the mask's grey levels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskMode {
    /// Grey >= 128 repaints, the rest is kept (A1111, diffusers).
    #[default]
    Binary,
    /// Grey levels are per-pixel strengths (differential diffusion).
    Soft,
}

impl std::str::FromStr for MaskMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "binary" => Ok(MaskMode::Binary),
            "soft" => Ok(MaskMode::Soft),
            _ => Err(format!("unknown mask mode {s:?} (binary, soft)")),
        }
    }
}

impl std::fmt::Display for MaskMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MaskMode::Binary => "binary",
            MaskMode::Soft => "soft",
        })
    }
}

/// A run's mask at the image's size.
#[derive(Debug, Clone)]
pub struct RunMask {
    /// Binary (0 / 255): the pixels that may change (region, paste-back, colour match).
    pub mask: GrayImage,
    /// Soft mode: the strengths (255 = full), when the mask has grey levels.
    pub strength: Option<GrayImage>,
}

/// The soft mask at the image's size (a mask of another size is resized bilinearly, with a
/// note): binary when it holds only black and white, else its strengths.
pub fn soft_mask(mask: &GrayImage, width: u32, height: u32, notes: &mut Vec<String>) -> RunMask {
    let m = if mask.dimensions() != (width, height) {
        notes.push(format!(
            "mask is {}x{}, image is {width}x{height}: the mask was resized to the image",
            mask.width(),
            mask.height()
        ));
        image::imageops::resize(mask, width, height, image::imageops::FilterType::Triangle)
    } else {
        mask.clone()
    };
    if m.pixels().all(|p| p[0] == 0 || p[0] == 255) {
        return RunMask {
            mask: m,
            strength: None,
        };
    }
    let binary = GrayImage::from_fn(width, height, |x, y| {
        Luma([if m.get_pixel(x, y)[0] > 0 { 255 } else { 0 }])
    });
    RunMask {
        mask: binary,
        strength: Some(m),
    }
}

/// The strengths of the working region: resized to `target` (bilinear) or padded to a
/// multiple of 8 with 0 (the padding is kept), as the region's image.
pub fn work_strength(
    strength: &GrayImage,
    (rx, ry, rw, rh): Rect,
    target: Option<(u32, u32)>,
) -> GrayImage {
    use image::imageops::{FilterType, crop_imm, resize};
    match target {
        Some((tw, th)) => resize(
            &crop_imm(strength, rx, ry, rw, rh).to_image(),
            tw,
            th,
            FilterType::Triangle,
        ),
        None => {
            let (pw, ph) = (rw.next_multiple_of(8), rh.next_multiple_of(8));
            GrayImage::from_fn(pw, ph, |x, y| {
                if x < rw && y < rh {
                    *strength.get_pixel(rx + x, ry + y)
                } else {
                    Luma([0])
                }
            })
        }
    }
}

/// The conditioning mask of a soft mask (diffusers binarizes at 0.5: grey >= 128 repaints).
pub fn conditioning_mask(strength: &GrayImage) -> GrayImage {
    GrayImage::from_fn(strength.width(), strength.height(), |x, y| {
        Luma([if strength.get_pixel(x, y)[0] >= 128 {
            255
        } else {
            0
        }])
    })
}

/// The release of a soft run: `original` latents (scaled), the run's `noise`, and the hold
/// map `1 - s` at the `lw x lh` latent grid.
pub fn release(
    strength: &GrayImage,
    original: Tensor<4>,
    noise: Tensor<4>,
    (lw, lh): (usize, usize),
    device: &Device,
) -> Release {
    let (w, h) = (strength.width() as usize, strength.height() as usize);
    let hold: Vec<f32> = strength
        .pixels()
        .map(|p| (255 - p[0]) as f32 / 255.0)
        .collect();
    let hold = bilinear(&hold, (w, h), (lw, lh));
    Release {
        original,
        noise,
        hold,
        grid: (lw, lh),
        device: device.clone(),
    }
}

/// PyTorch's bilinear resize (`align_corners=False`, no antialiasing) of a `w x h` map, in its
/// order of operations: `(v00 wx0 + v01 wx1) wy0 + (v10 wx0 + v11 wx1) wy1` in f32.
pub fn bilinear(src: &[f32], (w, h): (usize, usize), (ow, oh): (usize, usize)) -> Vec<f32> {
    let taps = |n: usize, on: usize| -> Vec<(usize, usize, f32, f32)> {
        let scale = n as f32 / on as f32;
        (0..on)
            .map(|d| {
                let s = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
                let i0 = s as usize;
                let l1 = (s - i0 as f32).clamp(0.0, 1.0);
                let i1 = if i0 < n - 1 { i0 + 1 } else { i0 };
                (i0, i1, 1.0 - l1, l1)
            })
            .collect()
    };
    let (tx, ty) = (taps(w, ow), taps(h, oh));
    let mut out = Vec::with_capacity(ow * oh);
    for &(y0, y1, wy0, wy1) in &ty {
        for &(x0, x1, wx0, wx1) in &tx {
            let row = |y: usize| src[y * w + x0] * wx0 + src[y * w + x1] * wx1;
            out.push(row(y0) * wy0 + row(y1) * wy1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_downsampling_by_eight_averages_the_two_centre_taps() {
        let src: Vec<f32> = (0..16 * 8).map(|i| (i % 16) as f32).collect();
        let out = bilinear(&src, (16, 8), (2, 1));
        assert_eq!(out, vec![3.5, 11.5]);
        let up = bilinear(&[0.0, 4.0], (2, 1), (4, 1));
        assert_eq!(up, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn black_and_white_masks_stay_binary_grey_ones_keep_their_strengths() {
        let bw = GrayImage::from_fn(8, 8, |x, _| Luma([if x < 4 { 0 } else { 255 }]));
        let mut notes = Vec::new();
        let m = soft_mask(&bw, 8, 8, &mut notes);
        assert!(m.strength.is_none());
        assert_eq!(m.mask, bw);
        assert!(notes.is_empty());
        let grey = GrayImage::from_fn(8, 8, |x, _| Luma([(x * 30) as u8]));
        let m = soft_mask(&grey, 8, 8, &mut Vec::new());
        assert_eq!(m.strength.as_ref(), Some(&grey));
        assert_eq!(m.mask.get_pixel(0, 0)[0], 0);
        assert_eq!(m.mask.get_pixel(1, 0)[0], 255);
        assert_eq!(conditioning_mask(&grey).get_pixel(5, 0)[0], 255);
        assert_eq!(conditioning_mask(&grey).get_pixel(4, 0)[0], 0);
        assert_eq!("soft".parse::<MaskMode>(), Ok(MaskMode::Soft));
        assert!("fuzzy".parse::<MaskMode>().is_err());
    }
}
