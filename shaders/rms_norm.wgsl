// rms_norm.wgsl — out = x / sqrt(mean(x^2) + eps) * weight, statistics in f32.
//   x (T, C) f32 (the residual stream), out (T, C) packed activations, C even;
//   weight (C) in W_DTYPE (weights.wgsl, not a block format).
// With QUANT (the input of W8A8 linears, C % 4 == 0): the normalized row, rounded to the
// activation precision as the packed output would hold it, is quantized per token as
// quant_act.wgsl does: out = xq (T, C/4) int8 words, xs (T) the f32 scales (QUANT 1), or per
// block of 32 (QUANT 2, C % 32 == 0: quant_act.wgsl's BLOCKS layout, xs (T, C/32) pairs (d, s)).
// One 256-thread workgroup per token row (rows folded over x/y); with QUANT 2 one per 256 words of
// a row (grid x) and token (y), each reducing the whole row for its statistics.

override QUANT: u32 = 0u; // 0: packed activations, 1: int8 per token, 2: int8 per block of 32
override CODES: bool = false; // QUANT 1: the int8 values as packed 16-bit activations of the same
                              // integers, (T, C/2) words (quant_codes4: W8A8 on the f16 GEMMs)

struct Params {
    c: u32,   // row length (elements, even)
    t: u32,   // rows
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;   // (T, C/2) pairs
// @binding(2) w: (C) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, C/2), or xq (T, C/4)
@group(0) @binding(4) var<storage, read_write> xs: array<f32>;  // QUANT: (T) scales

const WG: u32 = 256u; // workgroup size (reduce.wgsl)

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = select(wid.x + wid.y * nwg.x, wid.y, QUANT == 2u);
    if row >= p.t {
        return;
    }
    let pairs = p.c / 2u;
    let base = row * pairs;
    var ss = 0.0;
    for (var i = lid; i < pairs; i += WG) {
        let v = x[base + i];
        ss += dot(v, v);
    }
    let inv = inverseSqrt(wg_sum(lid, ss) / f32(p.c) + p.eps);
    if QUANT == 0u {
        for (var i = lid; i < pairs; i += WG) {
            out[base + i] = pack_act(x[base + i] * inv * load_w2(2u * i));
        }
        return;
    }
    if QUANT == 2u {
        let words = p.c / 4u;
        let w = wid.x * WG + lid;
        var v = vec4<f32>(0.0);
        if w < words {
            for (var i = 0u; i < 4u; i++) {
                // element e of pair e / 2
                let e = quant_word_elem(w, i);
                v[i] = normed(base, e / 2u, inv)[e % 2u];
            }
        }
        let qw = quant_word(lid, v);
        if w < words {
            out[quant_word_index(row, w, words)] = qw.q;
            if w % 8u == 0u {
                xs[2u * (row * (words / 8u) + w / 8u)] = qw.ds.x;
                xs[2u * (row * (words / 8u) + w / 8u) + 1u] = qw.ds.y;
            }
        }
        return;
    }
    var amax = 0.0;
    for (var i = lid; i < pairs; i += WG) {
        let v = normed(base, i, inv);
        amax = max(amax, max(amax_term(v.x), amax_term(v.y)));
    }
    let scale = wg_max(lid, amax) / 127.0;
    let div = select(1.0, scale, scale > 0.0);
    for (var j = lid; j < pairs / 2u; j += WG) {
        let v = vec4<f32>(normed(base, 2u * j, inv), normed(base, 2u * j + 1u, inv));
        if CODES {
            let c = quant_codes4(v, div);
            out[2u * (row * (pairs / 2u) + j)] = c.x;
            out[2u * (row * (pairs / 2u) + j) + 1u] = c.y;
        } else {
            out[row * (pairs / 2u) + j] = quant_i8x4(v, div);
        }
    }
    if lid == 0u {
        xs[row] = scale;
    }
}

// Normalized pair i of the row at `base`, rounded to the activation precision (what the packed
// output holds, so the quantization sees the same values as quant_act.wgsl would).
fn normed(base: u32, i: u32, inv: f32) -> vec2<f32> {
    return unpack_act(pack_act(x[base + i] * inv * load_w2(2u * i)));
}
