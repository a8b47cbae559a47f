//! Decoding large images in overlapping latent tiles when a whole decode would not fit the
//! device's largest buffer.

use burn::tensor::{DType, FloatDType, Tensor, TensorData};

use super::{AutoencoderKL, VaeConfig};
use crate::models::asym_decoder::MaskConditionEncoder;

/// Latent-space tiling for decoding large images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Tile edge in latent pixels.
    pub tile: usize,
    /// Overlap between neighbouring tiles in latent pixels (blended linearly).
    pub overlap: usize,
}

/// Start offsets of tiles of `tile` with `overlap` covering `n` (the last one flush with the end).
fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let step = (tile - overlap).max(1);
    let mut starts: Vec<usize> = (0..)
        .map(|i| i * step)
        .take_while(|s| s + tile < n)
        .collect();
    starts.push(n - tile);
    starts
}

/// Blend weights along one axis of a tile of `len` output pixels: a linear ramp over
/// `ramp` pixels on each side that touches another tile, 1 elsewhere.
fn ramp(len: usize, ramp: usize, at_start: bool, at_end: bool) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let mut w = 1.0f32;
            if !at_start && ramp > 0 {
                w = w.min((i as f32 + 0.5) / ramp as f32);
            }
            if !at_end && ramp > 0 {
                w = w.min((len as f32 - i as f32 - 0.5) / ramp as f32);
            }
            w
        })
        .collect()
}

/// Runs `f` on overlapping latent tiles of `z` and blends the results. `f` maps a latent
/// tile and its `(y, x)` latent offset to an output `factor` times larger. With a local `f`
/// the result equals `f` on the whole input; a decoder's GroupNorm and attention see only their
/// tile, so tiled decoding differs slightly from whole decoding near tile seams.
pub fn tiled_map(
    z: Tensor<4>,
    tiling: Tiling,
    factor: usize,
    mut f: impl FnMut(Tensor<4>, usize, usize) -> Tensor<4>,
) -> Tensor<4> {
    let [b, c, h, w] = z.dims();
    let device = z.device();
    let (th, tw) = (tiling.tile.min(h), tiling.tile.min(w));
    let ys = tile_starts(h, th, tiling.overlap);
    let xs = tile_starts(w, tw, tiling.overlap);
    let (oh, ow) = (h * factor, w * factor);
    let mut out: Option<Tensor<4>> = None;
    let mut wsum = vec![0f32; oh * ow];
    let r = tiling.overlap * factor;
    for (yi, &y0) in ys.iter().enumerate() {
        for (xi, &x0) in xs.iter().enumerate() {
            let tile = z.clone().slice([0..b, 0..c, y0..y0 + th, x0..x0 + tw]);
            let dec = f(tile, y0, x0);
            let [_, oc, dh, dw] = dec.dims();
            let wy = ramp(dh, r, yi == 0, yi + 1 == ys.len());
            let wx = ramp(dw, r, xi == 0, xi + 1 == xs.len());
            let mut wmap = Vec::with_capacity(dh * dw);
            for (i, a) in wy.iter().enumerate() {
                for (j, bx) in wx.iter().enumerate() {
                    let v = a * bx;
                    wmap.push(v);
                    wsum[(y0 * factor + i) * ow + x0 * factor + j] += v;
                }
            }
            let wt: Tensor<4> = Tensor::from_data(TensorData::new(wmap, [1, 1, dh, dw]), &device);
            let acc = out.get_or_insert_with(|| Tensor::zeros([b, oc, oh, ow], &device));
            let (ry, rx) = (y0 * factor..y0 * factor + dh, x0 * factor..x0 * factor + dw);
            let region = acc.clone().slice([0..b, 0..oc, ry.clone(), rx.clone()]);
            *acc = acc
                .clone()
                .slice_assign([0..b, 0..oc, ry, rx], region + dec * wt);
        }
    }
    let wsum: Tensor<4> = Tensor::from_data(TensorData::new(wsum, [1, 1, oh, ow]), &device);
    out.expect("at least one tile") / wsum
}

impl VaeConfig {
    /// Bytes of the largest single activation when decoding a `batch` of `h x w` latents
    /// (whole, not tiled), including the mid-block attention scores in case the backend
    /// materialises them, and the condition encoder's maps for the asymmetric decoder.
    pub fn decode_peak_bytes(&self, batch: usize, h: usize, w: usize) -> u64 {
        let rev: Vec<usize> = self.up_channels.iter().rev().copied().collect();
        let mut peak = 0u64;
        let mut at = |c: usize, s: usize| {
            let bytes = (batch * c * h * s * w * s * 4) as u64;
            peak = peak.max(bytes);
        };
        let mut s = 1;
        at(rev[0], 1);
        for (i, &c) in rev.iter().enumerate() {
            at(c.max(if i == 0 { rev[0] } else { rev[i - 1] }), s);
            if i + 1 < rev.len() {
                s *= 2;
                at(c, s);
            }
        }
        if self.asymmetric {
            for (c, down) in
                MaskConditionEncoder::feature_shapes(self.out_channels, self.up_channels[0], rev[0])
            {
                let full = self.scale_factor();
                at(c, full / down);
            }
        }
        let scores = (batch * h * w * h * w * 4) as u64;
        peak.max(scores)
    }

    /// No tiling when the whole decode fits `max_tensor_bytes`; otherwise the largest square
    /// tile (a multiple of 8 latent pixels, overlap a quarter of it) that does.
    pub fn choose_tiling(
        &self,
        batch: usize,
        h: usize,
        w: usize,
        max_tensor_bytes: u64,
    ) -> Option<Tiling> {
        if self.decode_peak_bytes(batch, h, w) <= max_tensor_bytes {
            return None;
        }
        let mut tile = h.max(w).next_multiple_of(8);
        while tile > 8 && self.decode_peak_bytes(batch, tile, tile) > max_tensor_bytes {
            tile -= 8;
        }
        Some(Tiling {
            tile,
            overlap: tile / 4,
        })
    }
}

impl AutoencoderKL {
    /// Decodes in overlapping latent tiles (see [`tiled_map`]); the condition image and mask
    /// are cropped to each tile.
    pub fn decode_tiled(
        &self,
        z: Tensor<4>,
        condition: Option<(Tensor<4>, Tensor<4>)>,
        tiling: Tiling,
        factor: usize,
    ) -> Tensor<4> {
        let [_, _, th, tw] = z.dims();
        let (th, tw) = (tiling.tile.min(th), tiling.tile.min(tw));
        tiled_map(z, tiling, factor, |tile, y0, x0| {
            let cond = condition.as_ref().map(|(img, mask)| {
                let crop = |t: &Tensor<4>| {
                    let [b, c, _, _] = t.dims();
                    t.clone().slice([
                        0..b,
                        0..c,
                        y0 * factor..(y0 + th) * factor,
                        x0 * factor..(x0 + tw) * factor,
                    ])
                };
                (crop(img), crop(mask))
            });
            self.decode(tile, cond)
        })
    }

    /// Decodes whole when the largest activation fits `max_tensor_bytes` (the device's
    /// largest buffer), in tiles otherwise. A half-precision decoder that overflows (a known
    /// failure of SD VAEs in fp16: diffusers' `force_upcast`, A1111's "revert VAE to 32-bit")
    /// is redone in f32 rather than return NaN or black pixels.
    pub fn decode_within(
        &self,
        config: &VaeConfig,
        z: Tensor<4>,
        condition: Option<(Tensor<4>, Tensor<4>)>,
        max_tensor_bytes: u64,
    ) -> Decoded {
        let [b, _, h, w] = z.dims();
        let tiling = config.choose_tiling(b, h, w, max_tensor_bytes);
        let run = |vae: &AutoencoderKL| match tiling {
            None => vae.decode(z.clone(), condition.clone()),
            Some(t) => vae.decode_tiled(z.clone(), condition.clone(), t, config.scale_factor()),
        };
        let image = run(self);
        if self.decoder_dtype() == DType::F32 || all_finite(&image) {
            return Decoded {
                image,
                tiling,
                redone_in_f32: false,
            };
        }
        let full = self.clone().with_decoder_dtype(FloatDType::F32);
        Decoded {
            image: run(&full),
            tiling,
            redone_in_f32: true,
        }
    }
}

/// What [`AutoencoderKL::decode_within`] did.
pub struct Decoded {
    /// `[B, 3, H, W]` in about [-1, 1], f32.
    pub image: Tensor<4>,
    /// The tiling used, if any.
    pub tiling: Option<Tiling>,
    /// The half-precision decode overflowed and was redone in f32.
    pub redone_in_f32: bool,
}

impl Decoded {
    /// The notes a run reports for this decode.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(t) = self.tiling {
            notes.push(format!(
                "decoded in {}x{} latent tiles (overlap {}) to fit the device's largest buffer",
                t.tile, t.tile, t.overlap
            ));
        }
        if self.redone_in_f32 {
            notes.push(
                "the f16 decode overflowed (inf/NaN); it was redone in f32 (--precision f32 \
                 avoids the retry)"
                    .into(),
            );
        }
        notes
    }
}

/// Whether every value of `t` is finite: x - x is 0 for finite x and NaN for inf and NaN, so
/// one sum on the device says (no copy to the host).
pub fn all_finite(t: &Tensor<4>) -> bool {
    let s: f32 = (t.clone() - t.clone())
        .sum()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map(|v| v[0])
        .unwrap_or(f32::NAN);
    s.is_finite()
}
