// rope.wgsl — rotary position embedding, out of place, one thread per output word (2 elements).
//   src   (T, H, D)  packed activations (q or k after projection), D even
//   tok   (T)        (sequence slot, position) of each token
//   freqs (P, D/2)   (cos, sin) of pos * inv_freq, from precompute_freqs_cis (with scaling)
//   dst   (T, H, D)  packed, or the KV cache (S, ctx, H, D) at (slot, pos) when to_cache = 1
// Layouts: interleaved = 1 rotates pairs (2i, 2i+1) (Meta, GGUF); 0 rotates (i, i + D/2) (HF).

struct Params {
    heads: u32,
    head_dim: u32,
    tokens: u32,
    interleaved: u32,
    to_cache: u32,
    ctx: u32,       // positions per sequence slot in the cache
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> freqs: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;

// Element e of the head starting at element `base` (even).
fn elem(base: u32, e: u32) -> f32 {
    let v = unpack_act(src[(base + e) / 2u]);
    return select(v.x, v.y, (e & 1u) == 1u);
}

// Rotated value of element e (of D) with the frequency row at `f`.
fn rotated(base: u32, e: u32, f: u32) -> f32 {
    let half = p.head_dim / 2u;
    let x = elem(base, e);
    if e < half {
        let cs = freqs[f + e];
        return x * cs.x - elem(base, e + half) * cs.y;
    }
    let cs = freqs[f + e - half];
    return x * cs.x + elem(base, e - half) * cs.y;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let hw = p.head_dim / 2u; // words per head
    if idx >= p.tokens * p.heads * hw {
        return;
    }
    let wi = idx % hw;
    let th = idx / hw;
    let h = th % p.heads;
    let t = th / p.heads;
    let slot = tok[t].x;
    let pos = tok[t].y;
    let f = pos * hw;
    var v: vec2<f32>;
    if p.interleaved == 1u {
        let xy = unpack_act(src[idx]);
        let cs = freqs[f + wi];
        v = vec2<f32>(xy.x * cs.x - xy.y * cs.y, xy.x * cs.y + xy.y * cs.x);
    } else {
        let base = th * p.head_dim;
        v = vec2<f32>(rotated(base, 2u * wi, f), rotated(base, 2u * wi + 1u, f));
    }
    var o = idx;
    if p.to_cache == 1u {
        o = ((slot * p.ctx + pos) * p.heads + h) * hw + wi;
    }
    dst[o] = pack_act(v);
}
