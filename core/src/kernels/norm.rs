//! Fused GroupNorm + SiLU (`shaders/group_norm_silu.wgsl`) and its reference.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::precision::is_half;

use super::*;

/// Why a fused GroupNorm cannot run on a tensor.
pub fn check_groups(channels: usize, groups: usize) -> Result<(), String> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(format!(
            "GroupNorm: {channels} channels do not split into {groups} groups"
        ));
    }
    Ok(())
}

/// `silu(group_norm(x))` (or just the norm when `with_silu` is false) for NCHW `x`, fused into
/// one kernel on wgpu; burn's GroupNorm and SiLU elsewhere. An error, not a wrong answer,
/// when the channels do not divide into the norm's groups.
pub fn group_norm_silu(
    x: Tensor<4>,
    norm: &GroupNorm,
    with_silu: bool,
) -> Result<Tensor<4>, String> {
    let [n, c, h, w] = x.dims();
    check_groups(c, norm.num_groups)?;
    if norm.num_channels != c {
        return Err(format!(
            "GroupNorm over {} channels applied to {c}",
            norm.num_channels
        ));
    }
    if !on_wgpu(&x) {
        if let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) {
            let fused = crate::cpu::group_norm_silu(
                &x,
                &gamma.val(),
                &beta.val(),
                norm.num_groups,
                norm.epsilon,
                with_silu,
            );
            if let Some(out) = fused {
                return Ok(out);
            }
        }
        return Ok(group_norm_silu_reference(x, norm, with_silu));
    }
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        return Ok(group_norm_silu_reference(x, norm, with_silu));
    };
    // f16 tensors stay in f16 (statistics in f32 inside the kernel); others run in f32.
    let dtype = kernel_dtype(&x);
    let x = into_contiguous(cube_of(as_dtype(x, dtype)).expect("on wgpu"));
    let gamma = into_contiguous(cube_of(as_dtype(gamma.val(), dtype)).expect("on wgpu"));
    let beta = into_contiguous(cube_of(as_dtype(beta.val(), dtype)).expect("on wgpu"));
    let out = empty_float(&x, vec![n, c, h, w], dtype);
    let p = params(
        &x,
        &[
            n as u32,
            c as u32,
            (h * w) as u32,
            norm.num_groups as u32,
            (norm.epsilon as f32).to_bits(),
            with_silu as u32,
        ],
    );
    launch(
        &x,
        shader!("groupnorm_silu").with_elem(dtype),
        CubeCount::Static((n * norm.num_groups) as u32, 1, 1),
        vec![
            x.handle.clone(),
            gamma.handle.clone(),
            beta.handle.clone(),
            out.handle.clone(),
            p,
        ],
    );
    Ok(from_cube(out))
}

/// [`group_norm_silu`] with SiLU, for models whose config was validated (group counts divide
/// the channels, so the error cannot happen).
pub fn group_norm_silu_expect(x: Tensor<4>, norm: &GroupNorm) -> Tensor<4> {
    group_norm_silu(x, norm, true).expect("channels divide into groups (config validated)")
}

/// GroupNorm alone (no SiLU) for a model whose config was validated: burn's op in f32 (bit for
/// bit what the models always ran), the fused kernel for f16, which keeps the statistics in
/// f32 where burn's op would compute them in f16.
pub fn group_norm_expect(x: Tensor<4>, norm: &GroupNorm) -> Tensor<4> {
    let half_params = norm
        .gamma
        .as_ref()
        .is_some_and(|g| is_half(g.val().dtype()));
    if is_half(x.dtype()) || half_params {
        group_norm_silu(x, norm, false).expect("channels divide into groups (config validated)")
    } else {
        norm.forward(x)
    }
}

/// burn's GroupNorm, then SiLU.
pub fn group_norm_silu_reference(x: Tensor<4>, norm: &GroupNorm, with_silu: bool) -> Tensor<4> {
    let y = norm.forward(x);
    if with_silu { silu(y) } else { y }
}
