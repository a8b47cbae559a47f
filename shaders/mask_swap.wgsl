// The asymmetric decoder's mask-guided swap: out = x * m + cond * (1 - m), where m is the
// mask nearest-resized to the feature size (m[y][x] = mask[y*Hm/H][x*Wm/W]).
// Layout: x, cond, out are contiguous NCHW [N, C, H, W]; mask is [N, 1, Hm, Wm]; all of element
// type {{ elem }} (f32, or f16 with the blend computed in f32).
// params (u32): [N, C, H, W, Hm, Wm].
// Dispatch: one thread per output element; workgroups tile x first, then y
// (index = (workgroup_id.y * num_workgroups.x + workgroup_id.x) * {{ workgroup_size }} + local).
{{ enable }}
@group(0) @binding(0) var<storage, read_write> x: array<{{ elem }}>;
@group(0) @binding(1) var<storage, read_write> cond: array<{{ elem }}>;
@group(0) @binding(2) var<storage, read_write> mask: array<{{ elem }}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{ elem }}>;
@group(0) @binding(4) var<storage, read_write> params: array<u32>;

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let n = params[0];
    let c = params[1];
    let h = params[2];
    let w = params[3];
    let hm = params[4];
    let wm = params[5];
    let i = (wid.y * nwg.x + wid.x) * {{ workgroup_size }}u + local;
    if i >= n * c * h * w {
        return;
    }
    let xx = i % w;
    let yy = (i / w) % h;
    let b = i / (w * h * c);
    let my = min(yy * hm / h, hm - 1u);
    let mx = min(xx * wm / w, wm - 1u);
    let m = f32(mask[(b * hm + my) * wm + mx]);
    out[i] = {{ elem }}(f32(x[i]) * m + f32(cond[i]) * (1.0 - m));
}
