// matmul_gemv_norm.wgsl — decode GEMV with the RMSNorm before it fused in:
//   y = (x / sqrt(mean(x^2) + eps) * g) @ W^T
// The normalization is linear in x, so the dot products use x * g and the results are scaled by
// 1/rms at the end; the row statistic comes from the same loads of x (the lanes of each row cover
// all of K), so the normalized activations are never written out and x is read in one pass.
// Interface (Params, bindings, shapes): gemv_norm_common.wgsl.
// Workgroup = ROWS rows x (256 / ROWS) lanes (ROWS 4 or 8); grid x/y = row groups (folded), z = token.

override ROWS: u32 = 4u;
override LANES: u32 = 256u / ROWS;

var<workgroup> partial: array<f32, 256>; // [row][lane]
var<workgroup> sumsq: array<f32, 256>;   // [lane], from row 0's lanes

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if group * ROWS >= p.n {
        return;
    }
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let t = wid.z;
    let xbase = t * (p.k / 4u);
    let lane = lid.x;
    let r = lid.y;
    let row = group * ROWS + r;
    // (x * g) . W[row], and sum(x^2) over this lane's share of K
    var acc = 0.0;
    var ss = 0.0;
    if row < p.n && w_blocks() {
        // K-quants: 32 elements per step (weights.wgsl dot32f)
        for (var i = lane; i < p.k / 32u; i += LANES) {
            let xg = xg32(xbase, i);
            ss += xg.ss;
            acc += dot32f(xg.v, row * p.k + 32u * i);
        }
    } else if row < p.n {
        // two 16-byte weight loads in flight per lane
        let groups = p.k / 8u;
        var i = lane;
        for (; i + LANES < groups; i += 2u * LANES) {
            let j = i + LANES;
            let x0 = x[xbase + 2u * i];
            let x1 = x[xbase + 2u * i + 1u];
            let x2 = x[xbase + 2u * j];
            let x3 = x[xbase + 2u * j + 1u];
            let a = dot8f(x0 * g4(8u * i), x1 * g4(8u * i + 4u), row * p.k + 8u * i);
            let b = dot8f(x2 * g4(8u * j), x3 * g4(8u * j + 4u), row * p.k + 8u * j);
            ss += dot(x0, x0) + dot(x1, x1) + dot(x2, x2) + dot(x3, x3);
            acc += a + b;
        }
        if i < groups {
            let x0 = x[xbase + 2u * i];
            let x1 = x[xbase + 2u * i + 1u];
            ss += dot(x0, x0) + dot(x1, x1);
            acc += dot8f(x0 * g4(8u * i), x1 * g4(8u * i + 4u), row * p.k + 8u * i);
        }
    }
    partial[r * LANES + lane] = acc;
    if r == 0u {
        sumsq[lane] = ss;
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            partial[r * LANES + lane] += partial[r * LANES + lane + s];
            if r == 0u {
                sumsq[lane] += sumsq[lane + s];
            }
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(sumsq[0] / f32(p.k) + p.eps);
    if lane != 0u || row >= p.n {
        return;
    }
    if SWIGLU {
        // rows r..r+3 = (gate, up) of two outputs; N and the chunk's first row are multiples of 4
        if r % 4u == 0u {
            let y = vec4<f32>(partial[r * LANES], partial[(r + 1u) * LANES], partial[(r + 2u) * LANES],
                              partial[(r + 3u) * LANES]) * inv;
            let col = t * p.out_stride + (p.out_offset + row) / 2u;
            out[col / 2u] = pack_act(vec2<f32>(silu(y.x) * y.y, silu(y.z) * y.w));
        }
    } else if r % 2u == 0u {
        let col = t * p.out_stride + p.out_offset + row;
        out[col / 2u] = pack_act(vec2<f32>(partial[r * LANES], partial[(r + 1u) * LANES]) * inv);
    }
}
