//! The asymmetric decoder's mask-guided swap (`shaders/mask_swap.wgsl`) and its reference.

use burn::tensor::{Tensor, TensorData};

use super::*;

/// `x * m + cond * (1 - m)` with `m` = `mask` (`[N, 1, Hm, Wm]`) nearest-resized to `x`'s size.
pub fn mask_swap(x: Tensor<4>, cond: Tensor<4>, mask: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [_, _, hm, wm] = mask.dims();
    if !on_wgpu(&x) {
        return mask_swap_reference(x, cond, mask);
    }
    let dtype = kernel_dtype(&x);
    let x = into_contiguous(cube_of(as_dtype(x, dtype)).expect("on wgpu"));
    let cond = into_contiguous(cube_of(as_dtype(cond, dtype)).expect("on wgpu"));
    let mask = into_contiguous(cube_of(as_dtype(mask, dtype)).expect("on wgpu"));
    let out = empty_float(&x, vec![n, c, h, w], dtype);
    let p = params(
        &x,
        &[n as u32, c as u32, h as u32, w as u32, hm as u32, wm as u32],
    );
    launch(
        &x,
        shader!("mask_swap").with_elem(dtype),
        grid(n * c * h * w),
        vec![
            x.handle.clone(),
            cond.handle.clone(),
            mask.handle.clone(),
            out.handle.clone(),
            p,
        ],
    );
    from_cube(out)
}

/// Nearest resize of the mask by index (`y * Hm / H`), then the blend, in tensor ops.
pub fn mask_swap_reference(x: Tensor<4>, cond: Tensor<4>, mask: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [_, _, hm, wm] = mask.dims();
    let device = x.device();
    let rows: Vec<i64> = (0..h).map(|y| ((y * hm / h).min(hm - 1)) as i64).collect();
    let cols: Vec<i64> = (0..w).map(|x| ((x * wm / w).min(wm - 1)) as i64).collect();
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [h]), &device);
    let cols = Tensor::<1, Int>::from_data(TensorData::new(cols, [w]), &device);
    let m = mask.select(2, rows).select(3, cols);
    x * m.clone() + cond * (m.neg() + 1.0)
}
