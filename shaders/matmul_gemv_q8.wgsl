// matmul_gemv_q8.wgsl — out = x @ W^T for a few tokens with 8- to 2-bit GGUF block weights and
// int8 activations (llama.cpp's MMVQ): a weight block's integer codes meet the activations' int8
// values four at a time in dot4I8Packed (exact i32 sums), and the scales are applied per block of
// 32 — instead of converting every weight and every activation to f32.
//   xq  (T, K/4)     int8 activations per block of 32 in quant_word's order (reduce.wgsl),
//                    each row in halves (quant_word_index: blocks' elements 0..15, then 16..31),
//                    from quant_act.wgsl / rms_norm.wgsl with BLOCKS
//   xs  (T, K/32)    per block (d, s): the activations are d * q, s = d * sum(q)
//   W   (N, K)       this chunk's rows in W_DTYPE (weights.wgsl): 3 q8_0, 4 q4_0, 5 q4_1, 7 q4_k,
//                    8 q6_k; every type read as stored (100 + ggml type id)
//   out (T, N_total) as matmul_gemv.wgsl (OUT_MODE, matmul_out.wgsl); this chunk writes columns
//                    [out_offset, out_offset + N)
// In a block of 32 each weight is a * c + b with a signed byte code c, so the block's dot is
//   d * (a_lo * sum_lo(c * q) + a_hi * sum_hi(c * q)) + b * s
// (lo / hi: elements 0..15 / 16..31, whose scales differ for the K-quants' groups of 16). Codes:
// Q4_K and Q4_1 the nibble (b = -dmin * m and m), Q5_K the nibble with its fifth bit
// (b = -dmin * m), Q2_K its 2-bit value (b = -dmin * min per group of 16), IQ4_XS its table's
// int8 value for the nibble (so IQ4_NL, MXFP4 and NVFP4, FP4 values doubled), Q3_K its 3-bit
// value - 4, Q4_0 the nibble - 8, Q6_K (low | high << 4) - 32 and Q8_0 its int8 value; Q5_0/Q5_1,
// TQ1_0/TQ2_0 and the grid i-quants weights.wgsl's stored_c8 codes (Q5_1: b = m); all regrouped
// to quant_word's order (b = 0 where not given). Workgroup = ROWS x LANES threads of RPT rows
// each (ROWS x RPT rows), each lane whole blocks of 32 (two at a time for one token); the TOK
// tokens of a workgroup share each block's decode, and each token's activation block serves the
// thread's RPT rows. Grid as matmul_gemv.wgsl:
// x = token group, y/z = row groups (folded). With ROPE (decode's q/k/v projection, packed
// output) the output pairs become the attention input instead: RoPE and the KV-cache append
// (rope_epilogue.wgsl).

override TOK: u32 = 1u; // tokens per workgroup, 1..16
override ROPE: bool = false;

struct Params {
    k: u32,          // inner dimension (elements, K % 32 == 0; % 256 for K-quants)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens
    d_off: u32,      // word offset of the scales in W
    m_off: u32,      // word offset of the minimums in W
    _pad: u32,
    q_cols: u32,     // ROPE: H D, the q columns of the q/k/v output
    kv_cols: u32,    // ROPE: Hkv D
    head_dim: u32,   // ROPE: D
    ctx: u32,        // ROPE: cache positions per slot
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xq: array<vec4<u32>>; // (T, K/16)
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32
@group(0) @binding(4) var<storage, read> xs: array<vec2<f32>>;  // (T, K/32)

override LANES: u32 = 32u; // lanes per row (a power of two, 16..64)
override ROWS: u32 = 256u / LANES; // threads per lane index (256 / LANES / RPT)
override RPT: u32 = 1u; // rows per thread (1 or 2; RPT x TOK <= 32): each token's activations
                        // are loaded once for RPT rows
const MAX_ACC: u32 = 32u; // accumulators per thread: TOK x RPT
override PART_TOK: u32 = 8u / RPT; // tokens whose partial sums are reduced at once

var<workgroup> partial: array<f32, 2048>; // [token % PART_TOK][row][lane]: PART_TOK x RPT x 256

// A decoded block of 32 weights: signed byte codes in quant_word's word order, the scales of
// elements 0..15 and 16..31, the offset (b_lo, used by Q2_K alone, of elements 0..15 where it
// differs from b: Q2_K's groups of 16 have a minimum each).
struct WBlock {
    c: array<u32, 8>,
    a: vec2<f32>,
    b: f32,
    b_lo: f32,
}

// The 2-bit fields at bits 0, 4, 8, 12 of n (other bits clear) to bits 4..5 of bytes 0..3.
fn spread2(n: u32) -> u32 {
    let v = (n | (n << 8u)) & 0x00ff00ffu;
    return ((v | (v << 4u)) & 0x0f0f0f0fu) << 4u;
}

// Bytes 0, 2 of word a, then of b (elements 8g + 0, 2, 4, 6 of a block whose bytes a, b hold
// elements 8g..8g+7), and bytes 1, 3 of each (8g + 1, 3, 5, 7): quant_word's word order.
fn evens(a: u32, b: u32) -> u32 {
    return (a & 0xffu) | ((a >> 8u) & 0xff00u) | ((b << 16u) & 0xff0000u) | ((b << 8u) & 0xff000000u);
}
fn odds(a: u32, b: u32) -> u32 {
    return ((a >> 8u) & 0xffu) | ((a >> 16u) & 0xff00u) | ((b << 8u) & 0xff0000u) | (b & 0xff000000u);
}

// Q8_0's block of 32 int8 weights from element e, stored in element order (word i: elements
// 4i..4i+3), as quant_word's words.
fn q8_0_block(e: u32) -> WBlock {
    let v = array<vec4<u32>, 2>(w[e / 16u], w[e / 16u + 1u]);
    var r: WBlock;
    for (var g = 0u; g < 4u; g++) {
        let a = v[g / 2u][2u * (g % 2u)];
        let b = v[g / 2u][2u * (g % 2u) + 1u];
        r.c[2u * g] = evens(a, b);
        r.c[2u * g + 1u] = odds(a, b);
    }
    r.a = vec2<f32>(w_f16(w_d_off, e / 32u));
    return r;
}

// Q5_K as stored (weights.wgsl dec_q5k: 44 words per 256 elements; sub-block s takes nibble s % 2
// of the 32 bytes of chunk s / 2 and bit s of the 32 qh bytes), from element e (e % 32 == 0).
fn q5k_block(e: u32) -> WBlock {
    let base = 44u * (e / 256u);
    let s = (e % 256u) / 32u;
    let q = base + 12u + 8u * (s / 2u);
    var r: WBlock;
    for (var g = 0u; g < 4u; g++) {
        let a = ((w_word(q + 2u * g) >> (4u * (s % 2u))) & 0x0f0f0f0fu)
            | (((w_word(base + 4u + 2u * g) >> s) & 0x01010101u) << 4u);
        let b = ((w_word(q + 2u * g + 1u) >> (4u * (s % 2u))) & 0x0f0f0f0fu)
            | (((w_word(base + 5u + 2u * g) >> s) & 0x01010101u) << 4u);
        r.c[2u * g] = evens(a, b);
        r.c[2u * g + 1u] = odds(a, b);
    }
    let sm = q5k_sm(base, s);
    r.a = vec2<f32>(sm.x);
    r.b = -sm.y;
    return r;
}

// The nibble-table types (IQ4_NL, IQ4_XS, MXFP4, NVFP4): entry b of this workgroup's table is
// the int8 values of byte b's two nibbles, low nibble's in bits 0..7, high's in 8..15 (filled at
// the kernel's start): one lookup per two weights (H200, 8B IQ4_XS mix tg64: 242.6 tok/s vs 110.7
// computing each weight's byte from the table in registers). One entry for the other types, whose
// kernels never touch it.
override IQ4_PAIRS: u32 = select(1u, 256u, W_DTYPE == 120u || W_DTYPE == 123u || W_DTYPE == 139u || W_DTYPE == 140u);
var<workgroup> iq4_pairs: array<u32, IQ4_PAIRS>;

fn nib_type() -> bool {
    return W_DTYPE == 120u || W_DTYPE == 123u || W_DTYPE == 139u || W_DTYPE == 140u;
}

// The codes of the low nibbles (x) and of the high nibbles (y) of word v's four bytes.
fn nib_codes(v: u32) -> vec2<u32> {
    let p0 = iq4_pairs[v & 255u];
    let p1 = iq4_pairs[(v >> 8u) & 255u];
    let p2 = iq4_pairs[(v >> 16u) & 255u];
    let p3 = iq4_pairs[v >> 24u];
    return vec2<u32>((p0 & 0xffu) | ((p1 & 0xffu) << 8u) | ((p2 & 0xffu) << 16u) | (p3 << 24u),
                     (p0 >> 8u) | (p1 & 0xff00u) | ((p2 << 8u) & 0xff0000u) | ((p3 << 16u) & 0xff000000u));
}

// A block of 32 from its codes in element order (word j: elements 4j..4j+3), as quant_word's
// words.
fn block_from(ew: array<u32, 8>) -> WBlock {
    var r: WBlock;
    for (var g = 0u; g < 4u; g++) {
        r.c[2u * g] = evens(ew[2u * g], ew[2u * g + 1u]);
        r.c[2u * g + 1u] = odds(ew[2u * g], ew[2u * g + 1u]);
    }
    return r;
}

// The 4 words of 16 nibble bytes from byte o (o even: half-word aligned, 5 words loaded).
fn nib_words(o: u32) -> array<u32, 4> {
    let sh = 8u * (o % 4u);
    let w0 = o / 4u;
    let v = array<u32, 5>(w_word(w0), w_word(w0 + 1u), w_word(w0 + 2u), w_word(w0 + 3u), w_word(w0 + 4u));
    return array<u32, 4>(funnel(v[0], v[1], sh), funnel(v[1], v[2], sh), funnel(v[2], v[3], sh), funnel(v[3], v[4], sh));
}

// A nibble-table type's block of 32 weights from element e (e % 32 == 0): IQ4_NL, IQ4_XS and
// MXFP4 hold elements 0..15 in the low nibbles of 16 bytes, 16..31 in the high ones (weights.wgsl
// dec_iq4nl, dec_iq4xs, dec_mxfp4); NVFP4 two sub-blocks of 16, each 8 bytes: low nibbles, then
// high (dec_nvfp4).
fn nib_block(e: u32) -> WBlock {
    var v: array<u32, 4>;
    var a: vec2<f32>;
    switch W_DTYPE {
        case 120u: {
            let bo = 18u * (e / 32u);
            v = nib_words(bo + 2u);
            a = vec2<f32>(w_f16b(bo));
        }
        case 123u: {
            let base = 34u * (e / 256u);
            let s = (e % 256u) / 32u;
            let q = base + 2u + 4u * s; // word aligned
            v = array<u32, 4>(w_word(q), w_word(q + 1u), w_word(q + 2u), w_word(q + 3u));
            a = vec2<f32>(iq4xs_scale(base, s));
        }
        case 139u: {
            let bo = 17u * (e / 32u);
            v = nib_words(bo + 1u);
            a = vec2<f32>(e8m0_half(w_u8(bo)));
        }
        default: {
            let bo = 36u * (e / 64u);
            let j = (e % 64u) / 32u;
            v = nib_words(bo + 4u + 16u * j);
            a = vec2<f32>(ue4m3_half(w_u8(bo + 2u * j)), ue4m3_half(w_u8(bo + 2u * j + 1u)));
        }
    }
    var ew: array<u32, 8>;
    for (var m = 0u; m < 4u; m++) {
        let c = nib_codes(v[m]);
        if W_DTYPE == 140u {
            // sub-block m / 2: elements 0..7 the low nibbles of its words, 8..15 the high ones
            ew[4u * (m / 2u) + m % 2u] = c.x;
            ew[4u * (m / 2u) + 2u + m % 2u] = c.y;
        } else {
            ew[m] = c.x;
            ew[4u + m] = c.y;
        }
    }
    var r = block_from(ew);
    r.a = a;
    return r;
}

// A c8_type()'s block of 32 weights from element e (e % 32 == 0), four groups of 8 (weights.wgsl
// stored_c8); each of these types' scales covers 16 weights or more, so groups 0 and 2 give a.
fn c8_block(e: u32) -> WBlock {
    var ew: array<u32, 8>;
    var a: array<f32, 4>;
    var b = 0.0;
    for (var g = 0u; g < 4u; g++) {
        let c = stored_c8(e + 8u * g);
        ew[2u * g] = c.lo;
        ew[2u * g + 1u] = c.hi;
        a[g] = c.a;
        b = c.b; // Q5_1's m, one per block of 32
    }
    var r = block_from(ew);
    r.a = vec2<f32>(a[0], a[2]);
    r.b = b;
    return r;
}

// Q2_K as stored (weights.wgsl dec_q2k: 21 words per 256 elements), from element e (e % 32 ==
// 0): sub-block s = 4n + g takes bits 2g of the 32 quant bytes 32n..; its groups of 16 have scale
// bytes 2s and 2s + 1 (scale | min << 4): a = d * scale, b = -dmin * min per group.
fn q2k_block(e: u32) -> WBlock {
    let base = 21u * (e / 256u);
    let s = (e % 256u) / 32u;
    let q = base + 4u + 8u * (s / 4u);
    let g = 2u * (s % 4u);
    var r: WBlock;
    for (var m = 0u; m < 4u; m++) {
        let a = (w_word(q + 2u * m) >> g) & 0x03030303u;
        let b = (w_word(q + 2u * m + 1u) >> g) & 0x03030303u;
        r.c[2u * m] = evens(a, b);
        r.c[2u * m + 1u] = odds(a, b);
    }
    let sc = w_word(base + s / 2u) >> (16u * (s % 2u)); // scale bytes 2s, 2s + 1
    let dm = unpack2x16float(w_word(base + 20u));
    r.a = dm.x * vec2<f32>(f32(sc & 15u), f32((sc >> 8u) & 15u));
    r.b_lo = -dm.y * f32((sc >> 4u) & 15u);
    r.b = -dm.y * f32((sc >> 12u) & 15u);
    return r;
}

// Q3_K as stored (weights.wgsl dec_q3k: 110 bytes per 256 elements, so blocks alternate between
// word and half-word alignment), from element e (e % 32 == 0): sub-block s = 4n + g takes bits 2g
// of the 32 quant bytes 32n.. and bit s of the 32 hmask bytes; code q - 4 with q = low | high << 2,
// scales d * (sc - 32) of its two groups of 16 (sc 2s and 2s + 1), b = 0.
fn q3k_block(e: u32) -> WBlock {
    let bo = 110u * (e / 256u);
    let s = (e % 256u) / 32u;
    let g = 2u * (s % 4u);
    // the 8 words of quant bytes and of hmask bytes, from 9 aligned words each
    let sh = 8u * (bo % 4u);
    let q0 = (bo + 32u + 32u * (s / 4u)) / 4u;
    var qw: array<u32, 9>;
    var hw: array<u32, 9>;
    for (var m = 0u; m < 9u; m++) {
        qw[m] = w_word(q0 + m);
        hw[m] = w_word(bo / 4u + m);
    }
    var r: WBlock;
    for (var m = 0u; m < 4u; m++) {
        var v: array<u32, 2>;
        for (var h = 0u; h < 2u; h++) {
            let j = 2u * m + h;
            let q = funnel(qw[j], qw[j + 1u], sh);
            let hb = funnel(hw[j], hw[j + 1u], sh);
            v[h] = minus(((q >> g) & 0x03030303u) | (((hb >> s) & 0x01010101u) << 2u), 4u);
        }
        r.c[2u * m] = evens(v[0], v[1]);
        r.c[2u * m + 1u] = odds(v[0], v[1]);
    }
    r.a = vec2<f32>(q3k_scale(bo, 2u * s), q3k_scale(bo, 2u * s + 1u));
    return r;
}

// The 32 weights from element e (e % 32 == 0).
fn wblock(e: u32) -> WBlock {
    if W_DTYPE == 3u {
        return q8_0_block(e);
    }
    if W_DTYPE == 113u {
        return q5k_block(e);
    }
    if nib_type() {
        return nib_block(e);
    }
    if c8_type() {
        return c8_block(e);
    }
    if W_DTYPE == 111u {
        return q3k_block(e);
    }
    if W_DTYPE == 110u {
        return q2k_block(e);
    }
    let v = w[e / 32u]; // word j: low 4 bits of elements 8j..8j+7, element 8j + i in bits 4i
    var r: WBlock;
    for (var j = 0u; j < 4u; j++) {
        r.c[2u * j] = v[j] & 0x0f0f0f0fu;
        r.c[2u * j + 1u] = (v[j] >> 4u) & 0x0f0f0f0fu;
    }
    switch W_DTYPE {
        case 4u: {
            for (var j = 0u; j < 8u; j++) {
                r.c[j] = minus(r.c[j], 8u);
            }
            r.a = vec2<f32>(w_f16(w_d_off, e / 32u));
        }
        case 5u: {
            r.a = vec2<f32>(w_f16(w_d_off, e / 32u));
            r.b = w_f16(w_m_off, e / 32u);
        }
        case 7u: {
            let sm = q4k_sm(e);
            r.a = vec2<f32>(sm.x);
            r.b = -sm.y;
        }
        default: {
            // Q6_K: high-bit word h holds elements 16h..16h+15 (element 16h + i in bits 2i)
            for (var h = 0u; h < 2u; h++) {
                let hi = w_word(2u * w_m_off / 3u + e / 16u + h);
                r.c[4u * h] = minus(r.c[4u * h] | spread2(hi & 0x3333u), 32u);
                r.c[4u * h + 1u] = minus(r.c[4u * h + 1u] | spread2((hi >> 2u) & 0x3333u), 32u);
                r.c[4u * h + 2u] = minus(r.c[4u * h + 2u] | spread2((hi >> 16u) & 0x3333u), 32u);
                r.c[4u * h + 3u] = minus(r.c[4u * h + 3u] | spread2((hi >> 18u) & 0x3333u), 32u);
            }
            r.a = vec2<f32>(q6k_scale(e), q6k_scale(e + 16u));
        }
    }
    return r;
}

// Block i of token t's activations: its int8 values (two vec4) and (d, s).
struct XBlock {
    x0: vec4<u32>,
    x1: vec4<u32>,
    ds: vec2<f32>,
}

fn x_block(t: u32, i: u32) -> XBlock {
    let blocks = p.k / 32u; // a row's halves (quant_word_index): blocks' elements 0..15, 16..31
    return XBlock(xq[2u * t * blocks + i], xq[(2u * t + 1u) * blocks + i], xs[t * blocks + i]);
}

// Block i of token t's activations dotted with the decoded weight block.
fn block_dot(b: WBlock, t: u32, i: u32) -> f32 {
    return xblock_dot(b, x_block(t, i));
}

fn xblock_dot(b: WBlock, x: XBlock) -> f32 {
    let x0 = x.x0;
    let x1 = x.x1;
    let lo = (dot4I8Packed(b.c[0], x0.x) + dot4I8Packed(b.c[1], x0.y))
           + (dot4I8Packed(b.c[2], x0.z) + dot4I8Packed(b.c[3], x0.w));
    let hi = (dot4I8Packed(b.c[4], x1.x) + dot4I8Packed(b.c[5], x1.y))
           + (dot4I8Packed(b.c[6], x1.z) + dot4I8Packed(b.c[7], x1.w));
    let ds = x.ds;
    var y = ds.x * (b.a.x * f32(lo) + b.a.y * f32(hi)) + b.b * ds.y;
    if W_DTYPE == 110u {
        // Q2_K: b_lo * s_lo + b * s_hi = b * s + (b_lo - b) * s_lo, s_lo = d * sum(q of 0..15)
        let ones = 0x01010101u;
        let q_lo = (dot4I8Packed(ones, x0.x) + dot4I8Packed(ones, x0.y))
                 + (dot4I8Packed(ones, x0.z) + dot4I8Packed(ones, x0.w));
        y += (b.b_lo - b.b) * ds.x * f32(q_lo);
    }
    return y;
}

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.y + wid.z * nwg.y;
    if group * ROWS * RPT >= p.n {
        return;
    }
    let t0 = wid.x * TOK;
    let lane = lid.x;
    let r = lid.y;
    let row0 = (group * ROWS + r) * RPT; // this thread's rows: row0 .. row0 + RPT - 1
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    if nib_type() {
        let table = select(IQ4NL_WORDS, FP4_WORDS, W_DTYPE == 139u || W_DTYPE == 140u);
        for (var b = r * LANES + lane; b < 256u; b += ROWS * LANES) {
            iq4_pairs[b] = lut_byte(table, b & 15u) | (lut_byte(table, b >> 4u) << 8u);
        }
        workgroupBarrier();
    }
    var acc: array<f32, MAX_ACC>; // [token][row of the thread]
    if row0 < p.n {
        let blocks = p.k / 32u;
        var i = lane;
        if TOK == 1u && RPT == 1u {
            // two blocks in flight per lane (H200, 8B Q4_K_M tg128: 231.0 vs 224.6 tok/s), added
            // in the order of the loop below: a token's sum does not depend on TOK or RPT (a
            // sequence's batched decode equals its decode alone)
            for (; i + LANES < blocks; i += 2u * LANES) {
                let b0 = wblock(row0 * p.k + 32u * i);
                let b1 = wblock(row0 * p.k + 32u * (i + LANES));
                acc[0] += block_dot(b0, t0, i);
                acc[0] += block_dot(b1, t0, i + LANES);
            }
        }
        // (one row: the loop of the one-token path's shape, so that the driver compiles a token's
        // sum alike for 1-8 tokens — H200: the same bits)
        for (; RPT == 1u && i < blocks; i += LANES) {
            let b = wblock(row0 * p.k + 32u * i);
            for (var j = 0u; j < TOK; j++) {
                if t0 + j < p.t {
                    acc[j] += block_dot(b, t0 + j, i);
                }
            }
        }
        for (; i < blocks; i += LANES) {
            var b: array<WBlock, 2>;
            for (var q = 0u; q < RPT; q++) {
                // rows past N (the last thread's, N % RPT != 0) read row N - 1, written nowhere
                b[q] = wblock(min(row0 + q, p.n - 1u) * p.k + 32u * i);
            }
            for (var j = 0u; j < TOK; j++) {
                // a group's slots past T are skipped (uniform: a step of 12 tokens does 12
                // tokens' work, not 16)
                if t0 + j < p.t {
                    let x = x_block(t0 + j, i);
                    for (var q = 0u; q < RPT; q++) {
                        acc[j * RPT + q] += xblock_dot(b[q], x);
                    }
                }
            }
        }
    }
    // the TOK x RPT sums of the thread's rows over their lanes, PART_TOK tokens at a time (loops
    // of constant bounds, so acc's indices are constants once unrolled and it stays in registers)
    let wrows = ROWS * RPT; // rows per workgroup
    for (var h = 0u; h < TOK; h += PART_TOK) {
        let t1 = t0 + h;
        let part = min(TOK, PART_TOK);
        for (var j = 0u; j < part; j++) {
            for (var q = 0u; q < RPT; q++) {
                partial[(j * wrows + r * RPT + q) * LANES + lane] = acc[(h + j) * RPT + q];
            }
        }
        workgroupBarrier();
        for (var s = LANES / 2u; s > 0u; s >>= 1u) {
            if lane < s {
                for (var j = 0u; j < part * RPT; j++) {
                    let o = (j * ROWS + r) * LANES + lane; // j * ROWS + r covers (token, row) pairs
                    partial[o] += partial[o + s];
                }
            }
            workgroupBarrier();
        }
        if lane == 0u && row0 < p.n {
            for (var j = 0u; j < part; j++) {
                let t = t1 + j;
                if t >= p.t {
                    break;
                }
                for (var q = 0u; q < RPT; q++) {
                    let wr = r * RPT + q; // the row within the workgroup
                    let row = row0 + q;
                    let y = partial[(j * wrows + wr) * LANES];
                    let col = t * p.out_stride + p.out_offset + row;
                    if row >= p.n {
                        break;
                    }
                    if OUT_MODE != 0u {
                        store2(col, vec2<f32>(y, 0.0), false);
                    } else if wr % 2u == 0u {
                        // N even: row + 1 < N, its sum beside this one (this thread's when RPT > 1)
                        let y2 = vec2<f32>(y, partial[(j * wrows + wr + 1u) * LANES]);
                        if ROPE {
                            rope_out(t, p.out_offset + row, y2);
                        } else {
                            store2(col, y2, true);
                        }
                    }
                }
            }
        }
        if h + PART_TOK < TOK {
            workgroupBarrier(); // the next tokens' sums reuse partial
        }
    }
}
