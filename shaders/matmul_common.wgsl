// matmul_common.wgsl — the interface of the matmul kernels (matmul_gemv, matmul_gemm,
// matmul_gemm_coop, matmul_skinny_coop): parameters, bindings, output modes and the output store. Prepended after
// weights.wgsl.

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)

struct Params {
    k: u32,          // inner dimension (elements)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens
    d_off: u32,      // block formats: word offset of the scales in W
    m_off: u32,      // block formats: word offset of the minimums in W
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;   // (T, K) packed activations, 8 a vec4
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32

// Writes results v.x to output element o (= t * out_stride + out_offset + column) and, if `both`,
// v.y to o + 1: packed activations take the pair as one word (o even), f32 outputs each value,
// added to what is there for OUT_MODE 2.
fn store2(o: u32, v: vec2<f32>, both: bool) {
    if OUT_MODE == 0u {
        out[o / 2u] = pack_act(v);
        return;
    }
    out[o] = bitcast<u32>(select(0.0, bitcast<f32>(out[o]), OUT_MODE == 2u) + v.x);
    if both {
        out[o + 1u] = bitcast<u32>(select(0.0, bitcast<f32>(out[o + 1u]), OUT_MODE == 2u) + v.y);
    }
}
