// reduce.wgsl — reductions over a workgroup of WG threads (a power of two; each kernel that takes
// this file declares `const WG`), prepended after common.wgsl to the kernels that reduce with one
// workgroup: rms_norm.wgsl, quant_act.wgsl (256 threads per token row), attention.wgsl (64 per
// key tile), attention_combine.wgsl (64 per head, quant_word alone). Every thread calls them
// (uniform control flow) and gets the result; `red` is free again on return.

var<workgroup> red: array<f32, WG>;

fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// One word of activations quantized to int8 per block of 32, for the block-weight GEMV
// (matmul_gemv_q8.wgsl): each group of 8 consecutive threads holds the 8 words of one block, a
// thread the 4 values v of its word. Per block d = max|v| / 127, q = round_half_even(v / d) (as
// quant_i8x4), s = d * sum(q). Word order within a block: word 2g holds elements 8g + 0, 2, 4, 6
// and word 2g + 1 elements 8g + 1, 3, 5, 7 (g = 0..3) — the order of a 4-bit weight word's nibble
// bytes, so `w & 0x0f0f0f0f` and `(w >> 4) & 0x0f0f0f0f` meet their activations in one
// dot4I8Packed each. Every thread calls it (uniform control flow) and gets its word and (d, s).
struct QWord {
    q: u32,
    ds: vec2<f32>,
}

fn quant_word(lid: u32, v: vec4<f32>) -> QWord {
    red[lid] = max(max(amax_term(v.x), amax_term(v.y)), max(amax_term(v.z), amax_term(v.w)));
    workgroupBarrier();
    let g0 = lid & ~7u;
    var amax = red[g0];
    for (var i = 1u; i < 8u; i++) {
        amax = max(amax, red[g0 + i]);
    }
    workgroupBarrier();
    let d = amax / 127.0;
    let q = quant_i8x4(v, select(1.0, d, d > 0.0));
    red[lid] = f32(dot4I8Packed(q, 0x01010101u));
    workgroupBarrier();
    var sum = 0.0;
    for (var i = 0u; i < 8u; i++) {
        sum += red[g0 + i];
    }
    workgroupBarrier();
    return QWord(q, vec2<f32>(d, d * sum));
}

// Where word w (quant_word's order) of row `row` of `words` words is stored: each block's first
// four words (elements 0..15) in the row's first half, its last four in the second half, so that
// the 16-byte loads of one half by adjacent lanes (a block each, matmul_gemv_q8.wgsl) are
// adjacent in memory.
fn quant_word_index(row: u32, w: u32, words: u32) -> u32 {
    return row * words + (w % 8u) / 4u * (words / 2u) + (w / 8u) * 4u + w % 4u;
}

// Element i (0..3) of word w of a row quantized per block (quant_word's order).
fn quant_word_elem(w: u32, i: u32) -> u32 {
    let j = w % 8u;
    return 32u * (w / 8u) + 8u * (j / 2u) + 2u * i + j % 2u;
}
