// Mask feather: one separable pass of a normalised Gaussian (weights computed on the host,
// 2r+1 of them) over a [H, W] f32 mask; run along x, then along y. Edges clamp (the mask
// continues as it is at the border).
// params (u32): [H, W, r, axis (0 = x, 1 = y)]. Dispatch: one thread per pixel, tiled as in
// mask_swap.
@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<u32>;

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let h = i32(params[0]);
    let w = i32(params[1]);
    let r = i32(params[2]);
    let axis = params[3];
    let i = (wid.y * nwg.x + wid.x) * {{ workgroup_size }}u + local;
    if i >= u32(h * w) {
        return;
    }
    let x = i32(i) % w;
    let y = i32(i) / w;
    var acc = 0.0;
    for (var k = -r; k <= r; k = k + 1) {
        var sx = x;
        var sy = y;
        if axis == 0u {
            sx = clamp(x + k, 0, w - 1);
        } else {
            sy = clamp(y + k, 0, h - 1);
        }
        acc = acc + weights[k + r] * src[sy * w + sx];
    }
    out[i] = acc;
}
