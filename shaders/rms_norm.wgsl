// rms_norm.wgsl — out = x / sqrt(mean(x^2) + eps) * weight, statistics in f32.
//   x (T, C) f32 (the residual stream), out (T, C) packed activations, C even;
//   weight (C) in W_DTYPE (weights.wgsl, not a block format).
// One 256-thread workgroup per token row (rows folded over x/y).

struct Params {
    c: u32,   // row length (elements, even)
    t: u32,   // rows
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;   // (T, C/2) pairs
// @binding(2) w: (C) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, C/2)

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.t {
        return;
    }
    let pairs = p.c / 2u;
    let base = row * pairs;
    var ss = 0.0;
    for (var i = lid; i < pairs; i += WG) {
        let v = x[base + i];
        ss += dot(v, v);
    }
    red[lid] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(red[0] / f32(p.c) + p.eps);
    for (var i = lid; i < pairs; i += WG) {
        out[base + i] = pack_act(x[base + i] * inv * load_w2(2u * i));
    }
}
