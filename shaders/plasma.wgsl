// Colormap for AU-GAN's uncertainty map: values to packed RGBA8 (R in the low byte) through
// a plasma table of 1024 entries (one u32 each, built on the host from the colormap), alpha
// 255. The entry is the number of thresholds <= v (binary search over 1023 increasing f32
// thresholds the host computes from the CPU formula entry = floor(clamp((v - lo) * scale,
// 0, 1) * 1023 + 0.5), NaN -> 0), so the result is bit-exact whatever the compiler fuses.
// params (u32): [count]. Dispatch: one thread per value, tiled as in mask_swap.
@group(0) @binding(0) var<storage, read_write> values: array<f32>;
@group(0) @binding(1) var<storage, read_write> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read_write> params: array<u32>;
@group(0) @binding(4) var<storage, read_write> thresholds: array<f32>;

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
    let v = values[i];
    var lo = 0u;
    var hi = 1023u;
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
    out[i] = table[lo] | (255u << 24u);
}
