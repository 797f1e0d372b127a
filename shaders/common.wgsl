// common.wgsl — value helpers shared by every kernel (prepended to each kernel's source).
//
// Activations and the KV cache are 16-bit values packed two per u32 (element 2i in the low half):
// IEEE f16 when ACT_F16, bfloat16 otherwise. All arithmetic is f32.
// Weights are the checkpoint's own bytes read as u32 words; W_DTYPE (declared by the kernels that
// read weights) says how: 0 = f32, 1 = f16, 2 = bf16.

override ACT_F16: bool = true;

// bf16 <-> f32: a bf16 is the high half of an f32.
fn bf16x2_to_f32(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

// f32 -> bf16 bits, round to nearest even; NaN stays NaN.
fn f32_to_bf16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// The SiLU of the Llama MLP's gate (SwiGLU: silu(gate) * up).
fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// One packed activation word -> two f32.
fn unpack_act(w: u32) -> vec2<f32> {
    if ACT_F16 {
        return unpack2x16float(w);
    }
    return bf16x2_to_f32(w);
}

// Two f32 -> one packed activation word (f16 saturates at +-65504 instead of overflowing; a NaN
// stays NaN — a clamp would turn it into +-65504 on many GPUs, a silent wrong answer — by its
// bits: pack2x16float of a NaN is indeterminate).
fn pack_act(v: vec2<f32>) -> u32 {
    if ACT_F16 {
        let nan = (bitcast<vec2<u32>>(v) & vec2<u32>(0x7fffffffu)) > vec2<u32>(0x7f800000u);
        let bits = pack2x16float(select(clamp(v, vec2<f32>(-65504.0), vec2<f32>(65504.0)), vec2<f32>(0.0), nan));
        return bits | select(0u, 0x7e00u, nan.x) | select(0u, 0x7e000000u, nan.y);
    }
    return f32_to_bf16(v.x) | (f32_to_bf16(v.y) << 16u);
}

// One word of a 16-bit weight -> two f32 (dtype 1 = f16, 2 = bf16).
fn unpack_w16(w: u32, dtype: u32) -> vec2<f32> {
    if dtype == 1u {
        return unpack2x16float(w);
    }
    return bf16x2_to_f32(w);
}

// |v| for the int8 scale's running maximum, +infinity where v is NaN or infinite: the scale then
// turns the int8 GEMM's output non-finite too (a max() would drop a NaN: a silent wrong answer).
fn amax_term(v: f32) -> f32 {
    let a = abs(v);
    // +infinity built from a's bits: a constant infinity is a compile error in browsers' WGSL
    let inf = bitcast<f32>((bitcast<u32>(a) & 0u) | 0x7f800000u);
    return select(a, inf, (bitcast<u32>(a) & 0x7f800000u) == 0x7f800000u);
}

// Four values quantized to int8 as W8A8 does: round half to even of v / div, clamped to
// [-128, 127] (as f32 integers).
fn quant4(v: vec4<f32>, div: f32) -> vec4<f32> {
    return clamp(round(v / div), vec4<f32>(-128.0), vec4<f32>(127.0));
}

// quant4's values as 16-bit activations of the same integers (exact), two words: the W8A8 codes
// the f16 GEMMs multiply (ops::w8a8).
fn quant_codes4(v: vec4<f32>, div: f32) -> vec2<u32> {
    let q = quant4(v, div);
    return vec2<u32>(pack_act(q.xy), pack_act(q.zw));
}

// quant4's values packed into one word: element b in byte b.
fn quant_i8x4(v: vec4<f32>, div: f32) -> u32 {
    return pack_i8(vec4<i32>(quant4(v, div)));
}

// Four values in -128..127 as the bytes of a word, element b in byte b.
fn pack_i8(v: vec4<i32>) -> u32 {
    let b = (bitcast<vec4<u32>>(v) & vec4<u32>(0xffu)) << vec4<u32>(0u, 8u, 16u, 24u);
    return b.x | b.y | b.z | b.w;
}

