// matmul_gemm.wgsl — out = x @ W^T for many tokens (prefill): BT x BN output tiles staged
// through workgroup memory, 16 K-elements per step; each thread computes TT tokens x 8 columns
// (columns 4c..4c+3 and 64+4c..64+4c+3, so a subgroup's vec4 reads of the tile are contiguous),
// or TT x 4 with BN = 64 (more workgroups for small grids). TT = BT / 16: 4 for tiles of 64
// tokens, 8 for 128 (long prompts: twice the FMAs per read of the staged W tile).
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE (weights.wgsl)
//   out (T, N_total)  packed activations, f32, or the f32 residual stream it adds to (OUT_MODE);
//                     columns [out_offset, out_offset + N)
// Grid: x = token tiles (T / BT), y = column tiles (N / BN): the workgroups that share a tile
// of W run together, so W comes from memory about once (H100: 13% faster than columns on x).

override BN: u32 = 128u;     // columns per tile: 128 or 64
override BT: u32 = 64u;      // tokens per tile: 64 or 128
override TT: u32 = BT / 16u; // tokens per thread: 4 or 8

// (Params and bindings in matmul_common.wgsl, OUT_MODE and its stores in matmul_out.wgsl.)

const BK: u32 = 16u;
const MAX_TT: u32 = 8u;

var<workgroup> xs: array<array<vec4<f32>, 32>, BK>; // [k][token / 4] (BT / 4 of 32 used)
var<workgroup> ws: array<array<vec4<f32>, 32>, BK>;     // [k][column / 4]

fn store(t: u32, col: u32, v: vec4<f32>) {
    if t >= p.t || col >= p.n {
        return;
    }
    store4(t * p.out_stride + p.out_offset + col, v, col, p.n);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let n0 = wid.y * BN;
    let t0 = wid.x * BT;
    let tx = lid % 16u; // columns 4 tx.. and 64 + 4 tx..
    let ty = lid / 16u; // tokens TT ty..
    var acc: array<array<vec4<f32>, 2>, MAX_TT>; // [token TT ty + i][column half]
    let pair = lid % 8u; // K pair loaded by this thread
    let quad = lid / 8u; // 4 tokens (x tile, quads 0..BT / 4) or 4 columns (W tile, quads 0..BN / 4)
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kin = k0 + 2u * pair < p.k;
        // x tile: BT / 4 token quads x 8 pairs; whole vec4 stores.
        if quad < BT / 4u {
            var v: array<vec2<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                let tt = t0 + 4u * quad + j;
                v[j] = vec2<f32>(0.0);
                if tt < p.t && kin {
                    let i = (tt * p.k + k0) / 2u + pair; // word of x
                    v[j] = unpack_act(x[i / 4u][i % 4u]);
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
            let b0 = ws[kk][tx];
            var b1 = vec4<f32>(0.0);
            if BN == 128u {
                b1 = ws[kk][tx + 16u];
            }
            for (var q = 0u; q < TT / 4u; q++) {
                let a = xs[kk][ty * (TT / 4u) + q];
                for (var j = 0u; j < 4u; j++) {
                    acc[4u * q + j][0] += a[j] * b0;
                    if BN == 128u {
                        acc[4u * q + j][1] += a[j] * b1;
                    }
                }
            }
        }
        workgroupBarrier();
    }
    let c0 = n0 + tx * 4u;
    for (var i = 0u; i < TT; i++) {
        let t = t0 + ty * TT + i;
        store(t, c0, acc[i][0]);
        if BN == 128u {
            store(t, c0 + 64u, acc[i][1]);
        }
    }
}
