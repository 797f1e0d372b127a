// matmul_gemv_norm.wgsl — decode GEMV with the RMSNorm before it fused in:
//   out = (x / sqrt(mean(x^2) + eps) * g) @ W^T
// Each workgroup computes the norm statistic of its token row itself (x is a few KB, read from
// cache), so the normalized activations are never written out. The normalization is linear in x,
// so the dot product uses x * g and the result is scaled by 1/rms at the end.
//   x   (T, K)         f32 residual stream, K % 8 == 0
//   g   (K)            norm weight, dtype G_DTYPE (0 f32, 1 f16, 2 bf16)
//   W   (N, K)         this chunk's rows, W_DTYPE (weights.wgsl)
//   out (T, N_total)   packed activations; columns [out_offset, out_offset + N)
// Workgroup = ROWS rows x (256 / ROWS) lanes (ROWS 4 or 8: more rows share one row statistic);
// grid x/y = row groups (folded), z = token.

override G_DTYPE: u32 = 2u;
override ROWS: u32 = 4u;

struct Params {
    k: u32,
    n: u32,
    out_stride: u32,
    out_offset: u32,
    d_off: u32,  // block formats: word offset of the scales in W
    m_off: u32,  // block formats: word offset of the minimums in W
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;    // (T, K/4)
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>;  // (T, N_total/2)
@group(0) @binding(4) var<storage, read> g: array<vec4<u32>>;    // (K) in G_DTYPE

override LANES: u32 = 256u / ROWS;

var<workgroup> partial: array<f32, 256>; // [row][lane]
var<workgroup> red: array<f32, 256>;

fn g_word(i: u32) -> u32 {
    return g[i / 4u][i % 4u];
}

// Norm weights e..e+3 (e % 4 == 0).
fn g4(e: u32) -> vec4<f32> {
    switch G_DTYPE {
        case 0u: {
            return bitcast<vec4<f32>>(g[e / 4u]);
        }
        case 1u: {
            return vec4<f32>(unpack2x16float(g_word(e / 2u)), unpack2x16float(g_word(e / 2u + 1u)));
        }
        default: {
            return vec4<f32>(bf16x2_to_f32(g_word(e / 2u)), bf16x2_to_f32(g_word(e / 2u + 1u)));
        }
    }
}

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if group * ROWS >= p.n {
        return;
    }
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let t = wid.z;
    let q4 = p.k / 4u;
    let xbase = t * q4;
    // 1. mean of squares of the token's row, by the whole workgroup
    var ss = 0.0;
    for (var i = li; i < q4; i += 256u) {
        let v = x[xbase + i];
        ss += dot(v, v);
    }
    red[li] = ss;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if li < s {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(red[0] / f32(p.k) + p.eps);
    // 2. (x * g) . W[row]
    let lane = lid.x;
    let r = lid.y;
    let row = group * ROWS + r;
    var acc = 0.0;
    if row < p.n {
        for (var i = lane; i < p.k / 8u; i += LANES) {
            let e = 8u * i;
            acc += dot8f(x[xbase + 2u * i] * g4(e), x[xbase + 2u * i + 1u] * g4(e + 4u), row * p.k + e);
        }
    }
    partial[r * LANES + lane] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            partial[r * LANES + lane] += partial[r * LANES + lane + s];
        }
        workgroupBarrier();
    }
    if lane == 0u && row < p.n && r % 2u == 0u {
        let col = t * p.out_stride + p.out_offset + row;
        out[col / 2u] = pack_act(vec2<f32>(partial[r * LANES], partial[(r + 1u) * LANES]) * inv);
    }
}
