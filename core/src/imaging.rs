//! Image files in and out, and the conversions between images and tensors.
//!
//! * [`load`]: PNG / JPEG / WebP / BMP / TIFF; EXIF orientation applied; gray, 16-bit and alpha
//!   inputs become RGBA8, and whether the input had alpha is remembered so outputs keep it.
//! * [`save_png`]: writes to a temporary file beside the target and renames it into place, so
//!   an interrupted or failed save never leaves a half-written or clobbered file. PNG text
//!   chunks carry how the image was made.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbaImage, imageops::FilterType};

/// Errors reading or writing images; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("{}: {problem}", path.display())]
    Read { path: PathBuf, problem: String },
    #[error("{}: cannot write: {problem}", path.display())]
    Write { path: PathBuf, problem: String },
}

/// A loaded image.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Upright (EXIF orientation applied) RGBA8 pixels.
    pub rgba: RgbaImage,
    /// Whether the file had an alpha channel.
    pub has_alpha: bool,
}

/// File extensions [`load`] reads (lower case).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

/// Whether `path` has an image extension we read.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn short(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// The environment variable that sets the largest image [`load`] decodes, in pixels.
pub const MAX_PIXELS_VAR: &str = "CLEARPAINT_MAX_IMAGE_PIXELS";
/// The default limit: 268 megapixels (16384 x 16384), about 1 GiB as RGBA8.
pub const DEFAULT_MAX_PIXELS: u64 = 16384 * 16384;

/// The largest image [`load`] decodes: `CLEARPAINT_MAX_IMAGE_PIXELS` or the default. An image
/// whose header claims more is refused by its size before anything is decoded, so a
/// decompression bomb costs nothing.
pub fn max_image_pixels() -> u64 {
    std::env::var(MAX_PIXELS_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_PIXELS)
}

/// Loads an image file, upright, as RGBA8 (refused when its header claims more than
/// [`max_image_pixels`]).
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ImagingError> {
    let path = path.as_ref();
    let reader = ImageReader::open(path).map_err(|e| read_err(path, short(e)))?;
    decode(reader, path)
}

/// Decodes an image held in memory (fetched from object storage, say) as [`load`] does a
/// file; `name` (its URL or key) is what errors name.
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<Loaded, ImagingError> {
    decode(
        ImageReader::new(std::io::Cursor::new(bytes)),
        Path::new(name),
    )
}

fn read_err(path: &Path, problem: String) -> ImagingError {
    ImagingError::Read {
        path: path.to_path_buf(),
        problem,
    }
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    path: &Path,
) -> Result<Loaded, ImagingError> {
    let err = |problem: String| read_err(path, problem);
    let reader = reader.with_guessed_format().map_err(|e| err(short(e)))?;
    if reader.format().is_none() {
        return Err(err("not an image file (unknown format)".into()));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(format!("cannot decode: {}", short(e))))?;
    let (w, h) = decoder.dimensions();
    let max = max_image_pixels();
    if w as u64 * h as u64 > max {
        return Err(err(format!(
            "the image claims {w}x{h} pixels, more than the limit of {} megapixels \
             (set {MAX_PIXELS_VAR} to allow more)",
            max / 1_000_000
        )));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| err(format!("corrupt or truncated image: {}", short(e))))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image is empty (0 pixels)".into()));
    }
    let has_alpha = img.color().has_alpha();
    Ok(Loaded {
        rgba: img.to_rgba8(),
        has_alpha,
    })
}

/// Writes `img` as a PNG at `path`, atomically, with `text` as tEXt chunks. With
/// `keep_alpha == false` the alpha channel is dropped (an RGB PNG is written).
pub fn save_png(
    path: impl AsRef<Path>,
    img: &RgbaImage,
    keep_alpha: bool,
    text: &[(&str, String)],
) -> Result<(), ImagingError> {
    let path = path.as_ref();
    let werr = |problem: String| ImagingError::Write {
        path: path.to_path_buf(),
        problem,
    };
    // Encode in memory, then write: encoder errors and disk errors are both reported.
    let encoded = encode_png(img, keep_alpha, text).map_err(werr)?;
    crate::files::write_atomic(path, &encoded).map_err(|e| werr(short(e)))
}

/// `img` encoded as a PNG file in memory, with `text` as text chunks (see [`save_png`]).
pub fn encode_png(
    img: &RgbaImage,
    keep_alpha: bool,
    text: &[(&str, String)],
) -> Result<Vec<u8>, String> {
    let mut encoded = Vec::new();
    let mut enc = png::Encoder::new(&mut encoded, img.width(), img.height());
    enc.set_depth(png::BitDepth::Eight);
    enc.set_color(if keep_alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    for (k, v) in text {
        add_text(&mut enc, k, v)?;
    }
    let mut writer = enc.write_header().map_err(short)?;
    let data: Vec<u8> = if keep_alpha {
        img.as_raw().clone()
    } else {
        img.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect()
    };
    writer.write_image_data(&data).map_err(short)?;
    writer.finish().map_err(short)?;
    Ok(encoded)
}

/// One text chunk as A1111 (PIL) writes it: `tEXt` when the text is Latin-1, otherwise UTF-8
/// `iTXt` (prompts with curly quotes, dashes, CJK or emoji). NUL characters, which neither
/// chunk may hold, are dropped. The keyword must be what PNG allows (1-79 Latin-1 characters,
/// no NUL, no leading or trailing space): the png crate would write any other as a corrupt
/// chunk.
fn add_text<W: Write>(enc: &mut png::Encoder<W>, keyword: &str, text: &str) -> Result<(), String> {
    let n = keyword.chars().count();
    if n == 0
        || n > 79
        || keyword.chars().any(|c| c == '\0' || (c as u32) > 255)
        || keyword.starts_with(' ')
        || keyword.ends_with(' ')
    {
        return Err(format!(
            "{keyword:?} is not a PNG text keyword (1-79 Latin-1 characters, no NUL, no \
             leading or trailing space)"
        ));
    }
    let text: String = text.chars().filter(|&c| c != '\0').collect();
    let r = if text.chars().all(|c| (c as u32) < 256) {
        enc.add_text_chunk(keyword.to_string(), text)
    } else {
        enc.add_itxt_chunk(keyword.to_string(), text)
    };
    r.map_err(short)
}

/// Reads the text chunks of a PNG (`tEXt`, `zTXt` and `iTXt`, in that order), for tests and
/// `clearpaint` tooling.
pub fn png_text(path: impl AsRef<Path>) -> Result<Vec<(String, String)>, ImagingError> {
    let path = path.as_ref();
    let err = |problem: String| ImagingError::Read {
        path: path.to_path_buf(),
        problem,
    };
    let file = File::open(path).map_err(|e| err(short(e)))?;
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| err(short(e)))?;
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for t in &info.compressed_latin1_text {
        let text = t.get_text().map_err(|e| err(short(e)))?;
        out.push((t.keyword.clone(), text));
    }
    for t in &info.utf8_text {
        let text = t.get_text().map_err(|e| err(short(e)))?;
        out.push((t.keyword.clone(), text));
    }
    Ok(out)
}

/// Resizes with a bilinear (triangle) filter; antialiased when shrinking.
pub fn resize(img: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    if img.width() == width && img.height() == height {
        return img.clone();
    }
    image::imageops::resize(img, width, height, FilterType::Triangle)
}

/// RGB of `img` as a `[1, 3, H, W]` tensor in [-1, 1] (`x / 127.5 - 1`).
pub fn to_tensor(img: &RgbaImage, device: &Device) -> Tensor<4> {
    crate::kernels::image_to_tensor(img, device)
}

/// The first image of a `[N, 3, H, W]` tensor in [-1, 1] as RGBA8 (opaque):
/// `round(clamp((x + 1) * 127.5, 0, 255))`.
pub fn from_tensor(t: Tensor<4>) -> RgbaImage {
    crate::kernels::tensor_to_image(t, None)
}

pub use crate::kernels::{from_tensor_reference, plasma, tensor_values, to_tensor_reference};

/// A single-channel f32 map (e.g. an uncertainty map), row-major.
#[derive(Debug, Clone)]
pub struct FloatMap {
    pub width: u32,
    pub height: u32,
    pub data: Vec<f32>,
}

impl FloatMap {
    /// Bilinear resize (triangle filter), like [`resize`].
    pub fn resize(&self, width: u32, height: u32) -> FloatMap {
        if self.width == width && self.height == height {
            return self.clone();
        }
        let src: image::ImageBuffer<image::Luma<f32>, Vec<f32>> =
            image::ImageBuffer::from_raw(self.width, self.height, self.data.clone())
                .expect("map size matches its data");
        let out = image::imageops::resize(&src, width, height, FilterType::Triangle);
        FloatMap {
            width,
            height,
            data: out.into_raw(),
        }
    }

    /// Minimum and maximum.
    pub fn range(&self) -> (f32, f32) {
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// The map through the plasma colormap, `lo..hi` spread over the whole map (clamped).
    /// Through the plasma colormap over `[lo, hi]` (the `plasma` kernel on wgpu devices).
    pub fn colorize(&self, lo: f32, hi: f32) -> RgbaImage {
        self.colorize_on(lo, hi, &Device::flex())
    }

    pub fn colorize_on(&self, lo: f32, hi: f32, device: &Device) -> RgbaImage {
        let t = Tensor::<2>::from_data(
            TensorData::new(
                self.data.clone(),
                [self.height as usize, self.width as usize],
            ),
            device,
        );
        crate::kernels::colorize(t, lo, hi)
    }
}

/// `a * (1 - alpha) + b * alpha`, per pixel; keeps `a`'s alpha.
pub fn blend(a: &RgbaImage, b: &RgbaImage, alpha: f32) -> RgbaImage {
    RgbaImage::from_fn(a.width(), a.height(), |x, y| {
        let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
        let mix = |c: usize| (p[c] as f32 * (1.0 - alpha) + q[c] as f32 * alpha).round() as u8;
        image::Rgba([mix(0), mix(1), mix(2), p[3]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plasma_matches_matplotlib() {
        // matplotlib.colormaps["plasma"] at 0, 1/16, ..., 1, times 255, rounded.
        const REF: [[u8; 3]; 17] = [
            [13, 8, 135],
            [49, 5, 151],
            [76, 2, 161],
            [102, 0, 167],
            [126, 3, 168],
            [149, 17, 161],
            [170, 35, 149],
            [188, 53, 135],
            [204, 71, 120],
            [218, 90, 106],
            [230, 108, 92],
            [240, 128, 78],
            [248, 149, 64],
            [253, 172, 51],
            [253, 197, 39],
            [248, 223, 37],
            [240, 249, 33],
        ];
        for (i, want) in REF.iter().enumerate() {
            let got = plasma(i as f32 / 16.0);
            for c in 0..3 {
                assert!(
                    (got[c] as i32 - want[c] as i32).abs() <= 5,
                    "t={i}/16: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn tensor_round_trip_is_exact() {
        let img = RgbaImage::from_fn(7, 5, |x, y| {
            image::Rgba([(x * 30) as u8, (y * 50) as u8, 200, 255])
        });
        let back = from_tensor(to_tensor(&img, &Device::flex()));
        assert_eq!(back, img);
    }
}
