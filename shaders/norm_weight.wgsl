// norm_weight.wgsl — the RMSNorm weight of the fused norm-GEMV kernels (matmul_gemv_norm*.wgsl),
// prepended to them after weights.wgsl; also the SiLU of their SwiGLU epilogue.
//   g (K) at @binding(4), dtype G_DTYPE (0 f32, 1 f16, 2 bf16)

override G_DTYPE: u32 = 2u;

@group(0) @binding(4) var<storage, read> g: array<vec4<u32>>;

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

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}
