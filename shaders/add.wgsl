// add.wgsl — residual add in place: x += y.
//   x (T, C) f32, the residual stream (kept in f32 on both activation paths);
//   y (T, C) packed activations (a layer's output). One thread per pair.

struct Params {
    words: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= p.words {
        return;
    }
    x[i] = x[i] + unpack_act(y[i]);
}
