// matmul_gemm.wgsl — out = x @ W^T for many tokens (prefill): 32x64 output tiles staged
// through workgroup memory, 16 K-elements per step, each thread computes 2 tokens x 4 columns.
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE (weights.wgsl)
//   out (T, N_total)  packed activations, f32, or the f32 residual stream it adds to (OUT_MODE);
//                     columns [out_offset, out_offset + N)
// Grid: x = column tiles (N / 64), y = token tiles (T / 32).

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)

struct Params {
    k: u32,          // inner dimension (elements, even)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens
    d_off: u32,      // block formats: word offset of the scales in W
    m_off: u32,      // block formats: word offset of the minimums in W
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;         // (T, K/2)
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32

const BT: u32 = 32u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> xs: array<array<f32, BT>, BK>; // [k][token]
var<workgroup> ws: array<array<f32, BN>, BK>; // [k][column]

fn store(t: u32, col: u32, v: vec4<f32>) {
    if t >= p.t || col >= p.n {
        return;
    }
    let o = t * p.out_stride + p.out_offset + col;
    if OUT_MODE != 0u {
        for (var j = 0u; j < 4u; j++) {
            if col + j < p.n {
                let prev = select(0.0, bitcast<f32>(out[o + j]), OUT_MODE == 2u);
                out[o + j] = bitcast<u32>(prev + v[j]);
            }
        }
    } else {
        // N is even for packed outputs, so a pair is wholly inside or outside.
        out[o / 2u] = pack_act(v.xy);
        if col + 2u < p.n { out[o / 2u + 1u] = pack_act(v.zw); }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let n0 = wid.x * BN;
    let t0 = wid.y * BT;
    let tx = lid % 16u; // 4 columns each
    let ty = lid / 16u; // 2 tokens each
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // x tile: 32 tokens x 8 pairs, one pair per thread.
        let tt = lid / 8u;
        let xp = lid % 8u;
        var xv = vec2<f32>(0.0);
        if t0 + tt < p.t && k0 + 2u * xp < p.k {
            xv = unpack_act(x[((t0 + tt) * p.k + k0) / 2u + xp]);
        }
        xs[2u * xp][tt] = xv.x;
        xs[2u * xp + 1u][tt] = xv.y;
        // W tile: 64 columns x 8 pairs, two pairs per thread.
        for (var j = 0u; j < 2u; j++) {
            let idx = lid + j * 256u;
            let nn = idx / 8u;
            let wp = idx % 8u;
            var wv = vec2<f32>(0.0);
            if n0 + nn < p.n && k0 + 2u * wp < p.k {
                wv = load_w2((n0 + nn) * p.k + k0 + 2u * wp);
            }
            ws[2u * wp][nn] = wv.x;
            ws[2u * wp + 1u][nn] = wv.y;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let b = vec4<f32>(ws[kk][tx * 4u], ws[kk][tx * 4u + 1u], ws[kk][tx * 4u + 2u], ws[kk][tx * 4u + 3u]);
            acc0 += xs[kk][ty * 2u] * b;
            acc1 += xs[kk][ty * 2u + 1u] * b;
        }
        workgroupBarrier();
    }
    store(t0 + ty * 2u, n0 + tx * 4u, acc0);
    store(t0 + ty * 2u + 1u, n0 + tx * 4u, acc1);
}
