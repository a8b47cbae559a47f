//! CLIP's image preprocessing (transformers `CLIPImageProcessor`, as a pipeline's
//! `feature_extractor/preprocessor_config.json` describes it): RGB, the shortest edge resized
//! with PIL's resampling filter, a center crop, `x / 255`, then `(x - mean) / std` per channel.
//!
//! The resize is PIL's 8-bit two-pass resampler computed exactly (fixed-point coefficients,
//! horizontal pass, then vertical, rounding to bytes between), so an exemplar gives the
//! reference's pixel values bit for bit, whatever its size.

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbaImage;
use serde::Deserialize;

/// A size in a preprocessor config: a number or `{shortest_edge}` / `{height, width}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeSpec {
    Square(usize),
    Shortest { shortest_edge: usize },
    Exact { height: usize, width: usize },
}

/// `preprocessor_config.json` (unknown keys ignored; defaults are CLIP's).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClipImageProcessor {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default = "d_size")]
    pub size: SizeSpec,
    #[serde(default = "d_resample")]
    pub resample: u32,
    #[serde(default = "yes")]
    pub do_center_crop: bool,
    #[serde(default = "d_crop")]
    pub crop_size: SizeSpec,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "d_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default = "d_mean")]
    pub image_mean: [f32; 3],
    #[serde(default = "d_std")]
    pub image_std: [f32; 3],
}

fn yes() -> bool {
    true
}
fn d_size() -> SizeSpec {
    SizeSpec::Shortest { shortest_edge: 224 }
}
fn d_crop() -> SizeSpec {
    SizeSpec::Exact {
        height: 224,
        width: 224,
    }
}
fn d_resample() -> u32 {
    3
}
fn d_rescale() -> f64 {
    1.0 / 255.0
}
fn d_mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn d_std() -> [f32; 3] {
    [0.268_629_54, 0.261_302_6, 0.275_777_1]
}

/// The largest size a preprocessor may ask for (pixels a side).
const MAX_SIDE: usize = 4096;

impl Default for ClipImageProcessor {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl ClipImageProcessor {
    /// Sizes within bounds, a filter we implement, a positive std, and an output of
    /// `side` x `side` pixels (the vision tower's image size).
    pub fn validate(&self, side: usize) -> Result<(), String> {
        if !matches!(self.resample, 1..=3) {
            return Err(format!(
                "resample {} is not supported (1 = Lanczos, 2 = bilinear, 3 = bicubic)",
                self.resample
            ));
        }
        let (sizes, crop) = (
            self.side_numbers(&self.size),
            self.side_numbers(&self.crop_size),
        );
        if sizes.iter().chain(&crop).any(|&v| v == 0 || v > MAX_SIDE) {
            return Err(format!("size and crop_size must be 1..={MAX_SIDE} pixels"));
        }
        if self.image_std.iter().any(|s| !s.is_finite() || *s <= 0.0)
            || self.image_mean.iter().any(|m| !m.is_finite())
            || !self.rescale_factor.is_finite()
        {
            return Err("image_mean, image_std and rescale_factor must be finite, std > 0".into());
        }
        let out = if self.do_center_crop {
            (crop[0], crop[1])
        } else {
            match self.size {
                SizeSpec::Exact { height, width } => (height, width),
                _ => (0, 0),
            }
        };
        if out != (side, side) {
            return Err(format!(
                "the processor gives {}x{} images (center crop {}) but the image encoder \
                 takes {side}x{side}",
                out.1,
                out.0,
                if self.do_center_crop { "on" } else { "off" }
            ));
        }
        if self.do_center_crop
            && let SizeSpec::Shortest { shortest_edge } | SizeSpec::Square(shortest_edge) =
                self.size
            && shortest_edge < crop[0].max(crop[1])
        {
            return Err(format!(
                "size {shortest_edge} is smaller than crop_size {}x{}",
                crop[1], crop[0]
            ));
        }
        Ok(())
    }

    fn side_numbers(&self, s: &SizeSpec) -> Vec<usize> {
        match *s {
            SizeSpec::Square(v) | SizeSpec::Shortest { shortest_edge: v } => vec![v, v],
            SizeSpec::Exact { height, width } => vec![height, width],
        }
    }

    /// Pixel values `[1, 3, side, side]` for `image` (its alpha dropped, as PIL's
    /// `convert("RGB")` does).
    pub fn preprocess(&self, image: &RgbaImage, device: &Device) -> Tensor<4> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut rgb: Vec<u8> = image.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
        let (mut w, mut h) = (w, h);
        if self.do_resize {
            let (nh, nw) = self.resized(h, w);
            rgb = pil_resize(&rgb, w, h, nw, nh, self.filter());
            (w, h) = (nw, nh);
        }
        let (top, left, ch, cw) = if self.do_center_crop {
            let c = self.side_numbers(&self.crop_size);
            let (ch, cw) = (c[0].min(h), c[1].min(w));
            ((h - ch) / 2, (w - cw) / 2, ch, cw)
        } else {
            (0, 0, h, w)
        };
        let mut out = vec![0f32; 3 * ch * cw];
        for c in 0..3 {
            for y in 0..ch {
                for x in 0..cw {
                    let v = rgb[((top + y) * w + left + x) * 3 + c] as f64;
                    let v = if self.do_rescale {
                        (v * self.rescale_factor) as f32
                    } else {
                        v as f32
                    };
                    let v = if self.do_normalize {
                        (v - self.image_mean[c]) / self.image_std[c]
                    } else {
                        v
                    };
                    out[(c * ch + y) * cw + x] = v;
                }
            }
        }
        Tensor::from_data(TensorData::new(out, [1, 3, ch, cw]), device)
    }

    /// The size (height, width) the resize step gives an `h` x `w` image: the shortest edge
    /// to `size` (the other scaled and truncated, as transformers does), or exactly `size`.
    fn resized(&self, h: usize, w: usize) -> (usize, usize) {
        match self.size {
            SizeSpec::Exact { height, width } => (height, width),
            SizeSpec::Square(s) | SizeSpec::Shortest { shortest_edge: s } => {
                let (short, long) = (h.min(w), h.max(w));
                let new_long = ((s * long) as f64 / short as f64) as usize;
                if w <= h { (new_long, s) } else { (s, new_long) }
            }
        }
    }

    fn filter(&self) -> Filter {
        match self.resample {
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            _ => Filter::Bicubic,
        }
    }
}

/// PIL's resampling filters (`Resample.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        (x * std::f64::consts::PI).sin() / (x * std::f64::consts::PI)
                    }
                };
                if x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point bits of PIL's 8-bit coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input pixel, the tap count, and `ksize` fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    k: Vec<i32>,
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole input range.
fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut pre = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, p) in pre.iter_mut().enumerate().take(n) {
            *p = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *p;
        }
        for (x, p) in pre.iter().enumerate().take(n) {
            let w = if ww != 0.0 { p / ww } else { *p };
            let f = w * (1u32 << PRECISION_BITS) as f64;
            k[xx * ksize + x] = if w < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { bounds, ksize, k }
}

fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL's `Image.resize` of an 8-bit RGB image (`w` x `h`, interleaved) to `nw` x `nh`: a
/// horizontal pass when the width changes, then a vertical one when the height does.
pub fn pil_resize(rgb: &[u8], w: usize, h: usize, nw: usize, nh: usize, f: Filter) -> Vec<u8> {
    let mut cur = rgb.to_vec();
    if nw != w {
        let c = coeffs(w, nw, f);
        let mut out = vec![0u8; nw * h * 3];
        for y in 0..h {
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.k[xx * c.ksize..];
                for ch in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for x in 0..n {
                        ss += cur[(y * w + xmin + x) * 3 + ch] as i64 * k[x] as i64;
                    }
                    out[(y * nw + xx) * 3 + ch] = clip8(ss);
                }
            }
        }
        cur = out;
    }
    if nh != h {
        let c = coeffs(h, nh, f);
        let mut out = vec![0u8; nw * nh * 3];
        for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
            let k = &c.k[yy * c.ksize..];
            for x in 0..nw * 3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for y in 0..n {
                    ss += cur[(ymin + y) * nw * 3 + x] as i64 * k[y] as i64;
                }
                out[yy * nw * 3 + x] = clip8(ss);
            }
        }
        cur = out;
    }
    cur
}
