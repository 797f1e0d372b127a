// swiglu.wgsl — out = silu(gate) * up, elementwise (the Llama MLP's activation).
//   gate, up, out (T, I) packed activations. One thread per word.

struct Params {
    words: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<u32>;
@group(0) @binding(2) var<storage, read> up: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= p.words {
        return;
    }
    let g = unpack_act(gate[i]);
    let silu = g / (vec2<f32>(1.0) + exp(-g));
    out[i] = pack_act(silu * unpack_act(up[i]));
}
