// matmul_gemv_sg.wgsl — matmul_gemv.wgsl for adapters with subgroups: each subgroup owns pairs
// of weight rows, its lanes stride over K, and one subgroupAdd per row gives the dot product —
// no workgroup memory, no barriers. Correct for any subgroup size (rows are assigned by
// subgroup_id, so no assumption on how invocations form subgroups).
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE (weights.wgsl)
//   out (T, N_total)  packed activations, f32 (logits) or the f32 residual stream it adds to
//                     (OUT_MODE); this chunk writes columns [out_offset, out_offset + N)
// Workgroup = 128 invocations for 8 rows; grid x/y = row groups (folded), z = token.

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)
override VEC: bool = true;

struct Params {
    k: u32,          // inner dimension (elements, even)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
    t: u32,          // tokens (unused here: z of the grid)
    d_off: u32,      // block formats: word offset of the scales in W
    m_off: u32,      // block formats: word offset of the minimums in W
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;   // (T, K/2) words
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32

const ROWS: u32 = 8u;

fn put(t: u32, row: u32, v: f32) {
    let col = t * p.out_stride + p.out_offset + row;
    if OUT_MODE == 1u {
        out[col] = bitcast<u32>(v);
    } else {
        out[col] = bitcast<u32>(bitcast<f32>(out[col]) + v);
    }
}

@compute @workgroup_size(128)
fn main(@builtin(subgroup_id) sg: u32,
        @builtin(num_subgroups) nsg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) lanes: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    let t = wid.z;
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    for (var pair = sg; pair < ROWS / 2u; pair += nsg) {
        let r0 = group * ROWS + 2u * pair;
        if r0 >= p.n {
            break;
        }
        let r1 = min(r0 + 1u, p.n - 1u); // N may be odd for f32 outputs
        var a0 = 0.0;
        var a1 = 0.0;
        if VEC {
            // four 16-byte weight loads in flight per lane
            let groups = p.k / 8u;
            var i = lane;
            for (; i + lanes < groups; i += 2u * lanes) {
                let j = i + lanes;
                let xi = x[t * groups + i];
                let xj = x[t * groups + j];
                let b0 = dot8(xi, r0 * p.k + 8u * i) + dot8(xj, r0 * p.k + 8u * j);
                let b1 = dot8(xi, r1 * p.k + 8u * i) + dot8(xj, r1 * p.k + 8u * j);
                a0 += b0;
                a1 += b1;
            }
            if i < groups {
                let xv = x[t * groups + i];
                a0 += dot8(xv, r0 * p.k + 8u * i);
                a1 += dot8(xv, r1 * p.k + 8u * i);
            }
        } else {
            let pairs = p.k / 2u;
            for (var i = lane; i < pairs; i += lanes) {
                let xw = t * pairs + i;
                let xv = unpack_act(x[xw / 4u][xw % 4u]);
                a0 += dot(xv, load_w2(r0 * p.k + 2u * i));
                a1 += dot(xv, load_w2(r1 * p.k + 2u * i));
            }
        }
        let s0 = subgroupAdd(a0);
        let s1 = subgroupAdd(a1);
        if lane == 0u {
            if OUT_MODE == 0u {
                out[(t * p.out_stride + p.out_offset + r0) / 2u] = pack_act(vec2<f32>(s0, s1));
            } else {
                put(t, r0, s0);
                if r0 + 1u < p.n {
                    put(t, r0 + 1u, s1);
                }
            }
        }
    }
}
