// Image in: packed RGBA8 pixels (one u32 per pixel, R in the low byte) to a [1, 3, H, W]
// f32 tensor in [-1, 1]: v / 127.5 - 1 per colour channel (alpha is dropped).
// params (u32): [H * W]. Dispatch: one thread per pixel, workgroups tiled as in mask_swap.
@group(0) @binding(0) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<u32>;

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let count = params[0];
    let i = (wid.y * nwg.x + wid.x) * {{ workgroup_size }}u + local;
    if i >= count {
        return;
    }
    let p = pixels[i];
    for (var c = 0u; c < 3u; c = c + 1u) {
        let v = f32((p >> (8u * c)) & 255u);
        out[c * count + i] = v / 127.5 - 1.0;
    }
}
