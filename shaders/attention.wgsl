// attention.wgsl — causal grouped-query attention over the KV cache, flash-style: keys are
// visited in tiles of 64 with an online softmax (running max m, running sum l), all in f32.
//   q      (T, H, D)        packed, RoPE applied
//   tok    (T)              (sequence slot, position); token t sees cache positions 0..=pos
//   kcache (S, ctx, Hkv, D) packed, RoPE applied
//   vcache (S, ctx, Hkv, D) packed
//   out    (T, H, D)        packed: softmax(q k^T * scale) v
// One 64-thread workgroup per (token, head, split); query head h reads KV head h / (H / Hkv).
// Split-K (flash-decoding): with splits > 1, workgroup s only visits keys [s*chunk, (s+1)*chunk)
// and writes its partial (m, l, acc[D]) to `part`; attention_combine.wgsl merges the splits.
// With splits = 1 the normalised output goes straight to `out`.
// D = HEAD_DIM <= 256 (each thread owns at most two output words); a constant so the loops over
// D unroll and their loads are issued together.

override HEAD_DIM: u32 = 128u;

struct Params {
    heads: u32,
    kv_heads: u32,
    _pad: u32,
    tokens: u32,
    ctx: u32,
    scale: f32,
    splits: u32, // key ranges per (token, head)
    chunk: u32,  // keys per range
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<u32>;
@group(0) @binding(2) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> kcache: array<vec4<u32>>; // 16-byte loads when D % 8 == 0
@group(0) @binding(4) var<storage, read> vcache: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<storage, read_write> part: array<f32>; // (T, H, splits, 2 + D) when splits > 1

const TILE: u32 = 64u;
const NEG: f32 = -3.0e38;

var<workgroup> qs: array<vec2<f32>, 128>; // the query head, as pairs
var<workgroup> probs: array<f32, TILE>;
var<workgroup> red: array<f32, TILE>;

fn reduce_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = TILE / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = TILE / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// q . k over the 8 elements of query words i..i+3 and key words kw.
fn dot4w(i: u32, kw: vec4<u32>) -> f32 {
    return dot(qs[i], unpack_act(kw.x)) + dot(qs[i + 1u], unpack_act(kw.y))
         + dot(qs[i + 2u], unpack_act(kw.z)) + dot(qs[i + 3u], unpack_act(kw.w));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let th = wid.x + wid.y * nwg.x;
    if th >= p.tokens * p.heads {
        return;
    }
    let t = th / p.heads;
    let h = th % p.heads;
    let kvh = h / (p.heads / p.kv_heads);
    let hw = HEAD_DIM / 2u;
    for (var i = lid; i < hw; i += TILE) {
        qs[i] = unpack_act(q[th * hw + i]);
    }
    workgroupBarrier();

    let at = tok[t];
    let split = wid.z;
    let k_begin = split * p.chunk;
    let n_keys = min(at.y + 1u, k_begin + p.chunk); // keys k_begin..n_keys (may be empty)
    let row_words = p.kv_heads * hw;
    let seq_base = at.x * p.ctx;
    var m = NEG;
    var l = 0.0;
    var acc0 = vec2<f32>(0.0); // output word lid
    var acc1 = vec2<f32>(0.0); // output word lid + 64
    for (var t0 = k_begin; t0 < n_keys; t0 += TILE) {
        // 1. one key per thread: score = q . k * scale
        let key = t0 + lid;
        var score = NEG;
        if key < n_keys {
            let kb = (seq_base + key) * row_words + kvh * hw;
            var d = 0.0;
            if hw % 32u == 0u {
                // eight 16-byte loads issued together (straight-line code: GPUs do not reorder
                // loads across loop iterations)
                for (var i = 0u; i < hw; i += 32u) {
                    let b = (kb + i) / 4u;
                    let k0 = kcache[b];
                    let k1 = kcache[b + 1u];
                    let k2 = kcache[b + 2u];
                    let k3 = kcache[b + 3u];
                    let k4 = kcache[b + 4u];
                    let k5 = kcache[b + 5u];
                    let k6 = kcache[b + 6u];
                    let k7 = kcache[b + 7u];
                    d += dot4w(i, k0) + dot4w(i + 4u, k1) + dot4w(i + 8u, k2) + dot4w(i + 12u, k3)
                       + dot4w(i + 16u, k4) + dot4w(i + 20u, k5) + dot4w(i + 24u, k6) + dot4w(i + 28u, k7);
                }
            } else if hw % 16u == 0u {
                for (var i = 0u; i < hw; i += 16u) {
                    let b = (kb + i) / 4u;
                    let k0 = kcache[b];
                    let k1 = kcache[b + 1u];
                    let k2 = kcache[b + 2u];
                    let k3 = kcache[b + 3u];
                    d += dot4w(i, k0) + dot4w(i + 4u, k1) + dot4w(i + 8u, k2) + dot4w(i + 12u, k3);
                }
            } else if hw % 4u == 0u {
                for (var i = 0u; i < hw; i += 4u) {
                    d += dot4w(i, kcache[(kb + i) / 4u]);
                }
            } else {
                for (var i = 0u; i < hw; i++) {
                    d += dot(qs[i], unpack_act(kcache[(kb + i) / 4u][(kb + i) % 4u]));
                }
            }
            score = d * p.scale;
        }
        // 2. online softmax update
        let m_new = max(m, reduce_max(lid, score));
        var pj = 0.0;
        if key < n_keys {
            pj = exp(score - m_new);
        }
        probs[lid] = pj;
        let corr = exp(m - m_new);
        l = l * corr + reduce_sum(lid, pj);
        m = m_new;
        acc0 *= corr;
        acc1 *= corr;
        // 3. accumulate p_j * v_j for this thread's output words, 8 keys' loads at a time
        let nk = min(TILE, n_keys - t0);
        let vb = (seq_base + t0) * row_words + kvh * hw;
        if lid < hw {
            var j = 0u;
            for (; j + 16u <= nk; j += 16u) {
                let b = vb + j * row_words + lid;
                var v: array<u32, 16>;
                v[0] = vcache[b];
                v[1] = vcache[b + row_words];
                v[2] = vcache[b + 2u * row_words];
                v[3] = vcache[b + 3u * row_words];
                v[4] = vcache[b + 4u * row_words];
                v[5] = vcache[b + 5u * row_words];
                v[6] = vcache[b + 6u * row_words];
                v[7] = vcache[b + 7u * row_words];
                v[8] = vcache[b + 8u * row_words];
                v[9] = vcache[b + 9u * row_words];
                v[10] = vcache[b + 10u * row_words];
                v[11] = vcache[b + 11u * row_words];
                v[12] = vcache[b + 12u * row_words];
                v[13] = vcache[b + 13u * row_words];
                v[14] = vcache[b + 14u * row_words];
                v[15] = vcache[b + 15u * row_words];
                acc0 += probs[j] * unpack_act(v[0]) + probs[j + 1u] * unpack_act(v[1])
                      + probs[j + 2u] * unpack_act(v[2]) + probs[j + 3u] * unpack_act(v[3])
                      + probs[j + 4u] * unpack_act(v[4]) + probs[j + 5u] * unpack_act(v[5])
                      + probs[j + 6u] * unpack_act(v[6]) + probs[j + 7u] * unpack_act(v[7])
                      + probs[j + 8u] * unpack_act(v[8]) + probs[j + 9u] * unpack_act(v[9])
                      + probs[j + 10u] * unpack_act(v[10]) + probs[j + 11u] * unpack_act(v[11])
                      + probs[j + 12u] * unpack_act(v[12]) + probs[j + 13u] * unpack_act(v[13])
                      + probs[j + 14u] * unpack_act(v[14]) + probs[j + 15u] * unpack_act(v[15]);
            }
            for (; j < nk; j++) {
                acc0 += probs[j] * unpack_act(vcache[vb + j * row_words + lid]);
            }
        }
        if lid + TILE < hw {
            for (var j = 0u; j < nk; j++) {
                acc1 += probs[j] * unpack_act(vcache[vb + j * row_words + lid + TILE]);
            }
        }
        workgroupBarrier();
    }
    if p.splits == 1u {
        if lid < hw {
            out[th * hw + lid] = pack_act(acc0 / l);
        }
        if lid + TILE < hw {
            out[th * hw + lid + TILE] = pack_act(acc1 / l);
        }
        return;
    }
    let base = (th * p.splits + split) * (2u + HEAD_DIM);
    if lid == 0u {
        part[base] = m;
        part[base + 1u] = l;
    }
    if lid < hw {
        part[base + 2u + 2u * lid] = acc0.x;
        part[base + 3u + 2u * lid] = acc0.y;
    }
    if lid + TILE < hw {
        part[base + 2u + 2u * (lid + TILE)] = acc1.x;
        part[base + 3u + 2u * (lid + TILE)] = acc1.y;
    }
}
