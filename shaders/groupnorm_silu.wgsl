// Fused GroupNorm + optional SiLU, the pair that opens every ResNet block of the VAE and UNet.
// Layout: x and out are contiguous NCHW, seen as [N, G, (C/G)*H*W]; gamma, beta are [C]; all
// of element type {{ elem }} (f32, or f16 with statistics and arithmetic still in f32).
// params (u32): [N, C, H*W, G, eps (f32 bits), silu (0 or 1)].
// Dispatch: one workgroup of {{ workgroup_size }} threads per (n, g), workgroup_id.x = n*G + g.
// Statistics as PyTorch: mean, then the centred (biased) variance, in two passes; then
// y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c], and y * sigmoid(y) when silu = 1.
{{ enable }}
@group(0) @binding(0) var<storage, read_write> x: array<{{ elem }}>;
@group(0) @binding(1) var<storage, read_write> gamma: array<{{ elem }}>;
@group(0) @binding(2) var<storage, read_write> beta: array<{{ elem }}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{ elem }}>;
@group(0) @binding(4) var<storage, read_write> params: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
var<workgroup> partial: array<f32, {{ workgroup_size }}>;

// Sum of `v` over the workgroup (tree reduction in shared memory).
fn workgroup_sum(local: u32, v: f32) -> f32 {
    partial[local] = v;
    workgroupBarrier();
    var stride = WG / 2u;
    loop {
        if stride == 0u {
            break;
        }
        if local < stride {
            partial[local] = partial[local] + partial[local + stride];
        }
        workgroupBarrier();
        stride = stride / 2u;
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let channels = params[1];
    let hw = params[2];
    let groups = params[3];
    let eps = bitcast<f32>(params[4]);
    let silu = params[5];
    let group = wid.x;
    let per_group = channels / groups;
    let len = per_group * hw;
    let base = group * len;

    var s = 0.0;
    for (var i = local; i < len; i = i + WG) {
        s = s + f32(x[base + i]);
    }
    let mean = workgroup_sum(local, s) / f32(len);
    var q = 0.0;
    for (var i = local; i < len; i = i + WG) {
        let d = f32(x[base + i]) - mean;
        q = q + d * d;
    }
    let variance = workgroup_sum(local, q) / f32(len);
    let sd = sqrt(variance + eps);
    let first_channel = (group % groups) * per_group;
    for (var i = local; i < len; i = i + WG) {
        let c = first_channel + i / hw;
        var y = (f32(x[base + i]) - mean) / sd * f32(gamma[c]) + f32(beta[c]);
        if silu == 1u {
            y = y / (1.0 + exp(-y));
        }
        out[base + i] = {{ elem }}(y);
    }
}
