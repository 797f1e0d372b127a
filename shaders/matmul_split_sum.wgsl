// matmul_split_sum.wgsl — the end of a matmul whose K was split across workgroups
// (the matrix-core GEMMs with SPLIT > 1): adds up the splits' f32 partial sums in split order
// and stores the result as the matmul would (OUT_MODE, store2 in matmul_out.wgsl).
//
//   splits (S, T, N)  f32 partial sums of this chunk's N columns
//   out    (T, N_total) packed activations, f32, or the f32 residual stream it adds to;
//                     columns [out_offset, out_offset + N)
// One thread per pair of columns of one token.

struct Params {
    n: u32,          // columns of this chunk
    t: u32,          // tokens
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written (even)
    s: u32,          // splits
    scale_off: u32,  // SCALED: word offset of column 0's f32 scale in `ws`
    _pad1: u32,
    _pad2: u32,
}

override SCALED: bool = false; // W8A8 codes' sums: times xs[token] * ws[column]

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> splits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> xs: array<f32>; // SCALED: (T) per-token scales
@group(0) @binding(4) var<storage, read> ws: array<u32>; // SCALED: the int8 weight chunk, scales at scale_off

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let pairs = (p.n + 1u) / 2u; // per token
    if i >= p.t * pairs {
        return;
    }
    let tok = i / pairs;
    let c0 = 2u * (i % pairs);
    let both = c0 + 1u < p.n;
    var v = vec2<f32>(0.0);
    for (var z = 0u; z < p.s; z++) {
        let o = (z * p.t + tok) * p.n + c0;
        v += vec2<f32>(splits[o], select(0.0, splits[o + 1u], both));
    }
    if SCALED {
        let w0 = bitcast<f32>(ws[p.scale_off + c0]);
        let w1 = select(0.0, bitcast<f32>(ws[p.scale_off + min(c0 + 1u, p.n - 1u)]), both);
        v *= xs[tok] * vec2<f32>(w0, w1);
    }
    store2(tok * p.out_stride + p.out_offset + c0, v, both);
}
