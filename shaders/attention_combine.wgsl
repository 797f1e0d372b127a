// attention_combine.wgsl — merges the split-K partials of attention.wgsl:
//   out = (sum_s acc_s * exp(m_s - M)) / sum_s l_s * exp(m_s - M),  M = max_s m_s
//   part (T, H, splits, 2 + D) f32: m, l, acc[D] per split (splits with some key: the others
//        are not written)
//   tok  (T) (slot, position): splits starting past the token's position are empty and skipped
//   out  (T, H, D) packed activations
//   xq, xs with QUANT (D % 32 == 0): the output quantized per block of 32 instead (the int8
//        GEMV's input, in quant_act.wgsl's BLOCKS layout over rows of H*D), its values rounded to
//        the activations' precision first, as quant_act would read them from `out`
// One 64-thread workgroup per (token, head): thread s < splits weighs split s, then each thread
// owns output words lid, lid + 64 (QUANT: int8 word lid of the head, quant_word's order).

override QUANT: bool = false;
const WG: u32 = 64u; // reduce.wgsl

struct Params {
    heads: u32,
    head_dim: u32,
    tokens: u32,
    splits: u32,
    chunk: u32, // keys per split
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> xq: array<u32>;
@group(0) @binding(5) var<storage, read_write> xs: array<f32>;

var<workgroup> ms: array<f32, 64>; // m per split, then each split's weight
var<workgroup> ls: array<f32, 64>;

// Elements b (indices into part of split 0) of the merged output: the sum over the splits of
// part[b + s * stride] * ms[s], four splits' loads issued together.
fn combined4(b: vec4<u32>, stride: u32, used: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    var s = 0u;
    for (; s + 4u <= used; s += 4u) {
        var v: array<vec4<f32>, 4>;
        for (var j = 0u; j < 4u; j++) {
            let o = b + vec4<u32>((s + j) * stride);
            v[j] = vec4<f32>(part[o.x], part[o.y], part[o.z], part[o.w]);
        }
        acc += v[0] * ms[s] + v[1] * ms[s + 1u] + v[2] * ms[s + 2u] + v[3] * ms[s + 3u];
    }
    for (; s < used; s++) {
        let o = b + vec4<u32>(s * stride);
        acc += vec4<f32>(part[o.x], part[o.y], part[o.z], part[o.w]) * ms[s];
    }
    return acc;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let th = wid.x + wid.y * nwg.x;
    if th >= p.tokens * p.heads {
        return;
    }
    let stride = 2u + p.head_dim;
    let base = th * p.splits * stride;
    // splits holding keys 0..=pos (a long cache at an early position uses few)
    let used = min(p.splits, tok[th / p.heads].y / p.chunk + 1u);
    // 1. each split's (m, l), one per thread (splits <= 64)
    ms[lid] = -3.0e38;
    ls[lid] = 0.0;
    if lid < used {
        ms[lid] = part[base + lid * stride];
        ls[lid] = part[base + lid * stride + 1u];
    }
    workgroupBarrier();
    var big_m = -3.0e38;
    for (var s = 0u; s < used; s++) {
        if ls[s] > 0.0 {
            big_m = max(big_m, ms[s]);
        }
    }
    var l = 0.0;
    for (var s = 0u; s < used; s++) {
        if ls[s] > 0.0 {
            l += ls[s] * exp(ms[s] - big_m);
        }
    }
    workgroupBarrier();
    // 2. the weight of each split's accumulator (0 for empty splits), the division by l last: a
    // token whose keys all lie in split 0 gets acc_0 * 1 / l, bit for bit what attention.wgsl
    // writes without splits (a decode step's split count follows its longest sequence)
    if lid < used {
        ms[lid] = select(0.0, exp(ms[lid] - big_m), ls[lid] > 0.0);
    }
    workgroupBarrier();
    let hw = p.head_dim / 2u;
    if QUANT {
        let words = p.head_dim / 4u; // <= 64: the head's int8 words, a block's 8 in adjacent threads
        var v = vec4<f32>(0.0);
        if lid < words {
            let e = vec4<u32>(quant_word_elem(lid, 0u), quant_word_elem(lid, 1u), quant_word_elem(lid, 2u),
                              quant_word_elem(lid, 3u));
            v = combined4(vec4<u32>(base + 2u) + e, stride, used) / l;
        }
        let qw = quant_word(lid, vec4<f32>(unpack_act(pack_act(v.xy)), unpack_act(pack_act(v.zw))));
        if lid < words {
            let row_words = p.heads * words; // the token's row of H*D values
            let t = th / p.heads;
            let w = (th % p.heads) * words + lid;
            xq[quant_word_index(t, w, row_words)] = qw.q;
            if w % 8u == 0u {
                xs[2u * (t * (row_words / 8u) + w / 8u)] = qw.ds.x;
                xs[2u * (t * (row_words / 8u) + w / 8u) + 1u] = qw.ds.y;
            }
        }
        return;
    }
    for (var w = lid; w < hw; w += 64u) {
        var acc = vec2<f32>(0.0);
        let b0 = base + 2u + 2u * w;
        var s = 0u;
        // eight splits' loads issued together (straight-line code: GPUs do not reorder loads
        // across loop iterations)
        for (; s + 8u <= used; s += 8u) {
            let b = b0 + s * stride;
            let v0 = vec2<f32>(part[b], part[b + 1u]);
            let v1 = vec2<f32>(part[b + stride], part[b + stride + 1u]);
            let v2 = vec2<f32>(part[b + 2u * stride], part[b + 2u * stride + 1u]);
            let v3 = vec2<f32>(part[b + 3u * stride], part[b + 3u * stride + 1u]);
            let v4 = vec2<f32>(part[b + 4u * stride], part[b + 4u * stride + 1u]);
            let v5 = vec2<f32>(part[b + 5u * stride], part[b + 5u * stride + 1u]);
            let v6 = vec2<f32>(part[b + 6u * stride], part[b + 6u * stride + 1u]);
            let v7 = vec2<f32>(part[b + 7u * stride], part[b + 7u * stride + 1u]);
            acc += v0 * ms[s] + v1 * ms[s + 1u] + v2 * ms[s + 2u] + v3 * ms[s + 3u]
                 + v4 * ms[s + 4u] + v5 * ms[s + 5u] + v6 * ms[s + 6u] + v7 * ms[s + 7u];
        }
        for (; s < used; s++) {
            let b = b0 + s * stride;
            acc += vec2<f32>(part[b], part[b + 1u]) * ms[s];
        }
        out[th * hw + w] = pack_act(acc / l);
    }
}
