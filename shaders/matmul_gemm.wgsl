// matmul_gemm.wgsl — out = x @ W^T for many tokens (prefill): 64 x BN output tiles staged
// through workgroup memory, 16 K-elements per step; each thread computes 4 tokens x 8 columns
// (columns 4c..4c+3 and 64+4c..64+4c+3, so a subgroup's vec4 reads of the tile are contiguous),
// or 4 x 4 with BN = 64 (more workgroups for small grids).
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE (weights.wgsl)
//   out (T, N_total)  packed activations, f32, or the f32 residual stream it adds to (OUT_MODE);
//                     columns [out_offset, out_offset + N)
// Grid: x = token tiles (T / 64), y = column tiles (N / BN): the workgroups that share a tile
// of W run together, so W comes from memory about once (H100: 13% faster than columns on x).

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)
override BN: u32 = 128u;     // columns per tile: 128 or 64

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

const BT: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> xs: array<array<vec4<f32>, BT / 4u>, BK>; // [k][token / 4]
var<workgroup> ws: array<array<vec4<f32>, 32>, BK>;     // [k][column / 4]

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
    let n0 = wid.y * BN;
    let t0 = wid.x * BT;
    let tx = lid % 16u; // columns 4 tx.. and 64 + 4 tx..
    let ty = lid / 16u; // tokens 4 ty..
    // acc{i}{h}: token 4 ty + i, columns of half h
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    let pair = lid % 8u; // K pair loaded by this thread
    let quad = lid / 8u; // 4 tokens (x tile, quads 0..15) or 4 columns (W tile, quads 0..31)
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kin = k0 + 2u * pair < p.k;
        // x tile: 16 token quads x 8 pairs, on the first 128 threads; whole vec4 stores.
        if quad < BT / 4u {
            var v: array<vec2<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                let tt = t0 + 4u * quad + j;
                v[j] = vec2<f32>(0.0);
                if tt < p.t && kin {
                    v[j] = unpack_act(x[(tt * p.k + k0) / 2u + pair]);
                }
            }
            xs[2u * pair][quad] = vec4<f32>(v[0].x, v[1].x, v[2].x, v[3].x);
            xs[2u * pair + 1u][quad] = vec4<f32>(v[0].y, v[1].y, v[2].y, v[3].y);
        }
        // W tile: BN / 4 column quads x 8 pairs, one job per thread.
        if quad < BN / 4u {
            var wv: array<vec2<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                let nn = n0 + 4u * quad + j;
                wv[j] = vec2<f32>(0.0);
                if nn < p.n && kin {
                    wv[j] = load_w2(nn * p.k + k0 + 2u * pair);
                }
            }
            ws[2u * pair][quad] = vec4<f32>(wv[0].x, wv[1].x, wv[2].x, wv[3].x);
            ws[2u * pair + 1u][quad] = vec4<f32>(wv[0].y, wv[1].y, wv[2].y, wv[3].y);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a = xs[kk][ty];
            let b0 = ws[kk][tx];
            c00 += a.x * b0;
            c10 += a.y * b0;
            c20 += a.z * b0;
            c30 += a.w * b0;
            if BN == 128u {
                let b1 = ws[kk][tx + 16u];
                c01 += a.x * b1;
                c11 += a.y * b1;
                c21 += a.z * b1;
                c31 += a.w * b1;
            }
        }
        workgroupBarrier();
    }
    let t = t0 + ty * 4u;
    let c0 = n0 + tx * 4u;
    let c1 = c0 + 64u;
    store(t, c0, c00);
    store(t + 1u, c0, c10);
    store(t + 2u, c0, c20);
    store(t + 3u, c0, c30);
    if BN == 128u {
        store(t, c1, c01);
        store(t + 1u, c1, c11);
        store(t + 2u, c1, c21);
        store(t + 3u, c1, c31);
    }
}
