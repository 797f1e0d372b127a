// matmul_coop_common.wgsl — what the matrix-core matmuls (matmul_gemm_coop, matmul_skinny_coop)
// share: their parameters and bindings, and converting stored pairs to f16 (weights reach them
// through weights.wgsl's stage_w8). Prepended after weights.wgsl.

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)

struct Params {
    k: u32,          // inner dimension (elements, multiple of 32)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens
    d_off: u32,      // block formats: word offset of the scales in W
    m_off: u32,      // block formats: word offset of the minimums in W
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;   // (T, K/8)
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32


// Two stored values -> f16: f16 as is; bf16 exactly in f16's range (rounded to nearest even
// below 2^-14, clamped to +-65504 above; NaN stays NaN).
fn to_f16(v: u32, bf16: bool) -> vec2<f16> {
    if !bf16 {
        return vec2<f16>(unpack2x16float(v));
    }
    let f = bf16x2_to_f32(v);
    return vec2<f16>(select(clamp(f, vec2<f32>(-65504.0), vec2<f32>(65504.0)), f, f != f));
}

// Four stored values (two words) -> f16, for one 8-byte store into a staged tile.
fn to_f16x4(a: u32, b: u32, bf16: bool) -> vec4<f16> {
    return vec4<f16>(to_f16(a, bf16), to_f16(b, bf16));
}
