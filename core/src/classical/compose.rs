//! The final fill as structure + texture (Bertalmio, Vese, Sapiro and Osher 2003, "Simultaneous
//! structure and texture image inpainting"): the low frequencies of the hole come from a
//! smooth fill (Telea, the membrane and the thin plate, averaged) blended with the exemplar
//! fill's own low frequencies where its patches match well, and the fine texture comes from the
//! exemplar fill.
//!
//! Why: on photographs the exemplar search often finds a patch that matches the hole's border
//! but continues differently (a face filled from a shoulder); copied whole, that costs several
//! dB against the truth. Smooth fills are right on average but flat. Taking the exemplar's
//! detail band (what a Gaussian of `SPLIT_SIGMA` removes, from its final unaveraged pass) over
//! the smooth layer keeps the grain a photo has (the Laplacian's variance) at a fraction of the
//! error; where the exemplar's patches match their sources almost exactly (periodic textures)
//! it is trusted whole, so those are still reproduced exactly.

use super::Img;

/// Detail band: what a Gaussian of this sigma (pixels) removes.
pub(super) const SPLIT_SIGMA: f32 = 1.0;

/// A separable Gaussian blur (edges clamped).
pub(super) fn blur(img: &Img, sigma: f32) -> Img {
    let r = (3.0 * sigma).ceil() as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let (w, h) = (img.w as i32, img.h as i32);
    let pass = |src: &[[f32; 3]], horizontal: bool| -> Vec<[f32; 3]> {
        let mut out = vec![[0f32; 3]; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0f32; 3];
                for (t, &kv) in k.iter().enumerate() {
                    let d = t as i32 - r;
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, w - 1), y)
                    } else {
                        (x, (y + d).clamp(0, h - 1))
                    };
                    let p = src[(sy * w + sx) as usize];
                    for c in 0..3 {
                        acc[c] += kv * p[c];
                    }
                }
                out[(y * w + x) as usize] = acc;
            }
        }
        out
    };
    let px = pass(&pass(&img.px, true), false);
    Img {
        w: img.w,
        h: img.h,
        px,
    }
}

/// structure's low frequencies blended with the texture's by `trust` (per pixel, 0..1), plus
/// the texture's detail band; only hole pixels are written.
pub(super) fn compose(
    structure: &Img,
    texture: &Img,
    voted: &Img,
    hole: &[bool],
    trust: &[f32],
) -> Img {
    let tex_lo = blur(texture, SPLIT_SIGMA);
    let vote_lo = blur(voted, SPLIT_SIGMA);
    let mut out = texture.clone();
    for i in 0..out.px.len() {
        if !hole[i] {
            continue;
        }
        let (s, t, lo, c) = (structure.px[i], texture.px[i], tex_lo.px[i], trust[i]);
        let v = vote_lo.px[i];
        for k in 0..3 {
            let base = c * v[k] + (1.0 - c) * s[k];
            out.px[i][k] = base + (t[k] - lo[k]);
        }
    }
    out
}
