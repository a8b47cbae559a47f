// Image out: a [1, 3, H, W] f32 tensor in [-1, 1] to packed RGBA8 (one u32 per pixel, R in
// the low byte), alpha 255. The byte is the number of thresholds <= x (binary search over 255
// increasing f32 thresholds computed on the host from the CPU formula
// round(clamp((x + 1) * 127.5, 0, 255))), so the result is bit-exact whatever the shader
// compiler does with the arithmetic (fused multiply-add, division precision). With blend = 1,
// the result is blended with the original pixels through an 8-bit mask (the paste-back):
// out = (new * m + orig * (255 - m) + 127) / 255 in integers, alpha from the original.
// params (u32): [H * W, blend]. Buffers original and mask (one u32 per pixel, mask in the
// low byte) are read only when blend = 1. Dispatch: one thread per pixel, tiled as mask_swap.
@group(0) @binding(0) var<storage, read_write> image: array<f32>;
@group(0) @binding(1) var<storage, read_write> original: array<u32>;
@group(0) @binding(2) var<storage, read_write> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read_write> params: array<u32>;
@group(0) @binding(5) var<storage, read_write> thresholds: array<f32>;

fn to_byte(v: f32) -> u32 {
    var lo = 0u;
    var hi = 255u;
    loop {
        if lo >= hi {
            break;
        }
        let mid = (lo + hi) / 2u;
        if v >= thresholds[mid] {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let count = params[0];
    let blend = params[1];
    let i = (wid.y * nwg.x + wid.x) * {{ workgroup_size }}u + local;
    if i >= count {
        return;
    }
    var packed = 255u << 24u;
    if blend == 1u {
        packed = original[i] & 0xff000000u;
    }
    for (var c = 0u; c < 3u; c = c + 1u) {
        var v = to_byte(image[c * count + i]);
        if blend == 1u {
            let m = mask[i] & 255u;
            let o = (original[i] >> (8u * c)) & 255u;
            v = (v * m + o * (255u - m) + 127u) / 255u;
        }
        packed = packed | (v << (8u * c));
    }
    out[i] = packed;
}
