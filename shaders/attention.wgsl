// attention.wgsl — causal grouped-query attention over the KV cache, flash-style: keys are
// visited in tiles of 64 with an online softmax (running max m, running sum l), all in f32.
//   q      (T, H, D)        packed, RoPE applied
//   tok    (T)              (sequence slot, position); token t sees cache positions 0..=pos
//   kcache (S, ctx, Hkv, D) packed, RoPE applied
//   vcache (S, ctx, Hkv, D) packed
//   out    (T, H, D)        packed: softmax(q k^T * scale) v
// One 64-thread workgroup per (token, head, split); query head h reads KV head h / (H / Hkv).
// Split-K (flash-decoding): with splits > 1, workgroup s only visits keys [s*chunk, (s+1)*chunk)
// and writes its partial (m, l, acc[D]) to `part` (nothing where those keys all lie past the
// token's position);
// attention_combine.wgsl merges the splits. With splits = 1 the normalised output goes to `out`.
// D = HEAD_DIM <= 256, a constant, so the unit loops below unroll. A key or value row is read in
// units of 8 values (one vec4<u32>; the last unit zero-filled when D is not a multiple of 8).
// Decode is bound by memory latency, not bandwidth, so each phase issues all its loads at once:
// a tile costs one round trip for its keys and one for its values. Rows past the last key are
// read at the last key's address (in bounds) and weighed by zero.

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
@group(0) @binding(3) var<storage, read> kcache: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> vcache: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<storage, read_write> part: array<f32>; // (T, H, splits, 2 + D) when splits > 1

const TILE: u32 = 64u;
const WG: u32 = TILE; // one thread per key of a tile (reduce.wgsl)
const NEG: f32 = -3.0e38;

var<workgroup> qs: array<vec2<f32>, 128>; // the query head as pairs, zero past D
var<workgroup> probs: array<f32, TILE>;
var<workgroup> vred: array<vec4<f32>, 128>; // per-thread value sums, merged at the end
var<workgroup> wpos: u32; // the token's position, read once for the workgroup

// Units (of 8 values) per head row.
fn units() -> u32 {
    return (HEAD_DIM + 7u) / 8u;
}

// Words 4u..4u+3 of the K cache row starting at word b (zeros past the row). (v_unit: the same
// for the V cache; WGSL cannot pass the buffer.)
fn k_unit(b: u32, u: u32) -> vec4<u32> {
    if HEAD_DIM % 8u == 0u {
        return kcache[b / 4u + u];
    }
    var w = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let j = 4u * u + i;
        if j < HEAD_DIM / 2u {
            w[i] = kcache[(b + j) / 4u][(b + j) % 4u];
        }
    }
    return w;
}

fn v_unit(b: u32, u: u32) -> vec4<u32> {
    if HEAD_DIM % 8u == 0u {
        return vcache[b / 4u + u];
    }
    var w = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let j = 4u * u + i;
        if j < HEAD_DIM / 2u {
            w[i] = vcache[(b + j) / 4u][(b + j) % 4u];
        }
    }
    return w;
}

// q . k over unit u of the key row at word kb (0 past the row: the loop below always runs 16).
fn kdot(kb: u32, u: u32) -> f32 {
    if u >= units() {
        return 0.0;
    }
    let kw = k_unit(kb, u);
    let i = 4u * u;
    return dot(qs[i], unpack_act(kw.x)) + dot(qs[i + 1u], unpack_act(kw.y))
         + dot(qs[i + 2u], unpack_act(kw.z)) + dot(qs[i + 3u], unpack_act(kw.w));
}

// prob * the 8 values of unit w, as (values 0..3, values 4..7).
fn weigh(prob: f32, w: vec4<u32>) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(prob * vec4<f32>(unpack_act(w.x), unpack_act(w.y)),
                               prob * vec4<f32>(unpack_act(w.z), unpack_act(w.w)));
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
    let at = tok[t];
    // a split whose keys all lie past the token's position has nothing to do (attention_combine
    // reads splits 0..=pos / chunk only): a short sequence in a long cache skips most of them
    if lid == 0u {
        wpos = at.y;
    }
    let split = wid.z;
    let k_begin = split * p.chunk;
    if workgroupUniformLoad(&wpos) < k_begin {
        return;
    }
    for (var i = lid; i < 128u; i += TILE) {
        qs[i] = select(vec2<f32>(0.0), unpack_act(q[th * hw + min(i, hw - 1u)]), i < hw);
    }
    workgroupBarrier();

    // keys k_begin..n_keys (the last split's reach to the token's position)
    let n_keys = select(min(at.y + 1u, k_begin + p.chunk), at.y + 1u, split + 1u == p.splits);
    let row_words = p.kv_heads * hw;
    let seq_base = at.x * p.ctx;
    let head_word = kvh * hw;
    // values: thread (g, c) owns unit c of keys g, g + kp, g + 2 kp, ... of each tile
    let nu = units();
    let kp = TILE / nu; // keys side by side
    let g = lid / nu;
    let c = lid % nu;
    var m = NEG;
    var l = 0.0;
    var acc = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var t0 = k_begin; t0 < n_keys; t0 += TILE) {
        let last = n_keys - 1u;
        // 1. one key per thread: score = q . k * scale, the row's units loaded together
        let key = t0 + lid;
        let kb = (seq_base + min(key, last)) * row_words + head_word;
        var d = 0.0;
        for (var u = 0u; u < nu; u += 16u) {
            d += kdot(kb, u) + kdot(kb, u + 1u) + kdot(kb, u + 2u) + kdot(kb, u + 3u)
               + kdot(kb, u + 4u) + kdot(kb, u + 5u) + kdot(kb, u + 6u) + kdot(kb, u + 7u)
               + kdot(kb, u + 8u) + kdot(kb, u + 9u) + kdot(kb, u + 10u) + kdot(kb, u + 11u)
               + kdot(kb, u + 12u) + kdot(kb, u + 13u) + kdot(kb, u + 14u) + kdot(kb, u + 15u);
        }
        let score = select(NEG, d * p.scale, key < n_keys);
        // 2. online softmax update
        let m_new = max(m, wg_max(lid, score));
        let pj = select(0.0, exp(score - m_new), key < n_keys);
        probs[lid] = pj;
        let corr = exp(m - m_new);
        l = l * corr + wg_sum(lid, pj);
        m = m_new;
        acc[0] *= corr;
        acc[1] *= corr;
        // 3. p_j * v_j: 16 keys' units loaded together (one round for D <= 128)
        if g < kp {
            let nk = min(TILE, n_keys - t0);
            for (var j0 = g; j0 < nk; j0 += 16u * kp) {
                var w: array<vec4<u32>, 16>;
                var pw: array<f32, 16>;
                for (var n = 0u; n < 16u; n++) {
                    let j = j0 + n * kp;
                    w[n] = v_unit((seq_base + t0 + min(j, nk - 1u)) * row_words + head_word, c);
                    pw[n] = select(0.0, probs[min(j, TILE - 1u)], j < nk);
                }
                for (var n = 0u; n < 16u; n++) {
                    let a = weigh(pw[n], w[n]);
                    acc[0] += a[0];
                    acc[1] += a[1];
                }
            }
        }
        workgroupBarrier();
    }
    // 4. merge the kp partial sums of each unit
    vred[2u * lid] = acc[0];
    vred[2u * lid + 1u] = acc[1];
    workgroupBarrier();
    if lid >= nu {
        return;
    }
    var sum = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k = 0u; k < kp; k++) {
        sum[0] += vred[2u * (k * nu + lid)];
        sum[1] += vred[2u * (k * nu + lid) + 1u];
    }
    let vals = array<vec2<f32>, 4>(sum[0].xy, sum[0].zw, sum[1].xy, sum[1].zw);
    if p.splits == 1u {
        for (var i = 0u; i < 4u; i++) {
            let wd = 4u * lid + i;
            if wd < hw {
                out[th * hw + wd] = pack_act(vals[i] / l);
            }
        }
        return;
    }
    let base = (th * p.splits + split) * (2u + HEAD_DIM);
    if lid == 0u {
        part[base] = m;
        part[base + 1u] = l;
    }
    for (var i = 0u; i < 4u; i++) {
        let wd = 4u * lid + i;
        if wd < hw {
            part[base + 2u + 2u * wd] = vals[i].x;
            part[base + 3u + 2u * wd] = vals[i].y;
        }
    }
}
