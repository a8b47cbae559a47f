//! Mask grow / shrink and Gaussian feather, and their references.

use burn::tensor::{Device, Tensor, TensorData};
use image::GrayImage;

use super::*;

fn mask_tensor(mask: &GrayImage, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = mask.pixels().map(|p| p[0] as f32 / 255.0).collect();
    Tensor::from_data(
        TensorData::new(v, [mask.height() as usize, mask.width() as usize]),
        device,
    )
}

/// A `[H, W]` mask in [0, 1] as an 8-bit image (`round(v * 255)`).
pub fn mask_image(t: Tensor<2>) -> GrayImage {
    let [h, w] = t.dims();
    let v = super::tensor_values(t);
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([(v[y as usize * w + x as usize] * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8])
    })
}

/// Grows (`r > 0`) or shrinks (`r < 0`) a `[H, W]` mask by `|r|` pixels (square element).
pub fn grow_mask(mask: Tensor<2>, r: i32) -> Tensor<2> {
    if r == 0 {
        return mask;
    }
    if !on_wgpu(&mask) {
        return grow_mask_reference(mask, r);
    }
    let [h, w] = mask.dims();
    let m = into_contiguous(cube_of(mask).expect("on wgpu"));
    let mut cur = m;
    for axis in 0..2u32 {
        let out = empty_f32(&cur, vec![h, w]);
        let p = params(
            &cur,
            &[h as u32, w as u32, r.unsigned_abs(), (r > 0) as u32, axis],
        );
        launch(
            &cur,
            shader!("mask_morph"),
            grid(h * w),
            vec![cur.handle.clone(), out.handle.clone(), p],
        );
        cur = out;
    }
    from_cube(cur)
}

/// Max (grow) / min (shrink) over shifted copies, padded with 0 (grow) or 1 (shrink).
pub fn grow_mask_reference(mask: Tensor<2>, r: i32) -> Tensor<2> {
    let grow = r > 0;
    let r = r.unsigned_abs() as usize;
    let [h, w] = mask.dims();
    let fill = if grow { 0.0 } else { 1.0 };
    let pass = |m: Tensor<2>, axis: usize| {
        let padded = if axis == 1 {
            m.pad([(0, 0), (r, r)], burn::tensor::ops::PadMode::Constant(fill))
        } else {
            m.pad([(r, r), (0, 0)], burn::tensor::ops::PadMode::Constant(fill))
        };
        let mut acc: Option<Tensor<2>> = None;
        for k in 0..=2 * r {
            let s = if axis == 1 {
                padded.clone().slice([0..h, k..k + w])
            } else {
                padded.clone().slice([k..k + h, 0..w])
            };
            acc = Some(match acc {
                None => s,
                Some(a) => {
                    if grow {
                        a.max_pair(s)
                    } else {
                        a.min_pair(s)
                    }
                }
            });
        }
        acc.expect("at least one tap")
    };
    let m = pass(mask, 1);
    pass(m, 0)
}

/// Normalised Gaussian taps for standard deviation `sigma` (radius ceil(3 sigma)).
pub fn gaussian_taps(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(0.0) as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter().map(|v| v / s).collect()
}

/// Separable Gaussian feather of a `[H, W]` mask (edges clamp).
pub fn feather_mask(mask: Tensor<2>, sigma: f32) -> Tensor<2> {
    if sigma <= 0.0 {
        return mask;
    }
    if !on_wgpu(&mask) {
        return feather_mask_reference(mask, sigma);
    }
    let taps = gaussian_taps(sigma);
    let r = (taps.len() / 2) as u32;
    let [h, w] = mask.dims();
    let mut cur = into_contiguous(cube_of(mask).expect("on wgpu"));
    let weights = cur.client.create_from_slice(bytemuck::cast_slice(&taps));
    for axis in 0..2u32 {
        let out = empty_f32(&cur, vec![h, w]);
        let p = params(&cur, &[h as u32, w as u32, r, axis]);
        launch(
            &cur,
            shader!("mask_blur"),
            grid(h * w),
            vec![cur.handle.clone(), weights.clone(), out.handle.clone(), p],
        );
        cur = out;
    }
    from_cube(cur)
}

/// The same taps as a sum of edge-clamped shifted copies.
pub fn feather_mask_reference(mask: Tensor<2>, sigma: f32) -> Tensor<2> {
    let taps = gaussian_taps(sigma);
    let r = taps.len() / 2;
    let [h, w] = mask.dims();
    let pass = |m: Tensor<2>, axis: usize| {
        // Edge clamp: repeat the first / last row or column r times.
        let n = if axis == 1 { w } else { h };
        let idx: Vec<i64> = (0..n + 2 * r)
            .map(|i| (i as i64 - r as i64).clamp(0, n as i64 - 1))
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n + 2 * r]), &m.device());
        let padded = m.select(axis, idx);
        let mut acc: Option<Tensor<2>> = None;
        for (k, t) in taps.iter().enumerate() {
            let s = if axis == 1 {
                padded.clone().slice([0..h, k..k + w])
            } else {
                padded.clone().slice([k..k + h, 0..w])
            } * *t;
            acc = Some(match acc {
                None => s,
                Some(a) => a + s,
            });
        }
        acc.expect("at least one tap")
    };
    let m = pass(mask, 1);
    pass(m, 0)
}

/// The mask operations on an 8-bit mask image, on `device` (a kernel on wgpu).
pub fn grow_mask_image(mask: &GrayImage, r: i32, device: &Device) -> GrayImage {
    mask_image(grow_mask(mask_tensor(mask, device), r))
}

pub fn feather_mask_image(mask: &GrayImage, sigma: f32, device: &Device) -> GrayImage {
    mask_image(feather_mask(mask_tensor(mask, device), sigma))
}
