// matmul_w8a8.wgsl — INT8 W8A8 (compressed-tensors, dynamic per-token activations):
//   out[t, n] = (sum_k xq[t, k] * wq[n, k]) * xs[t] * ws[n]   with exact i32 accumulation,
// the arithmetic vLLM performs for this scheme.
//   xq  (T, ceil(K/4))  int8 activations from quant_act.wgsl, xs (T) their f32 scales
//   W   (N, K) int8 rows of this chunk, then its N f32 per-channel scales at word scale_off
//   out (T, N_total)    packed activations (OUT_MODE 0), or the f32 residual stream it adds to (2); this
//                       chunk writes columns [out_offset, out_offset + N)
// Workgroup = 4 rows x 64 lanes (as matmul_gemv.wgsl); grid x/y = row groups, z = token.

// (OUT_MODE 0 or 2 and store2 in matmul_out.wgsl.)

struct Params {
    k: u32,
    n: u32,
    out_stride: u32,
    out_offset: u32,
    scale_off: u32, // word offset of the per-row scales in W
    t: u32,         // tokens (matmul_w8a8_gemm.wgsl; here z of the grid)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> xs: array<f32>;

const LANES: u32 = 64u;
const ROWS: u32 = 4u;

var<workgroup> partial: array<array<i32, LANES>, ROWS>;

// Dot product of 16 int8 pairs (exact).
fn dot16(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

fn x_word(i: u32) -> u32 {
    return xq[i / 4u][i % 4u];
}

fn w_word(i: u32) -> u32 {
    return w[i / 4u][i % 4u];
}

// Signed byte e of an int8 array.
fn byte_at(word: u32, e: u32) -> i32 {
    return (bitcast<i32>(word) << (24u - 8u * (e % 4u))) >> 24u;
}

@compute @workgroup_size(64, 4)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if group * ROWS >= p.n {
        return;
    }
    let t = wid.z;
    let lane = lid.x;
    let r = lid.y;
    let row = group * ROWS + r;
    let xw = (p.k + 3u) / 4u; // words per activation row
    var acc = 0;
    if row < p.n {
        if p.k % 16u == 0u {
            // 16 int8 per 16-byte load, two loads in flight per lane
            let groups = p.k / 16u;
            var j = lane;
            for (; j + LANES < groups; j += 2u * LANES) {
                let a0 = xq[t * groups + j];
                let b0 = w[row * groups + j];
                let a1 = xq[t * groups + j + LANES];
                let b1 = w[row * groups + j + LANES];
                acc += dot16(a0, b0) + dot16(a1, b1);
            }
            if j < groups {
                acc += dot16(xq[t * groups + j], w[row * groups + j]);
            }
        } else {
            for (var e = lane; e < p.k; e += LANES) {
                let we = row * p.k + e;
                acc += byte_at(x_word(t * xw + e / 4u), e) * byte_at(w_word(we / 4u), we);
            }
        }
    }
    partial[r][lane] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            partial[r][lane] += partial[r][lane + s];
        }
        workgroupBarrier();
    }
    if lane != 0u || row >= p.n || r % 2u != 0u {
        return;
    }
    // rows come in pairs (N even): this lane writes both
    let y0 = f32(partial[r][0]) * xs[t] * bitcast<f32>(w_word(p.scale_off + row));
    var y1 = 0.0;
    if row + 1u < p.n {
        y1 = f32(partial[r + 1u][0]) * xs[t] * bitcast<f32>(w_word(p.scale_off + row + 1u));
    }
    store2(t * p.out_stride + p.out_offset + row, vec2<f32>(y0, y1), row + 1u < p.n);
}
