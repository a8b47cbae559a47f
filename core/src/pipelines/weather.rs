//! Adverse-weather translation (night / rainy night → day) with AU-GAN.
//!
//! Any input size: the image is resized (bilinear) to the model's working size, translated,
//! and resized back, so the output has exactly the input's size and alpha. The uncertainty map
//! σ is resized the same way and can be rendered with the plasma colormap, alone or as an
//! overlay on the output.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use image::RgbaImage;

use crate::imaging::{self, FloatMap};
use crate::models::augan::AuganGenerator;

/// The size AU-GAN was trained at (H x W).
pub const DEFAULT_SIZE: WorkSize = WorkSize {
    height: 256,
    width: 512,
};

/// σ range mapped onto the colormap. Fixed (not per image) so maps can be compared: σ ≈ 0
/// means an expected cycle error below ~0.1, σ = 3 an error near the top of the range.
pub const SIGMA_RANGE: (f32, f32) = (0.0, 3.0);

/// Working size of the network, H x W, each a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkSize {
    pub height: u32,
    pub width: u32,
}

impl fmt::Display for WorkSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}

impl FromStr for WorkSize {
    type Err = String;
    /// `HxW`, e.g. `256x512`; both multiples of 4, at least 8.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (h, w) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("'{s}' is not a size: expected HxW, e.g. 256x512"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{s}' is not a size: expected HxW, e.g. 256x512"))
        };
        let size = WorkSize {
            height: parse(h)?,
            width: parse(w)?,
        };
        if size.height < 8
            || size.width < 8
            || !size.height.is_multiple_of(4)
            || !size.width.is_multiple_of(4)
        {
            return Err(format!(
                "size {size}: height and width must be multiples of 4 and at least 8"
            ));
        }
        Ok(size)
    }
}

/// What to compute.
#[derive(Debug, Clone, Copy)]
pub struct WeatherRequest {
    pub size: WorkSize,
    /// Also compute the σ map.
    pub uncertainty: bool,
}

impl Default for WeatherRequest {
    fn default() -> Self {
        WeatherRequest {
            size: DEFAULT_SIZE,
            uncertainty: false,
        }
    }
}

/// Errors of the weather pipeline.
#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    #[error(
        "the model has no uncertainty head; convert a checkpoint that includes it, or run \
         without the uncertainty map"
    )]
    NoUncertaintyHead,
}

/// A translated image.
#[derive(Debug, Clone)]
pub struct WeatherOutput {
    /// Same size as the input; the input's alpha is kept.
    pub image: RgbaImage,
    /// σ at the input's size, when asked for.
    pub sigma: Option<FloatMap>,
    /// Where the model ran (the colormap runs there too).
    pub device: Device,
}

impl WeatherOutput {
    /// σ through the plasma colormap over [`SIGMA_RANGE`].
    pub fn sigma_image(&self) -> Option<RgbaImage> {
        self.sigma
            .as_ref()
            .map(|s| s.colorize_on(SIGMA_RANGE.0, SIGMA_RANGE.1, &self.device))
    }

    /// σ's colormap blended over the output image (alpha 0.5).
    pub fn overlay(&self) -> Option<RgbaImage> {
        self.sigma_image()
            .map(|s| imaging::blend(&self.image, &s, 0.5))
    }
}

/// Translates `input`.
pub fn run(
    model: &AuganGenerator,
    device: &Device,
    input: &RgbaImage,
    request: &WeatherRequest,
) -> Result<WeatherOutput, WeatherError> {
    if request.uncertainty && !model.has_uncertainty() {
        return Err(WeatherError::NoUncertaintyHead);
    }
    let (w0, h0) = (input.width(), input.height());
    let work = imaging::resize(input, request.size.width, request.size.height);
    let x = imaging::to_tensor(&work, device);
    let out = model.forward(x, request.uncertainty);
    let translated = imaging::from_tensor(out.image);
    let mut image = imaging::resize(&translated, w0, h0);
    // Keep the input's alpha.
    for (o, i) in image.pixels_mut().zip(input.pixels()) {
        o[3] = i[3];
    }
    let sigma = out.sigma.map(|s| {
        let [_, _, h, w] = s.dims();
        FloatMap {
            width: w as u32,
            height: h as u32,
            data: imaging::tensor_values(s),
        }
        .resize(w0, h0)
    });
    Ok(WeatherOutput {
        image,
        sigma,
        device: device.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(
            "128x256".parse::<WorkSize>().unwrap(),
            WorkSize {
                height: 128,
                width: 256
            }
        );
        assert!(
            "130x256"
                .parse::<WorkSize>()
                .unwrap_err()
                .contains("multiples of 4")
        );
        assert!(
            "4x4"
                .parse::<WorkSize>()
                .unwrap_err()
                .contains("at least 8")
        );
        assert!("256".parse::<WorkSize>().unwrap_err().contains("HxW"));
    }
}
