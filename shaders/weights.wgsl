// weights.wgsl — reading a weight stored as the checkpoint's bytes; prepended (after common.wgsl)
// to every kernel that reads weights. Such kernels bind the weight at @binding(2) and set
// w_d_off / w_m_off from their params before reading a block format.
//
// W_DTYPE: 0 f32, 1 f16, 2 bf16 (row-major elements), 3 q8_0, 4 q4_0, 5 q4_1, 7 q4_k, 8 q6_k,
// 6 the int8 codes of a W8A8 weight (4 per word, row-major), unscaled: only W8A8 prompts read
// them here (load_w2, and stage_raw for matmul_coop_common.wgsl's dec_job), multiplying codes by
// codes in the f16 GEMMs and scaling the sums after (ops::w8a8); 100 + ggml type id for the GGUF
// types read exactly as
// stored (see "GGUF blocks as stored" below). Blocks 3..8 are GGUF blocks repacked at load with
// the same byte count (gguf.rs repack_blocks):
// - q8_0/q4_0/q4_1 (blocks of 32): the quants of every block in element order (int8; or 4-bit,
//   element 8i + j in bits 4j of word i), then the f16 scales d at word w_d_off, then (q4_1) the
//   f16 minimums m at word w_m_off. Value: q8_0 q*d, q4_0 (q-8)*d, q4_1 q*d + m.
// - q4_k (super-blocks of 256): 4-bit quants in element order, then per super-block 4 words at
//   w_d_off: (d, dmin) as f16, then ggml's 12 packed 6-bit (sc, m) bytes of its 8 sub-blocks of
//   32. Value: d*sc*q - dmin*m.
// - q6_k (super-blocks of 256): low 4 bits in element order, then the high 2 bits (element
//   16i + j in bits 2j of word i, from word 2*w_m_off/3), then int8 scales per 16 elements at
//   w_m_off, then f16 d per super-block at w_d_off. Value: d*sc*(q - 32).

override W_DTYPE: u32 = 2u;

@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;

var<private> w_d_off: u32;
var<private> w_m_off: u32;

fn w_word(i: u32) -> u32 {
    return w[i / 4u][i % 4u];
}

// The f16 at index i of the array starting at word `off`.
fn w_f16(off: u32, i: u32) -> f32 {
    return half_of(w_word(off + i / 2u), i);
}

// The f16 at index i of an array, from its word v (word i / 2).
fn half_of(v: u32, i: u32) -> f32 {
    let h = unpack2x16float(v);
    return select(h.x, h.y, (i & 1u) == 1u);
}

// Four int8 of a word, sign-extended.
fn i8x4(v: u32) -> vec4<f32> {
    return vec4<f32>(i8x4i(v));
}
fn i8x4i(v: u32) -> vec4<i32> {
    return (vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
}

// Bytes q - o of bytes q (each q + 128 - o < 256) as signed bytes: per byte, without carries.
fn minus(q: u32, o: u32) -> u32 {
    return (q + (0x80u - o) * 0x01010101u) ^ 0x80808080u;
}

// Nibbles 0..3 (lo) or 4..7 (hi) of a word.
fn u4x4(v: u32, hi: bool) -> vec4<f32> {
    let s = select(vec4<u32>(0u, 4u, 8u, 12u), vec4<u32>(16u, 20u, 24u, 28u), hi);
    return vec4<f32>((vec4<u32>(v) >> s) & vec4<u32>(15u));
}

// Q4_K: (d*sc, dmin*m) of the 32-element sub-block holding element e (ggml's get_scale_min_k4).
fn q4k_sm(e: u32) -> vec2<f32> {
    let base = w_d_off + 4u * (e / 256u);
    return q4k_dm(vec4<u32>(w_word(base), w_word(base + 1u), w_word(base + 2u), w_word(base + 3u)), e);
}

// Q4_K: q4k_sm(e) from its super-block's 4 words s (d and dmin, then the 12 scale bytes).
fn q4k_dm(s: vec4<u32>, e: u32) -> vec2<f32> {
    let dm = unpack2x16float(s.x);
    let sm = k_scale_min(s.yzw, (e % 256u) / 32u);
    return vec2<f32>(dm.x * f32(sm.x), dm.y * f32(sm.y));
}

// Q4_K: the 8 weights of quant word q (nibbles) with their sub-block's dm = q4k_sm.
fn q4k_8(q: u32, dm: vec2<f32>) -> W8 {
    return W8(u4x4(q, false) * dm.x - dm.y, u4x4(q, true) * dm.x - dm.y);
}

// The 6-bit (scale, min) of sub-block j (0..8) from the 12 packed bytes of a Q4_K / Q5_K
// super-block (ggml's get_scale_min_k4).
fn k_scale_min(s: vec3<u32>, j: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(kbyte(s, j) & 63u, kbyte(s, j + 4u) & 63u);
    }
    return vec2<u32>((kbyte(s, j + 4u) & 15u) | ((kbyte(s, j - 4u) >> 6u) << 4u),
                     (kbyte(s, j + 4u) >> 4u) | ((kbyte(s, j) >> 6u) << 4u));
}

// Byte k (0..12) of three words.
fn kbyte(s: vec3<u32>, k: u32) -> u32 {
    return (s[k / 4u] >> (8u * (k % 4u))) & 255u;
}

// Q6_K: d * sc of the 16-element group holding element e.
fn q6k_scale(e: u32) -> f32 {
    return q6k_scale_of(w_word(w_m_off + e / 64u), w_word(w_d_off + e / 512u), e);
}

// Q6_K: q6k_scale(e) from the scale word sc (groups 4i..4i+3 holding e's) and the d word dw
// (super-blocks 2i, 2i + 1).
fn q6k_scale_of(sc: u32, dw: u32, e: u32) -> f32 {
    let byte = (sc >> (8u * ((e / 16u) % 4u))) & 255u;
    return half_of(dw, e / 256u) * f32(bitcast<i32>(byte << 24u) >> 24u);
}

// Q6_K: the 8 weights of low-bit word q with their high bits hi (shifted to the first of them,
// as q6k_hi) and group scale s.
fn q6k_8(q: u32, hi: u32, s: f32) -> W8 {
    return W8((u4x4(q, false) + 16.0 * q6k_hi4(hi, 0u) - 32.0) * s, (u4x4(q, true) + 16.0 * q6k_hi4(hi, 8u) - 32.0) * s);
}

// Q6_K: the high-bit word of elements 16i..16i+15 holding element e, shifted to element e.
fn q6k_hi(e: u32) -> u32 {
    return w_word(2u * w_m_off / 3u + e / 16u) >> (2u * (e % 16u));
}

// Weight elements e and e + 1 (e even).
fn load_w2(e: u32) -> vec2<f32> {
    if stored() {
        let v = stored8(e & ~7u);
        let k = e % 8u;
        return select(vec2<f32>(v.b[k - 4u], v.b[k - 3u]), vec2<f32>(v.a[k], v.a[k + 1u]), k < 4u);
    }
    switch W_DTYPE {
        case 0u: {
            return vec2<f32>(bitcast<f32>(w_word(e)), bitcast<f32>(w_word(e + 1u)));
        }
        case 1u: {
            return unpack2x16float(w_word(e / 2u));
        }
        case 2u: {
            return bf16x2_to_f32(w_word(e / 2u));
        }
        case 6u: {
            return i8x4(w_word(e / 4u) << (8u * (2u - e % 4u))).zw;
        }
        case 3u: {
            let q = i8x4(w_word(e / 4u));
            return select(q.xy, q.zw, (e & 2u) == 2u) * w_f16(w_d_off, e / 32u);
        }
        case 7u: {
            let word = w_word(e / 8u) >> ((e % 8u) * 4u);
            let sm = q4k_sm(e);
            return vec2<f32>(f32(word & 15u), f32((word >> 4u) & 15u)) * sm.x - sm.y;
        }
        case 8u: {
            let word = w_word(e / 8u) >> ((e % 8u) * 4u);
            let hi = q6k_hi(e);
            let q = vec2<f32>(f32((word & 15u) | ((hi & 3u) << 4u)), f32(((word >> 4u) & 15u) | (((hi >> 2u) & 3u) << 4u)));
            return (q - 32.0) * q6k_scale(e);
        }
        default: {
            let word = w_word(e / 8u);
            let s = (e % 8u) * 4u;
            let q = vec2<f32>(f32((word >> s) & 15u), f32((word >> (s + 4u)) & 15u));
            if W_DTYPE == 4u {
                return (q - 8.0) * w_f16(w_d_off, e / 32u);
            }
            return q * w_f16(w_d_off, e / 32u) + w_f16(w_m_off, e / 32u);
        }
    }
}

// Dot of 8 activations (one vec4 of packed words) with the 8 weights from element e (e % 8 == 0).
fn dot8(xv: vec4<u32>, e: u32) -> f32 {
    return dot8f(vec4<f32>(unpack_act(xv.x), unpack_act(xv.y)), vec4<f32>(unpack_act(xv.z), unpack_act(xv.w)), e);
}

// Dot of 8 f32 values (xa = elements 0..3, xb = 4..7) with the 8 weights from element e (e % 8 == 0).
fn dot8f(xa: vec4<f32>, xb: vec4<f32>, e: u32) -> f32 {
    if stored() {
        let v = stored8(e);
        return dot(xa, v.a) + dot(xb, v.b);
    }
    switch W_DTYPE {
        case 0u: {
            return dot(xa, bitcast<vec4<f32>>(w[e / 4u])) + dot(xb, bitcast<vec4<f32>>(w[e / 4u + 1u]));
        }
        case 1u, 2u: {
            let v = w[e / 8u];
            let a = vec4<f32>(unpack_w16(v.x, W_DTYPE), unpack_w16(v.y, W_DTYPE));
            let b = vec4<f32>(unpack_w16(v.z, W_DTYPE), unpack_w16(v.w, W_DTYPE));
            return dot(xa, a) + dot(xb, b);
        }
        case 3u: {
            let q = dot(xa, i8x4(w_word(e / 4u))) + dot(xb, i8x4(w_word(e / 4u + 1u)));
            return q * w_f16(w_d_off, e / 32u);
        }
        case 7u: {
            let word = w_word(e / 8u);
            let q = dot(xa, u4x4(word, false)) + dot(xb, u4x4(word, true));
            let xsum = dot(xa, vec4<f32>(1.0)) + dot(xb, vec4<f32>(1.0));
            let sm = q4k_sm(e);
            return q * sm.x - xsum * sm.y;
        }
        case 8u: {
            let word = w_word(e / 8u);
            let hi = q6k_hi(e);
            let ha = vec4<f32>((vec4<u32>(hi) >> vec4<u32>(0u, 2u, 4u, 6u)) & vec4<u32>(3u));
            let hb = vec4<f32>((vec4<u32>(hi) >> vec4<u32>(8u, 10u, 12u, 14u)) & vec4<u32>(3u));
            let q = dot(xa, u4x4(word, false) + 16.0 * ha) + dot(xb, u4x4(word, true) + 16.0 * hb);
            let xsum = dot(xa, vec4<f32>(1.0)) + dot(xb, vec4<f32>(1.0));
            return (q - 32.0 * xsum) * q6k_scale(e);
        }
        default: {
            let word = w_word(e / 8u);
            let q = dot(xa, u4x4(word, false)) + dot(xb, u4x4(word, true));
            let xsum = dot(xa, vec4<f32>(1.0)) + dot(xb, vec4<f32>(1.0));
            if W_DTYPE == 4u {
                return (q - 8.0 * xsum) * w_f16(w_d_off, e / 32u);
            }
            return q * w_f16(w_d_off, e / 32u) + xsum * w_f16(w_m_off, e / 32u);
        }
    }
}

// The 8 weights from element e (e % 8 == 0), decoded once: the multi-token GEMV dots them with
// several tokens' activations.
fn load_w8(e: u32) -> W8 {
    if stored() {
        return stored8(e);
    }
    switch W_DTYPE {
        case 0u: {
            return W8(bitcast<vec4<f32>>(w[e / 4u]), bitcast<vec4<f32>>(w[e / 4u + 1u]));
        }
        case 1u, 2u: {
            let v = w[e / 8u];
            return W8(vec4<f32>(unpack_w16(v.x, W_DTYPE), unpack_w16(v.y, W_DTYPE)),
                      vec4<f32>(unpack_w16(v.z, W_DTYPE), unpack_w16(v.w, W_DTYPE)));
        }
        default: {
            return dec8(raw8(e), e);
        }
    }
}

// The words behind a staging job's weights (STAGE_JOB of them: 8 from raw8, a K-quant's 32 from
// raw32; f16/bf16 and the types read as stored: 8 as 4 words of pairs in q): their quants and
// the scales they need, loaded but not decoded (dec8 / dec32 do), so the matrix-core kernels keep
// a next stage's loads in flight until they stage it. raw8's layout:
struct RawJob {
    q: vec4<u32>, // quants (q8_0: two words; q6_k: low bits, high-bit word, scale word, d word)
    s: vec4<u32>, // q8_0/q4_0: d word; q4_1: d, m words; q4_k: the super-block's 4 words
}

// The words of the 8 weights of a repacked block format (W_DTYPE 3..8) from element e (e % 8 == 0).
fn raw8(e: u32) -> RawJob {
    var r: RawJob;
    switch W_DTYPE {
        case 3u: {
            r.q = vec4<u32>(w_word(e / 4u), w_word(e / 4u + 1u), 0u, 0u);
            r.s.x = w_word(w_d_off + e / 64u);
        }
        case 7u: {
            r.q.x = w_word(e / 8u);
            let base = w_d_off + 4u * (e / 256u);
            r.s = vec4<u32>(w_word(base), w_word(base + 1u), w_word(base + 2u), w_word(base + 3u));
        }
        case 8u: {
            r.q = vec4<u32>(w_word(e / 8u), w_word(2u * w_m_off / 3u + e / 16u), w_word(w_m_off + e / 64u),
                            w_word(w_d_off + e / 512u));
        }
        default: { // q4_0, q4_1
            r.q.x = w_word(e / 8u);
            r.s.x = w_word(w_d_off + e / 64u);
            if W_DTYPE == 5u {
                r.s.y = w_word(w_m_off + e / 64u);
            }
        }
    }
    return r;
}

// The 8 weights from element e, decoded from raw8(e).
fn dec8(r: RawJob, e: u32) -> W8 {
    switch W_DTYPE {
        case 3u: {
            let d = half_of(r.s.x, e / 32u);
            return W8(i8x4(r.q.x) * d, i8x4(r.q.y) * d);
        }
        case 7u: {
            return q4k_8(r.q.x, q4k_dm(r.s, e));
        }
        case 8u: {
            // q.y: the high-bit word of elements 16i..16i+15 holding e
            return q6k_8(r.q.x, r.q.y >> (2u * (e % 16u)), q6k_scale_of(r.q.z, r.q.w, e));
        }
        default: { // q4_0, q4_1
            let d = half_of(r.s.x, e / 32u);
            if W_DTYPE == 4u {
                return W8((u4x4(r.q.x, false) - 8.0) * d, (u4x4(r.q.x, true) - 8.0) * d);
            }
            let m = half_of(r.s.y, e / 32u);
            return W8(u4x4(r.q.x, false) * d + m, u4x4(r.q.x, true) * d + m);
        }
    }
}

// Weights per job of the matrix-core kernels' staged tiles: a K-quant's sub-block of 32 (its
// quants in one 16-byte load, its scale words loaded and decoded once: scale32), else 8. (H200,
// 8B Q4_K_M, 32 sequences through the skinny GEMM: 1,822 tok/s; 1,434 with each 8 weights
// decoding their sub-block's scales; Q4_K gate/up at 197 GB/s in jobs of 8.)
// W8A8 codes: 16, one 16-byte load.
override STAGE_JOB: u32 = select(select(8u, 16u, W_DTYPE == 6u), 32u, W_DTYPE == 7u || W_DTYPE == 8u);

// The words of a K-quant's 32 weights from element e (e % 32 == 0): q = the 4 quant words
// (elements 8j..8j+7 in word j); s = q4_k: the super-block's 4 words, q6_k: the two high-bit
// words, the scale word, the d word.
fn raw32(e: u32) -> RawJob {
    var r: RawJob;
    r.q = w[e / 32u];
    if W_DTYPE == 7u {
        let base = w_d_off + 4u * (e / 256u);
        if (w_d_off & 3u) == 0u {
            r.s = w[base / 4u];
        } else {
            r.s = vec4<u32>(w_word(base), w_word(base + 1u), w_word(base + 2u), w_word(base + 3u));
        }
    } else {
        let h = 2u * w_m_off / 3u + e / 16u;
        r.s = vec4<u32>(w_word(h), w_word(h + 1u), w_word(w_m_off + e / 64u), w_word(w_d_off + e / 512u));
    }
    return r;
}

// The scales of raw32(e) (e % 32 == 0), decoded once for its 32 weights: q4_k: (d * scale,
// d * scale, dmin * min) of its sub-block; q6_k: the scales of its two groups of 16, 0.
fn scale32(r: RawJob, e: u32) -> vec3<f32> {
    if W_DTYPE == 7u {
        let dm = q4k_dm(r.s, e);
        return vec3<f32>(dm.x, dm.x, dm.y);
    }
    return vec3<f32>(q6k_scale_of(r.s.z, r.s.w, e), q6k_scale_of(r.s.z, r.s.w, e + 16u), 0.0);
}

// Weights 8j..8j+7 of raw32(e), with its scales sc = scale32(r, e).
fn dec32(r: RawJob, sc: vec3<f32>, j: u32) -> W8 {
    if W_DTYPE == 7u {
        return q4k_8(r.q[j], sc.xz);
    }
    return q6k_8(r.q[j], r.s[j / 2u] >> (16u * (j % 2u)), select(sc.x, sc.y, j >= 2u));
}

// Whether W_DTYPE is a K-quant, whose decode GEMVs read 32 elements a step (dot32f; K % 256 == 0).
// (Q8_0 and Q4_0/Q4_1 measured no faster or slower that way on the H100: they keep dot8f.)
fn w_blocks() -> bool {
    return W_DTYPE == 7u || W_DTYPE == 8u;
}

// The high-bit pairs of Q6_K elements s/2..s/2+3 of a high-bit word h, as values 0..3.
fn q6k_hi4(h: u32, s: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(h) >> vec4<u32>(s, s + 2u, s + 4u, s + 6u)) & vec4<u32>(3u));
}

// Dot of 32 f32 values (xs[j] = elements 4j..4j+3) with the 32 K-quant weights from element e
// (e % 32 == 0; only where w_blocks()): one 16-byte load of the low 4 bits, and the scales of the
// 32 decoded once (twice for Q6_K's groups of 16) instead of per 8 elements.
fn dot32f(xs: array<vec4<f32>, 8>, e: u32) -> f32 {
    let v = w[e / 32u]; // word j: low 4 bits of elements 8j..8j+7
    if W_DTYPE == 7u {
        let q = dot(xs[0], u4x4(v.x, false)) + dot(xs[1], u4x4(v.x, true))
              + dot(xs[2], u4x4(v.y, false)) + dot(xs[3], u4x4(v.y, true))
              + dot(xs[4], u4x4(v.z, false)) + dot(xs[5], u4x4(v.z, true))
              + dot(xs[6], u4x4(v.w, false)) + dot(xs[7], u4x4(v.w, true));
        let xsum = dot(xs[0] + xs[1] + xs[2] + xs[3] + xs[4] + xs[5] + xs[6] + xs[7], vec4<f32>(1.0));
        let sm = q4k_sm(e);
        return q * sm.x - xsum * sm.y;
    }
    // Q6_K
    let h0 = q6k_hi(e);       // elements e..e+15
    let h1 = q6k_hi(e + 16u); // elements e+16..e+31
    let q0 = dot(xs[0], u4x4(v.x, false) + 16.0 * q6k_hi4(h0, 0u))
           + dot(xs[1], u4x4(v.x, true) + 16.0 * q6k_hi4(h0, 8u))
           + dot(xs[2], u4x4(v.y, false) + 16.0 * q6k_hi4(h0, 16u))
           + dot(xs[3], u4x4(v.y, true) + 16.0 * q6k_hi4(h0, 24u));
    let q1 = dot(xs[4], u4x4(v.z, false) + 16.0 * q6k_hi4(h1, 0u))
           + dot(xs[5], u4x4(v.z, true) + 16.0 * q6k_hi4(h1, 8u))
           + dot(xs[6], u4x4(v.w, false) + 16.0 * q6k_hi4(h1, 16u))
           + dot(xs[7], u4x4(v.w, true) + 16.0 * q6k_hi4(h1, 24u));
    let s0 = dot(xs[0] + xs[1] + xs[2] + xs[3], vec4<f32>(1.0));
    let s1 = dot(xs[4] + xs[5] + xs[6] + xs[7], vec4<f32>(1.0));
    return (q0 - 32.0 * s0) * q6k_scale(e) + (q1 - 32.0 * s1) * q6k_scale(e + 16u);
}

// ---- GGUF blocks as stored (W_DTYPE = 100 + ggml type id) ----------------------------------------
// The file's blocks, row-major, byte for byte (rows are whole blocks). Each type is one decode
// function giving the 8 weights from element e (e % 8 == 0: the 8 share their block's scales),
// following ggml's dequantize_row_* definitions; gguf.rs `dequantize` is the CPU twin.

fn stored() -> bool {
    return W_DTYPE >= 100u;
}

// The matrix-core kernels' staged tiles (and dequant_f16.wgsl) load the STAGE_JOB weights of a
// job from element e with stage_raw (global loads only: f16/bf16 as stored, repacked block
// formats undecoded, the types read as stored already decoded) and convert them, 8 at a time,
// with stage_dec when they store them, after the current stage's multiply-adds.
fn stage_raw(e: u32) -> RawJob {
    var r: RawJob;
    if W_DTYPE == 1u || W_DTYPE == 2u {
        r.q = w[e / 8u];
    } else if W_DTYPE == 6u {
        r.q = w[e / 16u];
    } else if stored() {
        r.q = f16x8(stored8(e));
    } else if STAGE_JOB == 32u {
        r = raw32(e);
    } else {
        r = raw8(e);
    }
    return r;
}

// The scales stage_dec needs for the job stage_raw(e) loaded, decoded once (K-quants; else 0).
fn stage_scale(r: RawJob, e: u32) -> vec3<f32> {
    if STAGE_JOB == 32u {
        return scale32(r, e);
    }
    return vec3<f32>(0.0);
}

// Weights e + 8j .. e + 8j + 7 of r = stage_raw(e) (sc = stage_scale(r, e)) as 4 words: f16
// pairs, or bf16 pairs as stored. (Not W8A8 codes: dec_job converts those itself.)
fn stage_dec(r: RawJob, sc: vec3<f32>, e: u32, j: u32) -> vec4<u32> {
    if W_DTYPE == 1u || W_DTYPE == 2u || stored() {
        return r.q;
    }
    if STAGE_JOB == 32u {
        return f16x8(dec32(r, sc, j));
    }
    return f16x8(dec8(r, e));
}

// Eight weights as 4 words of f16 pairs, clamped to f16's range.
fn f16x8(v: W8) -> vec4<u32> {
    let a = clamp(v.a, vec4<f32>(-65504.0), vec4<f32>(65504.0));
    let b = clamp(v.b, vec4<f32>(-65504.0), vec4<f32>(65504.0));
    return vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
}

// Eight decoded weights: a = elements e..e+3, b = e+4..e+7.
struct W8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

// Byte o of the weight.
fn w_u8(o: u32) -> u32 {
    return (w_word(o / 4u) >> (8u * (o % 4u))) & 255u;
}

// The little-endian u16 / f16 at byte o (o even: never across a word).
fn w_u16(o: u32) -> u32 {
    return (w_word(o / 4u) >> (8u * (o % 4u))) & 0xffffu;
}
fn w_f16b(o: u32) -> f32 {
    return unpack2x16float(w_u16(o)).x;
}

// The word at bit offset sh (0, 8, 16 or 24) of the little-endian pair lo, hi.
fn funnel(lo: u32, hi: u32, sh: u32) -> u32 {
    return select((lo >> sh) | (hi << (32u - sh)), lo, sh == 0u);
}

// The 4 bytes from byte o (any alignment), little-endian (the next word read only when needed).
fn w_u32b(o: u32) -> u32 {
    let s = 8u * (o % 4u);
    let lo = w_word(o / 4u);
    if s == 0u {
        return lo;
    }
    return funnel(lo, w_word(o / 4u + 1u), s);
}

// The bytes of a word, shifted right by `sh` and masked: four small fields at once.
fn fields4(v: u32, sh: u32, mask: u32) -> vec4<u32> {
    return ((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) >> vec4<u32>(sh)) & vec4<u32>(mask);
}

// Bits b..b+3 of v as four 0/1 values.
fn bits4(v: u32, b: u32) -> vec4<u32> {
    return (vec4<u32>(v >> b) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
}

// Eight weights as int8 codes with a scale a and an offset b: element k is a * code_k + b, code k
// in byte k % 4 of lo (k < 4) or of hi. The decode GEMV on int8 activations multiplies the codes
// as they are (matmul_gemv_q8.wgsl); the other kernels convert them (c8_w8).
struct C8 {
    lo: u32,
    hi: u32,
    a: f32,
    b: f32,
}

fn c8_w8(c: C8) -> W8 {
    return W8(c.a * i8x4(c.lo) + c.b, c.a * i8x4(c.hi) + c.b);
}

// Q5_0 (22 bytes: d, qh u32, 16 bytes of nibbles) and Q5_1 (24: d, m, qh, nibbles), blocks of 32:
// element j is the low nibble of byte j (j < 16) or the high nibble of byte j - 16, plus bit j of
// qh as its fifth bit. Value: (q - 16) * d (code q - 16), or q * d + m (code q).
fn q5_8(e: u32, bytes: u32, with_min: bool) -> C8 {
    let bo = (e / 32u) * bytes;
    let j = e % 32u;
    let d = w_f16b(bo);
    var o = bo + 2u;
    if with_min {
        o = bo + 4u;
    }
    let qh = w_u32b(o);
    let q = o + 4u + j % 16u;
    let sh = 4u * (j / 16u);
    let lo = ((w_u32b(q) >> sh) & 0x0f0f0f0fu) | pack_i8(vec4<i32>(bits4(qh, j) << vec4<u32>(4u)));
    let hi = ((w_u32b(q + 4u) >> sh) & 0x0f0f0f0fu) | pack_i8(vec4<i32>(bits4(qh, j + 4u) << vec4<u32>(4u)));
    if with_min {
        return C8(lo, hi, d, w_f16b(bo + 2u));
    }
    return C8(minus(lo, 16u), minus(hi, 16u), d, 0.0);
}

// IQ4_NL's 16 values (ggml's kvalues_iq4nl) as int8 bytes: -127 -104 -83 -65 | -49 -35 -22 -10 |
// 1 13 25 38 | 53 69 89 113.
const IQ4NL_WORDS = vec4<u32>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);

// Entry i (0..15) of a 16-entry table of int8 bytes (4 words), as its byte.
fn lut_byte(t: vec4<u32>, i: u32) -> u32 {
    return (t[i / 4u] >> (8u * (i % 4u))) & 255u;
}

// Entries n of a 16-entry table of int8 bytes, as f32.
fn lut4(t: vec4<u32>, n: vec4<u32>) -> vec4<f32> {
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
        v[i] = f32(bitcast<i32>(lut_byte(t, n[i]) << 24u) >> 24u);
    }
    return v;
}

// d * table[nibble] for the 8 nibbles at shift sh of bytes q..q+7.
fn nib8(t: vec4<u32>, q: u32, sh: u32, d: f32) -> W8 {
    return W8(d * lut4(t, fields4(w_u32b(q), sh, 15u)), d * lut4(t, fields4(w_u32b(q + 4u), sh, 15u)));
}

// IQ4_NL (18 bytes: d, 16 bytes of nibbles in Q4_0's order), blocks of 32: d * table[nibble].
fn dec_iq4nl(e: u32) -> W8 {
    let bo = (e / 32u) * 18u;
    let j = e % 32u;
    let d = w_f16b(bo);
    let q = bo + 2u + j % 16u;
    let sh = 4u * (j / 16u);
    return nib8(IQ4NL_WORDS, q, sh, d);
}

// IQ4_XS: d * (ls - 32) of sub-block ib of the super-block at word `base` (the 6-bit ls: 4 low
// bits in scales_l, byte 4 on, 2 high bits in scales_h, bytes 2..3).
fn iq4xs_scale(base: u32, ib: u32) -> f32 {
    let w0 = w_word(base);
    let ls = ((w_word(base + 1u) >> (4u * ib)) & 15u) | (((w0 >> (16u + 2u * ib)) & 3u) << 4u);
    return unpack2x16float(w0).x * (f32(ls) - 32.0);
}

// IQ4_XS (136 bytes: d, scales_h u16, scales_l[4], then 8 sub-blocks of 32 as IQ4_NL nibbles),
// super-blocks of 256: sub-block ib has the 6-bit scale ls (4 low bits in scales_l, 2 high bits in
// scales_h); value d * (ls - 32) * table[nibble].
fn dec_iq4xs(e: u32) -> W8 {
    let bo = (e / 256u) * 136u;
    let j = e % 256u;
    let ib = j / 32u;
    let dl = iq4xs_scale(bo / 4u, ib);
    let q = bo + 8u + 16u * ib + j % 16u;
    let sh = 4u * ((j % 32u) / 16u);
    return nib8(IQ4NL_WORDS, q, sh, dl);
}

// Q2_K (84 bytes: 16 scale bytes (4-bit scale | 4-bit min << 4), 64 bytes of 2-bit quants, d,
// dmin), super-blocks of 256: element i = 128n + 32g + l is bits 2g of byte 32n + l, scale byte
// 8n + 2g + l/16. Value d * scale * q - dmin * min.
fn dec_q2k(e: u32) -> W8 {
    let bo = (e / 256u) * 84u;
    let i = e % 256u;
    let n = i / 128u;
    let g = (i % 128u) / 32u;
    let l = i % 32u;
    let sc = w_u8(bo + 8u * n + 2u * g + l / 16u);
    let dl = w_f16b(bo + 80u) * f32(sc & 15u);
    let ml = w_f16b(bo + 82u) * f32(sc >> 4u);
    let q = bo + 16u + 32u * n + l;
    return W8(dl * vec4<f32>(fields4(w_u32b(q), 2u * g, 3u)) - ml, dl * vec4<f32>(fields4(w_u32b(q + 4u), 2u * g, 3u)) - ml);
}

// Q3_K: d * (scale k - 32) of the super-block at byte bo (scale k's low 4 bits in byte k % 8 at
// 4(k/8), high 2 in byte 8 + k % 4 at 2(k/4), after 96 bytes of quants; d after the scales).
fn q3k_scale(bo: u32, k: u32) -> f32 {
    let sc = ((w_u8(bo + 96u + k % 8u) >> (4u * (k / 8u))) & 15u) | (((w_u8(bo + 104u + k % 4u) >> (2u * (k / 4u))) & 3u) << 4u);
    return w_f16b(bo + 108u) * (f32(sc) - 32.0);
}

// Q3_K (110 bytes: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, d),
// super-blocks of 256: element i = 128n + 32g + l has low bits 2g of byte 32n + l, high bit 4n + g
// of hmask byte l, scale k = 8n + 2g + l/16 (low 4 bits in byte k % 8 at 4(k/8), high 2 in byte
// 8 + k % 4 at 2(k/4)). Value d * (scale - 32) * (q - (high ? 0 : 4)).
fn dec_q3k(e: u32) -> W8 {
    let bo = (e / 256u) * 110u;
    let i = e % 256u;
    let n = i / 128u;
    let g = (i % 128u) / 32u;
    let l = i % 32u;
    let dl = q3k_scale(bo, 8u * n + 2u * g + l / 16u);
    let q = bo + 32u + 32u * n + l;
    let qa = vec4<f32>(fields4(w_u32b(q), 2u * g, 3u)) - 4.0 + 4.0 * vec4<f32>(fields4(w_u32b(bo + l), 4u * n + g, 1u));
    let qb = vec4<f32>(fields4(w_u32b(q + 4u), 2u * g, 3u)) - 4.0 + 4.0 * vec4<f32>(fields4(w_u32b(bo + l + 4u), 4u * n + g, 1u));
    return W8(dl * qa, dl * qb);
}

// Q5_K: (d * sc, dmin * m) of sub-block j of the super-block at word `base` (Q4_K's packing).
fn q5k_sm(base: u32, j: u32) -> vec2<f32> {
    let sm = k_scale_min(vec3<u32>(w_word(base + 1u), w_word(base + 2u), w_word(base + 3u)), j);
    let dm = unpack2x16float(w_word(base));
    return vec2<f32>(dm.x * f32(sm.x), dm.y * f32(sm.y));
}

// Q5_K (176 bytes: d, dmin, 12 bytes of 6-bit scales and mins as Q4_K's, 32 bytes of fifth bits,
// 128 bytes of nibbles), super-blocks of 256: element i = 64c + 32h + l is nibble h of byte
// 32c + l, fifth bit 2c + h of qh byte l, sub-block i/32. Value d * sc * q - dmin * m.
fn dec_q5k(e: u32) -> W8 {
    let bo = (e / 256u) * 176u;
    let i = e % 256u;
    let c = i / 64u;
    let h = (i % 64u) / 32u;
    let l = i % 32u;
    let sm = q5k_sm(bo / 4u, i / 32u);
    let dl = sm.x;
    let ml = sm.y;
    let q = bo + 48u + 32u * c + l;
    let qa = fields4(w_word(q / 4u), 4u * h, 15u) | (fields4(w_word((bo + 16u + l) / 4u), 2u * c + h, 1u) << vec4<u32>(4u));
    let qb = fields4(w_word(q / 4u + 1u), 4u * h, 15u) | (fields4(w_word((bo + 20u + l) / 4u), 2u * c + h, 1u) << vec4<u32>(4u));
    return W8(dl * vec4<f32>(qa) - ml, dl * vec4<f32>(qb) - ml);
}

// ---- i-quants: groups of 8 weights from a lookup grid ----
// The grid follows the blocks in the buffer, at word w_d_off: one entry per 2 words (8 values) or
// per word (IQ3's 4 values), values as int8 bytes (gguf.rs grid_bytes / iq_grids.rs).

// ggml's sign pattern of a 7-bit index: its bits, plus an eighth making the count even.
fn ksigns(i: u32) -> u32 {
    return i | ((countOneBits(i) & 1u) << 7u);
}

// Four signs from bits 0..3 of s (1 = negative).
fn signs4(s: u32) -> vec4<i32> {
    return 1 - 2 * vec4<i32>((vec4<u32>(s) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u));
}

// Eight i-quant weights as their parts: the grid entry's int8 values (lo: elements 0..3, hi:
// 4..7), sign bits (bit i set: element i negative), scale and shift; the value is
// scale * sign * (grid + shift). (matmul_gemv_q8.wgsl multiplies the same parts as int8 codes.)
struct Grid8 {
    lo: u32,
    hi: u32,
    signs: u32,
    scale: f32,
    shift: f32,
}

// A Grid8 as codes: sign * grid at its scale, or for the IQ1 types (grid values -1, 0, 1, shift
// +-1/8, no signs) 8 * (grid + shift) at scale / 8; exact either way.
fn grid_c8(g: Grid8) -> C8 {
    let iq1 = W_DTYPE == 119u || W_DTYPE == 129u;
    let m = select(1, 8, iq1);
    let sh = i32(8.0 * g.shift);
    let lo = (i8x4i(g.lo) * m + sh) * signs4(g.signs);
    let hi = (i8x4i(g.hi) * m + sh) * signs4(g.signs >> 4u);
    return C8(pack_i8(lo), pack_i8(hi), select(g.scale, 0.125 * g.scale, iq1), 0.0);
}

// Grid entry idx of 8 values (two words) with its signs, scale and shift.
fn grid_entry8(idx: u32, signs: u32, scale: f32, shift: f32) -> Grid8 {
    return Grid8(w_word(w_d_off + 2u * idx), w_word(w_d_off + 2u * idx + 1u), signs, scale, shift);
}

// IQ2_XXS (66 bytes: d, then per 32 elements two u32: 4 grid indices, then 4 x 7 sign bits and a
// 4-bit scale in the top bits). Value d * (0.5 + s) / 4 * sign * grid.
fn iq2xxs_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 66u;
    let grp = (e % 256u) / 8u;
    let ib = grp / 4u;
    let l = grp % 4u;
    let aux0 = w_u32b(bo + 2u + 8u * ib);
    let aux1 = w_u32b(bo + 6u + 8u * ib);
    let db = w_f16b(bo) * (0.5 + f32(aux1 >> 28u)) * 0.25;
    return grid_entry8((aux0 >> (8u * l)) & 255u, ksigns((aux1 >> (7u * l)) & 127u), db, 0.0);
}

// IQ2_XS (74 bytes: d, 32 u16 of 9-bit grid index + 7 sign bits, 8 bytes of 4-bit scales per 16).
fn iq2xs_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 74u;
    let grp = (e % 256u) / 8u;
    let q = w_u16(bo + 2u + 2u * grp);
    let s = (w_u8(bo + 66u + grp / 4u) >> (4u * ((grp / 2u) % 2u))) & 15u;
    return grid_entry8(q & 511u, ksigns(q >> 9u), w_f16b(bo) * (0.5 + f32(s)) * 0.25, 0.0);
}

// IQ2_S (82 bytes: d, 32 low index bytes, 32 sign bytes, 8 bytes of 2 high index bits each, 8 bytes
// of 4-bit scales per 16).
fn iq2s_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 82u;
    let grp = (e % 256u) / 8u;
    let idx = w_u8(bo + 2u + grp) | (((w_u8(bo + 66u + grp / 4u) >> (2u * (grp % 4u))) & 3u) << 8u);
    let s = (w_u8(bo + 74u + grp / 4u) >> (4u * ((grp / 2u) % 2u))) & 15u;
    return grid_entry8(idx, w_u8(bo + 34u + grp), w_f16b(bo) * (0.5 + f32(s)) * 0.25, 0.0);
}

// IQ3_XXS (98 bytes: d, 64 grid indices of 4 values, then per 32 elements a u32 of 4 x 7 sign bits
// and a 4-bit scale). Value d * (0.5 + s) / 2 * sign * grid.
fn iq3xxs_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 98u;
    let grp = (e % 256u) / 8u;
    let ib = grp / 4u;
    let l = grp % 4u;
    let aux = w_u32b(bo + 66u + 4u * ib);
    let lo = w_word(w_d_off + w_u8(bo + 2u + 8u * ib + 2u * l));
    let hi = w_word(w_d_off + w_u8(bo + 3u + 8u * ib + 2u * l));
    return Grid8(lo, hi, ksigns((aux >> (7u * l)) & 127u), w_f16b(bo) * (0.5 + f32(aux >> 28u)) * 0.5, 0.0);
}

// IQ3_S (110 bytes: d, 64 low index bytes, 8 bytes of high index bits, 32 sign bytes, 4 bytes of
// 4-bit scales per 32). Value d * (1 + 2s) * sign * grid.
fn iq3s_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 110u;
    let grp = (e % 256u) / 8u;
    let k = 2u * grp;
    let i0 = w_u8(bo + 2u + k) | (((w_u8(bo + 66u + k / 8u) >> (k % 8u)) & 1u) << 8u);
    let i1 = w_u8(bo + 3u + k) | (((w_u8(bo + 66u + k / 8u) >> (k % 8u + 1u)) & 1u) << 8u);
    let s = (w_u8(bo + 106u + grp / 8u) >> (4u * ((grp / 4u) % 2u))) & 15u;
    return Grid8(w_word(w_d_off + i0), w_word(w_d_off + i1), w_u8(bo + 74u + grp), w_f16b(bo) * f32(1u + 2u * s), 0.0);
}

// IQ1_S (50 bytes: d, 32 low index bytes, per 32 elements a u16 of 4 x 3 high index bits, a 3-bit
// scale and the shift's sign). Value d * (2s + 1) * (grid + shift), shift +-1/8.
fn iq1s_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 50u;
    let grp = (e % 256u) / 8u;
    let ib = grp / 4u;
    let qh = w_u16(bo + 34u + 2u * ib);
    let idx = w_u8(bo + 2u + grp) | (((qh >> (3u * (grp % 4u))) & 7u) << 8u);
    let shift = select(0.125, -0.125, (qh & 0x8000u) != 0u);
    return grid_entry8(idx, 0u, w_f16b(bo) * f32(2u * ((qh >> 12u) & 7u) + 1u), shift);
}

// IQ1_M (56 bytes: 32 low index bytes, 16 bytes of (3 high index bits, shift sign) nibbles, 4 u16
// of 3-bit scales per 16 whose top nibbles together hold the f16 d).
fn iq1m_8(e: u32) -> Grid8 {
    let bo = (e / 256u) * 56u;
    let grp = (e % 256u) / 8u;
    let sc = vec4<u32>(w_u16(bo + 48u), w_u16(bo + 50u), w_u16(bo + 52u), w_u16(bo + 54u));
    let dbits = (sc.x >> 12u) | ((sc.y >> 8u) & 0xf0u) | ((sc.z >> 4u) & 0xf00u) | (sc.w & 0xf000u);
    let s = (sc[grp / 8u] >> (3u * ((grp / 2u) % 4u))) & 7u;
    let nib = (w_u8(bo + 32u + grp / 2u) >> (4u * (grp % 2u))) & 15u;
    let shift = select(0.125, -0.125, (nib & 8u) != 0u);
    return grid_entry8(w_u8(bo + grp) | ((nib & 7u) << 8u), 0u, unpack2x16float(dbits).x * f32(2u * s + 1u), shift);
}

// Whether W_DTYPE is a type read as stored that decodes 8 weights at a time as int8 codes
// (stored_c8): Q5_0, Q5_1, the i-quants with a lookup grid, TQ1_0, TQ2_0.
fn c8_type() -> bool {
    return W_DTYPE == 106u || W_DTYPE == 107u || (W_DTYPE >= 116u && W_DTYPE <= 119u) || W_DTYPE == 121u
        || W_DTYPE == 122u || W_DTYPE == 129u || W_DTYPE == 134u || W_DTYPE == 135u;
}

// The 8 weights from element e of a c8_type() as codes.
fn stored_c8(e: u32) -> C8 {
    switch W_DTYPE {
        case 106u: {
            return q5_8(e, 22u, false);
        }
        case 107u: {
            return q5_8(e, 24u, true);
        }
        case 134u: {
            return tq1_8(e);
        }
        case 135u: {
            return tq2_8(e);
        }
        case 116u: {
            return grid_c8(iq2xxs_8(e));
        }
        case 117u: {
            return grid_c8(iq2xs_8(e));
        }
        case 122u: {
            return grid_c8(iq2s_8(e));
        }
        case 118u: {
            return grid_c8(iq3xxs_8(e));
        }
        case 121u: {
            return grid_c8(iq3s_8(e));
        }
        case 119u: {
            return grid_c8(iq1s_8(e));
        }
        default: {
            return grid_c8(iq1m_8(e));
        }
    }
}

// TQ1_0 (54 bytes: 48 bytes of five base-3 codes each, 4 bytes of four, f16 d at 52), ternary
// super-blocks of 256: element i < 160 is code i / 32 of byte i % 32, i < 240 code (i - 160) / 16
// of byte 32 + (i - 160) % 16, else code (i - 240) / 4 of byte 48 + (i - 240) % 4; code j of
// byte q is ((q * 3^j) % 256 * 3) >> 8, the value (code - 1) * d.
fn tq1_code(bo: u32, i: u32) -> u32 {
    var byte = 48u + (i - 240u) % 4u;
    var j = (i - 240u) / 4u;
    if i < 160u {
        byte = i % 32u;
        j = i / 32u;
    } else if i < 240u {
        byte = 32u + (i - 160u) % 16u;
        j = (i - 160u) / 16u;
    }
    let p = select((0x511b0903u >> (8u * j - 8u)) & 255u, 1u, j == 0u); // 3^j: bytes 3 9 27 81
    return (((w_u8(bo + byte) * p) & 255u) * 3u) >> 8u;
}

fn tq1_8(e: u32) -> C8 {
    let bo = (e / 256u) * 54u;
    var c: array<i32, 8>;
    for (var k = 0u; k < 8u; k++) {
        c[k] = i32(tq1_code(bo, e % 256u + k)) - 1;
    }
    let lo = pack_i8(vec4<i32>(c[0], c[1], c[2], c[3]));
    let hi = pack_i8(vec4<i32>(c[4], c[5], c[6], c[7]));
    return C8(lo, hi, w_f16b(bo + 52u), 0.0);
}

// TQ2_0 (66 bytes: 64 bytes of 2-bit codes, f16 d at 64), ternary super-blocks of 256: element
// 128g + 32j + l is bits 2j of byte 32g + l, the value (code - 1) * d.
fn tq2_8(e: u32) -> C8 {
    let bo = (e / 256u) * 66u;
    let i = e % 256u;
    let q = bo + 32u * (i / 128u) + i % 32u;
    let sh = 2u * ((i % 128u) / 32u);
    let lo = (w_u32b(q) >> sh) & 0x03030303u;
    let hi = (w_u32b(q + 4u) >> sh) & 0x03030303u;
    return C8(minus(lo, 1u), minus(hi, 1u), w_f16b(bo + 64u), 0.0);
}

// The E2M1 (FP4) values a nibble selects, doubled (ggml's kvalues_mxfp4), as int8 bytes:
// 0 1 2 3 | 4 6 8 12 | 0 -1 -2 -3 | -4 -6 -8 -12.
const FP4_WORDS = vec4<u32>(0x03020100u, 0x0c080604u, 0xfdfeff00u, 0xf4f8fafcu);

// Half of 2^(x - 127), an E8M0 scale (ggml's e8m0_to_fp32_half; x < 2 subnormal).
fn e8m0_half(x: u32) -> f32 {
    return bitcast<f32>(select((x - 1u) << 23u, 0x00200000u << (x & 1u), x < 2u));
}

// MXFP4 (17 bytes: an E8M0 exponent e, 16 bytes of nibbles), blocks of 32: element 16h + l is
// nibble h of byte 1 + l, the value fp4 * 2^(e - 128) (ggml's e8m0_to_fp32_half; e < 2
// subnormal).
fn dec_mxfp4(e: u32) -> W8 {
    let bo = (e / 32u) * 17u;
    let i = e % 32u;
    let d = e8m0_half(w_u8(bo));
    let q = bo + 1u + i % 16u;
    let sh = 4u * (i / 16u);
    return nib8(FP4_WORDS, q, sh, d);
}

// Half of an unsigned E4M3 scale x (bias 7; 0 and 0x7f zero).
fn ue4m3_half(x: u32) -> f32 {
    let ex = (x >> 3u) & 15u;
    let man = f32(x & 7u);
    // 2^(ex - 8) (the half folded in) and 2^-10 for subnormals, built exactly
    let normal = (1.0 + man / 8.0) * bitcast<f32>((ex + 119u) << 23u);
    return select(select(normal, man * bitcast<f32>(117u << 23u), ex == 0u), 0.0, x == 0u || x == 0x7fu);
}

// NVFP4 (36 bytes: 4 unsigned E4M3 scales, then 8 bytes of nibbles per sub-block of 16),
// blocks of 64: element m of sub-block s is the low nibble of byte 4 + 8s + m (m < 8), else the
// high nibble of byte 4 + 8s + m - 8; the value fp4 * half the scale (bias 7; 0 and 0x7f zero).
fn dec_nvfp4(e: u32) -> W8 {
    let bo = (e / 64u) * 36u;
    let i = e % 64u;
    let s = i / 16u;
    let d = ue4m3_half(w_u8(bo + s));
    let q = bo + 4u + 8u * s;
    let sh = 4u * ((i % 16u) / 8u);
    return nib8(FP4_WORDS, q, sh, d);
}

// The 8 weights from element e of a stored GGUF type.
fn stored8(e: u32) -> W8 {
    if c8_type() {
        return c8_w8(stored_c8(e));
    }
    switch W_DTYPE {
        case 110u: {
            return dec_q2k(e);
        }
        case 111u: {
            return dec_q3k(e);
        }
        case 113u: {
            return dec_q5k(e);
        }
        case 120u: {
            return dec_iq4nl(e);
        }
        case 123u: {
            return dec_iq4xs(e);
        }
        case 139u: {
            return dec_mxfp4(e);
        }
        case 140u: {
            return dec_nvfp4(e);
        }
        default: {
            return W8(vec4<f32>(0.0), vec4<f32>(0.0));
        }
    }
}
