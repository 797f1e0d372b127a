// matmul_gemm.wgsl — out = x @ W^T for many tokens (prefill): BT x BN output tiles staged
// through workgroup memory, 16 K-elements per step, the next step's global loads issued into
// registers before this step's multiply-adds (as words: 16-bit and f32 weights are converted
// after them; block formats decode as they load); each thread computes TT tokens x 8 columns
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
override PREFETCH: bool = true; // the next step's loads in flight during this one's multiply-adds
                                // (off on software adapters: lavapipe, SmolLM2-shape bf16 pp256
                                // 13.1-13.3 vs 14.1-17.0 tok/s without, 2026-12-04)

// (Params and bindings in matmul_common.wgsl, OUT_MODE and its stores in matmul_out.wgsl.)

const BK: u32 = 16u;
const MAX_TT: u32 = 8u;

var<workgroup> xs: array<array<vec4<f32>, 32>, BK>; // [k][token / 4] (BT / 4 of 32 used)
var<workgroup> ws: array<array<vec4<f32>, 32>, BK>;     // [k][column / 4]

fn store(t: u32, col: u32, v: vec4<f32>) {
    if t >= p.t || col >= p.n {
        return;
    }
    store4(t * p.out_stride + p.out_offset + col, v * code_scale4(t, col), col, p.n);
}

// This thread's loads of a step at k0, as words: x pair `pair` of tokens 4 quad.. (one packed
// word each), W pair `pair` of columns 4 quad.. (f16/bf16: one word; f32: two; block formats:
// the decoded pair's bits). Zeros past T, N and K.
struct Loads {
    x: vec4<u32>,
    w: array<vec2<u32>, 4>,
}

fn load_step(quad: u32, pair: u32, t0: u32, n0: u32, k0: u32) -> Loads {
    var l: Loads;
    let kin = k0 + 2u * pair < p.k;
    if quad < BT / 4u {
        for (var j = 0u; j < 4u; j++) {
            let tt = t0 + 4u * quad + j;
            if tt < p.t && kin {
                let i = (tt * p.k + k0) / 2u + pair; // word of x
                l.x[j] = x[i / 4u][i % 4u];
            }
        }
    }
    if quad < BN / 4u {
        for (var j = 0u; j < 4u; j++) {
            let nn = n0 + 4u * quad + j;
            if nn < p.n && kin {
                let e = nn * p.k + k0 + 2u * pair;
                if W_DTYPE == 1u || W_DTYPE == 2u {
                    l.w[j] = vec2<u32>(w_word(e / 2u), 0u);
                } else if W_DTYPE == 0u {
                    l.w[j] = vec2<u32>(w_word(e), w_word(e + 1u));
                } else {
                    l.w[j] = bitcast<vec2<u32>>(load_w2(e));
                }
            }
        }
    }
    return l;
}

// Weight pair j of `l` as f32.
fn w_pair(l: Loads, j: u32) -> vec2<f32> {
    if W_DTYPE == 1u || W_DTYPE == 2u {
        return unpack_w16(l.w[j].x, W_DTYPE);
    }
    return bitcast<vec2<f32>>(l.w[j]);
}

// Stores a step's loads into the staged tiles, transposed to [k][token / 4] and [k][column / 4].
fn put_step(quad: u32, pair: u32, l: Loads) {
    if quad < BT / 4u {
        let v = array<vec2<f32>, 4>(unpack_act(l.x[0]), unpack_act(l.x[1]), unpack_act(l.x[2]), unpack_act(l.x[3]));
        xs[2u * pair][quad] = vec4<f32>(v[0].x, v[1].x, v[2].x, v[3].x);
        xs[2u * pair + 1u][quad] = vec4<f32>(v[0].y, v[1].y, v[2].y, v[3].y);
    }
    if quad < BN / 4u {
        let v = array<vec2<f32>, 4>(w_pair(l, 0u), w_pair(l, 1u), w_pair(l, 2u), w_pair(l, 3u));
        ws[2u * pair][quad] = vec4<f32>(v[0].x, v[1].x, v[2].x, v[3].x);
        ws[2u * pair + 1u][quad] = vec4<f32>(v[0].y, v[1].y, v[2].y, v[3].y);
    }
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
    var l = load_step(quad, pair, t0, n0, 0u);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        if !PREFETCH && k0 > 0u {
            l = load_step(quad, pair, t0, n0, k0);
        }
        put_step(quad, pair, l);
        workgroupBarrier();
        if PREFETCH && k0 + BK < p.k {
            l = load_step(quad, pair, t0, n0, k0 + BK); // in flight during the multiply-adds
        }
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
