// matmul_common.wgsl — the interface of the float-activation matmuls (matmul_gemv, matmul_gemm,
// matmul_gemm_coop, matmul_skinny_coop): parameters and bindings. Prepended after weights.wgsl
// and matmul_out.wgsl.

struct Params {
    k: u32,          // inner dimension (elements)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens
    d_off: u32,      // block formats: word offset of the scales in W
    m_off: u32,      // block formats: word offset of the minimums in W
    _pad: u32,
    q_cols: u32,     // ROPE (matmul_skinny_coop): H D, the q columns of the q/k/v output
    kv_cols: u32,    // ROPE: Hkv D
    head_dim: u32,   // ROPE: D
    ctx: u32,        // ROPE: cache positions per slot
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;   // (T, K) packed activations, 8 a vec4
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32

// W_DTYPE 6 (W8A8 codes, ops::w8a8): the GEMMs' sums of codes times their token's scale and
// their column's (f32 at word d_off + column of W), matmul_w8a8.wgsl's arithmetic; only where a
// GEMM stores its result (with SPLIT > 1, matmul_split_sum.wgsl scales the sums).
@group(0) @binding(9) var<storage, read> x_scales: array<f32>; // W_DTYPE 6: (T) per-token scales
                                                               // (after rope_epilogue.wgsl's 5..8)

// The factors of columns col..col + 3 of token t (1 but for W_DTYPE 6).
fn code_scale4(t: u32, col: u32) -> vec4<f32> {
    if W_DTYPE != 6u {
        return vec4<f32>(1.0);
    }
    let c = min(vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u)) + p.d_off;
    let ws = vec4<f32>(bitcast<f32>(w_word(c.x)), bitcast<f32>(w_word(c.y)), bitcast<f32>(w_word(c.z)),
                       bitcast<f32>(w_word(c.w)));
    return x_scales[t] * ws;
}
