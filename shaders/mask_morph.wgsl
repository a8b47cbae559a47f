// Mask grow / shrink: one separable pass of a (2r+1) max (grow) or min (shrink) filter over a
// [H, W] f32 mask; run it along x, then along y, for a square structuring element. Outside
// the image counts as 0 when growing and 1 when shrinking (the border does not erode a mask).
// params (u32): [H, W, r, grow (1) / shrink (0), axis (0 = x, 1 = y)].
// Dispatch: one thread per pixel, tiled as in mask_swap.
@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<u32>;

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let h = i32(params[0]);
    let w = i32(params[1]);
    let r = i32(params[2]);
    let grow = params[3] == 1u;
    let axis = params[4];
    let i = (wid.y * nwg.x + wid.x) * {{ workgroup_size }}u + local;
    if i >= u32(h * w) {
        return;
    }
    let x = i32(i) % w;
    let y = i32(i) / w;
    var acc = select(1.0, 0.0, grow);
    for (var k = -r; k <= r; k = k + 1) {
        var sx = x;
        var sy = y;
        if axis == 0u {
            sx = x + k;
        } else {
            sy = y + k;
        }
        var v = select(1.0, 0.0, grow);
        if sx >= 0 && sx < w && sy >= 0 && sy < h {
            v = src[sy * w + sx];
        }
        if grow {
            acc = max(acc, v);
        } else {
            acc = min(acc, v);
        }
    }
    out[i] = acc;
}
