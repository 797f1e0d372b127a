// swiglu.wgsl — out = silu(gate) * up (the Llama MLP's activation) from the gate/up projection's
// output, in one of two layouts:
//   interleaved = 1: gu (T, 2I) with columns (gate_0, up_0, gate_1, up_1, ...), so each packed
//                    word holds one (gate, up) pair (the fused gate/up weight's row order);
//   interleaved = 0: gu (T, 2I) with columns [gate | up].
//   out (T, I) packed activations, I even. One thread per output word.

struct Params {
    inter: u32,       // I
    tokens: u32,
    interleaved: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn silu_mul(g: vec2<f32>, u: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(silu(g.x), silu(g.y)) * u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let half = p.inter / 2u; // output words per token
    if i >= p.tokens * half {
        return;
    }
    let t = i / half;
    let j = i % half;
    let row = t * p.inter; // the token's gu row, in words
    if p.interleaved == 1u {
        let a = unpack_act(gu[row + 2u * j]);      // (gate, up) of element 2j
        let b = unpack_act(gu[row + 2u * j + 1u]); // (gate, up) of element 2j + 1
        out[i] = pack_act(silu_mul(vec2<f32>(a.x, b.x), vec2<f32>(a.y, b.y)));
    } else {
        out[i] = pack_act(silu_mul(unpack_act(gu[row + j]), unpack_act(gu[row + half + j])));
    }
}
