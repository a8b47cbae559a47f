//! The plasma colormap (the uncertainty map's colours) and its kernel.

use burn::tensor::Tensor;
use image::RgbaImage;

use super::*;

/// Matplotlib's "plasma" colormap (perceptually uniform), `t` in [0, 1]: a 6th-order
/// polynomial fit of the original table (within 5/255 per channel of matplotlib's).
pub fn plasma(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } as f64;
    const C: [[f64; 3]; 7] = [
        [
            0.058_732_343_031_331_3,
            0.023_336_709_169_386_6,
            0.543_340_203_278_176_5,
        ],
        [
            2.176_514_634_195_958,
            0.238_383_417_444_195_2,
            0.753_960_460_286_674_9,
        ],
        [
            -2.689_460_476_458_034,
            -7.455_851_135_738_909,
            3.110_799_939_717_086,
        ],
        [
            6.130_348_345_893_603,
            42.346_188_216_541_64,
            -28.518_855_866_746_76,
        ],
        [
            -11.107_436_196_468_36,
            -82.666_311_090_285_26,
            60.139_848_556_802_09,
        ],
        [
            10.023_066_560_634_49,
            71.413_617_656_815_56,
            -54.072_185_234_426_9,
        ],
        [
            -3.658_713_842_777_788,
            -22.931_534_973_285_88,
            18.191_908_393_566_18,
        ],
    ];
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let mut v = 0.0;
        for k in (0..7).rev() {
            v = v * t + C[k][ch];
        }
        *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    out
}

/// The colormap as 1024 packed RGB entries (R in the low byte), from `imaging::plasma`.
pub fn plasma_table() -> Vec<u32> {
    (0..1024)
        .map(|i| {
            let [r, g, b] = plasma(i as f32 / 1023.0);
            u32::from_le_bytes([r, g, b, 0])
        })
        .collect()
}

/// A `[H, W]` map through the plasma table over `[lo, hi]` (NaN -> the low end) as RGBA8.
pub fn colorize(map: Tensor<2>, lo: f32, hi: f32) -> RgbaImage {
    let [h, w] = map.dims();
    let scale = 1.0 / (hi - lo).max(1e-12);
    if !on_wgpu(&map) {
        return colorize_reference(map, lo, hi);
    }
    let m = into_contiguous(cube_of(map).expect("on wgpu"));
    let n = h * w;
    let table = m
        .client
        .create_from_slice(bytemuck::cast_slice(&plasma_table()));
    let out = empty_u32(&m, n);
    let p = params(&m, &[n as u32]);
    let span = (hi - lo).abs().max(1.0);
    let th = thresholds(1023, lo - span, hi + span, |v| {
        plasma_entry(v, lo, scale) as u32
    });
    let th = m.client.create_from_slice(bytemuck::cast_slice(&th));
    launch(
        &m,
        shader!("plasma"),
        grid(n),
        vec![m.handle.clone(), table, out.handle.clone(), p, th],
    );
    let bytes: Vec<u8> = u32_values(out)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    RgbaImage::from_raw(w as u32, h as u32, bytes).expect("sized")
}

/// The table lookup in plain Rust, with the kernel's arithmetic (f32, scale multiplied).
pub fn colorize_reference(map: Tensor<2>, lo: f32, hi: f32) -> RgbaImage {
    let [h, w] = map.dims();
    let scale = 1.0 / (hi - lo).max(1e-12);
    let table = plasma_table();
    let v = super::tensor_values(map);
    RgbaImage::from_fn(w as u32, h as u32, |x, y| {
        let e = plasma_entry(v[y as usize * w + x as usize], lo, scale);
        let [r, g, b, _] = table[e].to_le_bytes();
        image::Rgba([r, g, b, 255])
    })
}

/// The table entry of a value: `floor(clamp((v - lo) * scale, 0, 1) * 1023 + 0.5)`, NaN -> 0.
fn plasma_entry(v: f32, lo: f32, scale: f32) -> usize {
    let t = if v.is_nan() {
        0.0
    } else {
        ((v - lo) * scale).clamp(0.0, 1.0)
    };
    (t * 1023.0 + 0.5).floor() as usize
}
