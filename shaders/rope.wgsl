// rope.wgsl — the attention inputs of T tokens in one dispatch: RoPE on q into `q_out`, RoPE on k
// and a plain copy of v into the KV cache at each token's (slot, position).
//   qkv     (T, (H + 2 Hkv) D)  packed activations, rows [q heads | k heads | v heads], D even
//   tok     (T)                 (sequence slot, position) of each token
//   freqs   (P, D/2)            (cos, sin) of pos * inv_freq, from precompute_freqs_cis (with scaling)
//   q_out   (T, H, D)           packed
//   k_cache, v_cache (S, ctx, Hkv, D) packed
// Rotary pairs are (2i, 2i+1) (Meta's and GGUF's layout; the loader reorders HF q/k rows so).
// One thread per word (2 elements) of qkv.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    tokens: u32,
    ctx: u32,       // positions per sequence slot in the cache
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<u32>;
@group(0) @binding(2) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> freqs: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> q_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let hw = p.head_dim / 2u; // words per head
    let row_heads = p.heads + 2u * p.kv_heads;
    if idx >= p.tokens * row_heads * hw {
        return;
    }
    let wi = idx % hw;
    let th = idx / hw;
    let h = th % row_heads; // head within the token's row: q heads, then k heads, then v heads
    let t = th / row_heads;
    let slot = tok[t].x;
    let pos = tok[t].y;
    let cache_row = (slot * p.ctx + pos) * p.kv_heads;
    if h >= p.heads + p.kv_heads {
        v_cache[(cache_row + h - p.heads - p.kv_heads) * hw + wi] = qkv[idx];
        return;
    }
    let xy = unpack_act(qkv[idx]);
    let cs = freqs[pos * hw + wi];
    let v = vec2<f32>(xy.x * cs.x - xy.y * cs.y, xy.x * cs.y + xy.y * cs.x);
    if h < p.heads {
        q_out[(t * p.heads + h) * hw + wi] = pack_act(v);
    } else {
        k_cache[(cache_row + h - p.heads) * hw + wi] = pack_act(v);
    }
}
