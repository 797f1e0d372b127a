// quant_act.wgsl — dynamic per-token symmetric int8 quantization of activations (W8A8 input):
//   s = max|x| / 127, q = round_half_even(x / s) clamped to [-128, 127]
//   x  (T, K)          packed activations; with SWIGLU (the down projection's input) x is the
//                      gate/up output (T, 2K), interleaved (1: gate_0, up_0, gate_1, ...) or
//                      halves (2: [gate | up]), and the value quantized is silu(gate) * up in f32
//   xq (T, ceil(K/4))  int8, four per u32 (element 4j + b in byte b of word j)
//   xs (T)             f32 scales
// With BLOCKS (the input of the block-weight GEMV, matmul_gemv_q8.wgsl; K % 32 == 0) each block of
// 32 values is quantized on its own (reduce.wgsl quant_word): xq (T, K/4) in its word order,
// each row in halves (quant_word_index), xs (T, K/32) pairs (d, s); a thread per word, grid x =
// groups of 256 words, y = token.
// Otherwise one 256-thread workgroup per token row (rows folded over x/y).

struct Params {
    k: u32,
    t: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;

override SWIGLU: u32 = 0u;
override BLOCKS: bool = false;
override CODES: bool = false; // per token (K % 4 == 0): xq holds the int8 values as packed 16-bit
                              // activations of the same integers, (T, K/2) words (quant_codes4)

const WG: u32 = 256u; // workgroup size (reduce.wgsl)

// The packed value at element index i.
fn val(i: u32) -> f32 {
    let v = unpack_act(x[i / 2u]);
    return select(v.x, v.y, (i & 1u) == 1u);
}

// Element e of row `row` (K may be odd: rows are not pair-aligned then).
fn elem(row: u32, e: u32) -> f32 {
    if SWIGLU == 1u {
        let gu = unpack_act(x[row * p.k + e]); // (gate_e, up_e)
        return silu(gu.x) * gu.y;
    }
    if SWIGLU == 2u {
        let gate = val(2u * row * p.k + e);
        return silu(gate) * val(2u * row * p.k + p.k + e);
    }
    return val(row * p.k + e);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    if BLOCKS {
        let words = p.k / 4u;
        let row = wid.y;
        let w = wid.x * WG + lid;
        var v = vec4<f32>(0.0);
        if w < words {
            for (var i = 0u; i < 4u; i++) {
                v[i] = elem(row, quant_word_elem(w, i));
            }
        }
        let qw = quant_word(lid, v);
        if w < words {
            xq[quant_word_index(row, w, words)] = qw.q;
            if w % 8u == 0u {
                xs[2u * (row * (words / 8u) + w / 8u)] = qw.ds.x;
                xs[2u * (row * (words / 8u) + w / 8u) + 1u] = qw.ds.y;
            }
        }
        return;
    }
    let row = wid.x + wid.y * nwg.x;
    if row >= p.t {
        return;
    }
    var amax = 0.0;
    for (var e = lid; e < p.k; e += WG) {
        amax = max(amax, amax_term(elem(row, e)));
    }
    let scale = wg_max(lid, amax) / 127.0;
    let div = select(1.0, scale, scale > 0.0);
    let words = (p.k + 3u) / 4u;
    for (var j = lid; j < words; j += WG) {
        // elements past K (the last word when K % 4 != 0) quantize to 0
        var v = vec4<f32>(0.0);
        for (var b = 0u; b < 4u; b++) {
            if 4u * j + b < p.k {
                v[b] = elem(row, 4u * j + b);
            }
        }
        if CODES {
            let c = quant_codes4(v, div);
            xq[2u * (row * words + j)] = c.x;
            xq[2u * (row * words + j) + 1u] = c.y;
        } else {
            xq[row * words + j] = quant_i8x4(v, div);
        }
    }
    if lid == 0u {
        xs[row] = scale;
    }
}
