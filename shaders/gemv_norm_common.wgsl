// gemv_norm_common.wgsl — the interface shared by the fused norm-GEMV kernels
// (matmul_gemv_norm.wgsl and its subgroup variant matmul_gemv_norm_sg.wgsl), prepended to them
// after weights.wgsl: their Params, bindings, the norm weight reader and the SwiGLU epilogue's SiLU.
//   y = (x / sqrt(mean(x^2) + eps) * g) @ W^T
//   x   (T, K)         f32 residual stream, K % 8 == 0
//   g   (K)            norm weight, dtype G_DTYPE (0 f32, 1 f16, 2 bf16)
//   W   (N, K)         this chunk's rows, W_DTYPE (weights.wgsl, @binding(2))
//   out (T, N_total)   packed activations, columns [out_offset, out_offset + N); or, with SWIGLU,
//                      W's rows alternate gate and up (a fused gate/up weight) and
//                      out (T, N_total / 2) = silu(y[2i]) * y[2i + 1] (out_stride counts out's columns)

override G_DTYPE: u32 = 2u;
override SWIGLU: bool = false;

struct Params {
    k: u32,
    n: u32,
    out_stride: u32,
    out_offset: u32,
    d_off: u32,  // block formats: word offset of the scales in W
    m_off: u32,  // block formats: word offset of the minimums in W
    eps: f32,
    q_cols: u32, // ROPE (matmul_gemv_norm_sg.wgsl): H D, the q columns of the q/k/v output
    kv_cols: u32, // ROPE: Hkv D
    head_dim: u32, // ROPE: D
    ctx: u32,    // ROPE: cache positions per slot
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;    // (T, K/4)
@group(0) @binding(3) var<storage, read_write> out: array<u32>;  // packed
@group(0) @binding(4) var<storage, read> g: array<vec4<u32>>;    // (K) in G_DTYPE

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

// x * g over elements 32i..32i+31 of the row at vec4 `xbase`, and their sum of squares.
struct XG32 {
    v: array<vec4<f32>, 8>,
    ss: f32,
}

fn xg32(xbase: u32, i: u32) -> XG32 {
    var r: XG32;
    r.ss = 0.0;
    for (var j = 0u; j < 8u; j++) {
        let v = x[xbase + 8u * i + j];
        r.ss += dot(v, v);
        r.v[j] = v * g4(32u * i + 4u * j);
    }
    return r;
}
