// matmul_w8a8_gemm.wgsl — INT8 W8A8 for many tokens (prefill): the arithmetic of
// matmul_w8a8.wgsl (exact i32 sums of int8 products, then * xs[t] * ws[n]) in 64x64 output tiles
// staged through workgroup memory, 32 K-elements (8 packed words) per step; each thread computes
// 4 tokens x 4 columns with dot4I8Packed.
//   xq  (T, K/4)        int8 activations from quant_act.wgsl, xs (T) their f32 scales; K % 4 == 0
//   W   (N, K) int8 rows of this chunk, then its N f32 per-channel scales at word scale_off
//   out (T, N_total)    packed activations (OUT_MODE 0), or the f32 residual stream it adds to (2); this
//                       chunk writes columns [out_offset, out_offset + N)
// Grid: x = column tiles (N / 64), y = token tiles (T / 64).

// (OUT_MODE 0 or 2 and store4 in matmul_out.wgsl.)

struct Params {
    k: u32,
    n: u32,
    out_stride: u32,
    out_offset: u32,
    scale_off: u32, // word offset of the per-row scales in W
    t: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xq: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> xs: array<f32>;

const BT: u32 = 64u;
const BN: u32 = 64u;
const BKW: u32 = 8u; // packed words (4 int8 each) of K per step

var<workgroup> xt: array<array<vec4<u32>, BT / 4u>, BKW>; // [k word][token / 4]
var<workgroup> wt: array<array<vec4<u32>, BN / 4u>, BKW>; // [k word][column / 4]

// Row r of out: columns c..c+3 from the i32 sums.
fn store(t: u32, c: u32, acc: vec4<i32>) {
    if t >= p.t || c >= p.n {
        return;
    }
    var ws = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if c + j < p.n {
            ws[j] = bitcast<f32>(w[p.scale_off + c + j]);
        }
    }
    let y = vec4<f32>(acc) * xs[t] * ws;
    store4(t * p.out_stride + p.out_offset + c, y, c, p.n);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n0 = wid.x * BN;
    let t0 = wid.y * BT;
    let tx = lid % 16u; // columns 4 tx..
    let ty = lid / 16u; // tokens 4 ty..
    let kw = p.k / 4u;  // words per row
    var c0 = vec4<i32>(0);
    var c1 = vec4<i32>(0);
    var c2 = vec4<i32>(0);
    var c3 = vec4<i32>(0);
    let word = lid % BKW; // K word loaded by this thread
    let quad = lid / BKW; // 0..31
    for (var k0 = 0u; k0 < kw; k0 += BKW) {
        let kin = k0 + word < kw;
        // threads 0..127 load the x tile, 128..255 the W tile: 16 quads x 8 words each
        let qd = quad % 16u;
        var v = vec4<u32>(0u);
        for (var j = 0u; j < 4u; j++) {
            if quad < 16u {
                let tt = t0 + 4u * qd + j;
                if tt < p.t && kin {
                    v[j] = xq[tt * kw + k0 + word];
                }
            } else {
                let nn = n0 + 4u * qd + j;
                if nn < p.n && kin {
                    v[j] = w[nn * kw + k0 + word];
                }
            }
        }
        if quad < 16u {
            xt[word][qd] = v;
        } else {
            wt[word][qd] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BKW; kk++) {
            let a = xt[kk][ty];
            let b = wt[kk][tx];
            c0 += vec4<i32>(dot4I8Packed(a.x, b.x), dot4I8Packed(a.x, b.y), dot4I8Packed(a.x, b.z), dot4I8Packed(a.x, b.w));
            c1 += vec4<i32>(dot4I8Packed(a.y, b.x), dot4I8Packed(a.y, b.y), dot4I8Packed(a.y, b.z), dot4I8Packed(a.y, b.w));
            c2 += vec4<i32>(dot4I8Packed(a.z, b.x), dot4I8Packed(a.z, b.y), dot4I8Packed(a.z, b.z), dot4I8Packed(a.z, b.w));
            c3 += vec4<i32>(dot4I8Packed(a.w, b.x), dot4I8Packed(a.w, b.y), dot4I8Packed(a.w, b.z), dot4I8Packed(a.w, b.w));
        }
        workgroupBarrier();
    }
    let t = t0 + 4u * ty;
    let c = n0 + 4u * tx;
    store(t, c, c0);
    store(t + 1u, c, c1);
    store(t + 2u, c, c2);
    store(t + 3u, c, c3);
}
