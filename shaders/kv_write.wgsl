// kv_write.wgsl — append T tokens' values to the cache at their (slot, position).
//   src   (T, Hkv, D)          packed activations
//   tok   (T)                  (sequence slot, position)
//   cache (S, ctx, Hkv, D)     packed
// One thread per word.

struct Params {
    row_words: u32, // Hkv * D / 2
    tokens: u32,
    ctx: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> cache: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    if idx >= p.tokens * p.row_words {
        return;
    }
    let t = idx / p.row_words;
    let at = tok[t];
    cache[(at.x * p.ctx + at.y) * p.row_words + idx % p.row_words] = src[idx];
}
