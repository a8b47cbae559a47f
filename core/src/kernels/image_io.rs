//! RGBA8 images to NCHW tensors in [-1, 1] and back (with the paste-back blend), and the
//! host references.

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbaImage};

use super::*;

fn packed(img: &RgbaImage) -> Vec<u32> {
    img.pixels().map(|p| u32::from_le_bytes(p.0)).collect()
}

/// An image as a `[1, 3, H, W]` tensor in [-1, 1] on `device` (`v / 127.5 - 1`).
pub fn image_to_tensor(img: &RgbaImage, device: &Device) -> Tensor<4> {
    if !is_wgpu(device) {
        return to_tensor_reference(img, device);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let like = into_contiguous(cube_of(Tensor::<1>::zeros([1], device)).expect("on wgpu"));
    let pixels = like
        .client
        .create_from_slice(bytemuck::cast_slice(&packed(img)));
    let out = empty_f32(&like, vec![1, 3, h, w]);
    let p = params(&like, &[(w * h) as u32]);
    launch(
        &like,
        shader!("rgba_to_nchw"),
        grid(w * h),
        vec![pixels, out.handle.clone(), p],
    );
    from_cube(out)
}

/// A `[1, 3, H, W]` tensor in [-1, 1] as an opaque RGBA8 image; with `paste` = (original,
/// 8-bit mask), blended with the original through the mask in integer arithmetic (the
/// paste-back; the original's alpha is kept).
pub fn tensor_to_image(t: Tensor<4>, paste: Option<(&RgbaImage, &GrayImage)>) -> RgbaImage {
    let [_, c, h, w] = t.dims();
    assert_eq!(c, 3, "tensor_to_image expects 3 channels");
    if !on_wgpu(&t) {
        return tensor_to_image_reference(t, paste);
    }
    let t = into_contiguous(cube_of(t.slice([0..1, 0..3, 0..h, 0..w])).expect("on wgpu"));
    let n = w * h;
    let (orig, mask, blend) = match paste {
        Some((o, m)) => {
            assert_eq!((o.width() as usize, o.height() as usize), (w, h));
            assert_eq!((m.width() as usize, m.height() as usize), (w, h));
            let mv: Vec<u32> = m.pixels().map(|p| p[0] as u32).collect();
            (
                t.client.create_from_slice(bytemuck::cast_slice(&packed(o))),
                t.client.create_from_slice(bytemuck::cast_slice(&mv)),
                1u32,
            )
        }
        None => (
            t.client.create_from_slice(bytemuck::cast_slice(&[0u32])),
            t.client.create_from_slice(bytemuck::cast_slice(&[0u32])),
            0u32,
        ),
    };
    let out = empty_u32(&t, n);
    let p = params(&t, &[n as u32, blend]);
    let th = t
        .client
        .create_from_slice(bytemuck::cast_slice(byte_thresholds()));
    launch(
        &t,
        shader!("nchw_to_rgba"),
        grid(n),
        vec![t.handle.clone(), orig, mask, out.handle.clone(), p, th],
    );
    let bytes: Vec<u8> = u32_values(out)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    RgbaImage::from_raw(w as u32, h as u32, bytes).expect("sized")
}

/// `imaging::from_tensor`, then the integer blend with the original.
pub fn tensor_to_image_reference(
    t: Tensor<4>,
    paste: Option<(&RgbaImage, &GrayImage)>,
) -> RgbaImage {
    let mut img = from_tensor_reference(t);
    if let Some((orig, mask)) = paste {
        for ((p, o), m) in img.pixels_mut().zip(orig.pixels()).zip(mask.pixels()) {
            let m = m[0] as u32;
            for c in 0..3 {
                p[c] = ((p[c] as u32 * m + o[c] as u32 * (255 - m) + 127) / 255) as u8;
            }
            p[3] = o[3];
        }
    }
    img
}

/// [`crate::imaging::to_tensor`] on the host (the reference of the `rgba_to_nchw` kernel).
pub fn to_tensor_reference(img: &RgbaImage, device: &Device) -> Tensor<4> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * h * w + i] = p[c] as f32 / 127.5 - 1.0;
        }
    }
    Tensor::from_data(TensorData::new(data, [1, 3, h, w]), device)
}

/// [`crate::imaging::from_tensor`] on the host (the reference of the `nchw_to_rgba` kernel).
pub fn from_tensor_reference(t: Tensor<4>) -> RgbaImage {
    let [_, c, h, w] = t.dims();
    assert_eq!(c, 3, "from_tensor expects 3 channels");
    let v = tensor_values(t);
    RgbaImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let px = |c: usize| ((v[c * h * w + i] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
        image::Rgba([px(0), px(1), px(2), 255])
    })
}
