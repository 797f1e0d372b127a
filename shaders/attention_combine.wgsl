// attention_combine.wgsl — merges the split-K partials of attention.wgsl:
//   out = sum_s acc_s * exp(m_s - M) / sum_s l_s * exp(m_s - M),  M = max_s m_s
//   part (T, H, splits, 2 + D) f32: m, l, acc[D] per split (empty splits have l = 0)
//   out  (T, H, D) packed activations
// One 64-thread workgroup per (token, head): thread s < splits reads split s's (m, l) while
// every thread loads its output words' accumulators of 16 splits at once (decode is bound by
// memory latency: one round trip for up to 16 splits), then weighs them.

struct Params {
    heads: u32,
    head_dim: u32,
    tokens: u32,
    splits: u32, // <= 64
    chunk: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> wt: array<f32, 64>; // m per split, then each split's weight
var<workgroup> ls: array<f32, 64>;

// The accumulator pair at word offset `off` of splits s0..s0+16 (split n-1's past the last).
fn load16(base: u32, off: u32, s0: u32) -> array<vec2<f32>, 16> {
    let stride = 2u + p.head_dim;
    var a: array<vec2<f32>, 16>;
    for (var k = 0u; k < 16u; k++) {
        let b = base + min(s0 + k, p.splits - 1u) * stride + off;
        a[k] = vec2<f32>(part[b], part[b + 1u]);
    }
    return a;
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
    let n = p.splits;
    let hw = p.head_dim / 2u;
    // 1. split lid's (m, l); this thread's first output word's accumulators of splits 0..16
    let sl = min(lid, n - 1u);
    let m_own = part[base + sl * stride];
    let l_own = part[base + sl * stride + 1u];
    var a = load16(base, 2u + 2u * min(lid, hw - 1u), 0u);
    wt[lid] = select(-3.0e38, m_own, lid < n);
    ls[lid] = select(0.0, l_own, lid < n);
    workgroupBarrier();
    var big_m = -3.0e38;
    for (var s = 0u; s < n; s++) {
        if ls[s] > 0.0 {
            big_m = max(big_m, wt[s]);
        }
    }
    var l = 0.0;
    for (var s = 0u; s < n; s++) {
        if ls[s] > 0.0 {
            l += ls[s] * exp(wt[s] - big_m);
        }
    }
    workgroupBarrier();
    // 2. the weight of each split's accumulator (0 for empty splits)
    wt[lid] = select(0.0, exp(wt[lid] - big_m) / l, ls[lid] > 0.0);
    workgroupBarrier();
    for (var w = lid; w < hw; w += 64u) {
        var acc = vec2<f32>(0.0);
        for (var s0 = 0u; s0 < n; s0 += 16u) {
            if w != lid || s0 != 0u {
                a = load16(base, 2u + 2u * w, s0); // more than 16 splits, or D > 128
            }
            for (var k = 0u; k < 16u; k++) {
                if s0 + k < n {
                    acc += a[k] * wt[s0 + k];
                }
            }
        }
        out[th * hw + w] = pack_act(acc);
    }
}
