// matmul_gemv.wgsl — out = x @ W^T for few tokens (decode, batched decode): one weight row per
// 64 lanes, TOK tokens per workgroup, so a step of T tokens reads each weight ceil(T / TOK)
// times, and those reads meet in L2 (token groups are the grid's fastest dimension).
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE (weights.wgsl)
//   out (T, N_total)  packed activations, f32 (logits) or the f32 residual stream it adds to
//                     (OUT_MODE); this chunk writes
//                     columns [out_offset, out_offset + N)
// Workgroup = 256 / LANES rows x LANES lanes; lanes stride over K, then reduce in workgroup memory
// (LANES = 1 on software adapters without subgroups, where every barrier costs a switch of each
// invocation: one invocation per row, one barrier to pair the packed outputs).
// TOK = 1 (one sequence's decode): with VEC (K % 8 == 0) every step loads 8 activations and 8
// weights with 16-byte loads, otherwise pairs; K-quants take 32 elements a step (weights.wgsl
// dot32f). TOK > 1: each lane decodes 8 weights once (load_w8) and dots them with every token's
// activations; with RPT > 1 each invocation takes RPT rows (ROWS apart), so the activations it
// unpacks serve RPT rows of weights. Grid: x = token group, y/z = row groups (folded).

override VEC: bool = true;
override TOK: u32 = 1u; // tokens per workgroup, 1..MAX_TOK

// (Params and bindings in matmul_common.wgsl, OUT_MODE and store2 in matmul_out.wgsl.)

override LANES: u32 = 64u; // lanes per row (1, or a power of two 16..64; 64 where TOK > 1)
override ROWS: u32 = 256u / LANES; // rows of invocations per workgroup
override RPT: u32 = 1u; // rows per invocation (1 or 2; 2 only where TOK > 1 and VEC)
override RW: u32 = ROWS * RPT; // rows per workgroup
const MAX_TOK: u32 = 8u;
const MAX_RPT: u32 = 2u;

var<workgroup> partial: array<f32, 256u * MAX_TOK * RPT>; // [(token * RW + local row) * LANES + lane]

// Activations 32i..32i+31 of token t as f32 (K % 32 == 0).
fn x32(t: u32, i: u32) -> array<vec4<f32>, 8> {
    let b = t * (p.k / 8u) + 4u * i;
    let v0 = x[b];
    let v1 = x[b + 1u];
    let v2 = x[b + 2u];
    let v3 = x[b + 3u];
    return array<vec4<f32>, 8>(
        vec4<f32>(unpack_act(v0.x), unpack_act(v0.y)), vec4<f32>(unpack_act(v0.z), unpack_act(v0.w)),
        vec4<f32>(unpack_act(v1.x), unpack_act(v1.y)), vec4<f32>(unpack_act(v1.z), unpack_act(v1.w)),
        vec4<f32>(unpack_act(v2.x), unpack_act(v2.y)), vec4<f32>(unpack_act(v2.z), unpack_act(v2.w)),
        vec4<f32>(unpack_act(v3.x), unpack_act(v3.y)), vec4<f32>(unpack_act(v3.z), unpack_act(v3.w)));
}

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.y + wid.z * nwg.y;
    if group * RW >= p.n {
        return;
    }
    let t0 = wid.x * TOK;
    let lane = lid.x;
    let r = lid.y;
    let row0 = group * RW + r; // this invocation's rows: row0 + ROWS * i, i < RPT
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    var acc: array<f32, MAX_TOK * MAX_RPT>; // [row i * MAX_TOK + token]
    if row0 < p.n && TOK == 1u {
        acc[0] = dot_row(t0, row0 * p.k, lane);
    } else if row0 < p.n {
        if VEC {
            let groups = p.k / 8u;
            // (rows past N read the last row: their sums are not written)
            var wbase: array<u32, MAX_RPT>;
            for (var i = 0u; i < RPT; i++) {
                wbase[i] = min(row0 + ROWS * i, p.n - 1u) * p.k;
            }
            for (var e = lane; e < groups; e += LANES) {
                var xa: array<vec4<f32>, MAX_TOK>;
                var xb: array<vec4<f32>, MAX_TOK>;
                for (var j = 0u; j < TOK; j++) {
                    let xv = x[min(t0 + j, p.t - 1u) * groups + e];
                    xa[j] = vec4<f32>(unpack_act(xv.x), unpack_act(xv.y));
                    xb[j] = vec4<f32>(unpack_act(xv.z), unpack_act(xv.w));
                }
                for (var i = 0u; i < RPT; i++) {
                    let v = load_w8(wbase[i] + 8u * e);
                    for (var j = 0u; j < TOK; j++) {
                        acc[i * MAX_TOK + j] += dot(xa[j], v.a) + dot(xb[j], v.b);
                    }
                }
            }
        } else {
            let wbase = row0 * p.k;
            let pairs = p.k / 2u;
            for (var i = lane; i < pairs; i += LANES) {
                let v = load_w2(wbase + 2u * i);
                for (var j = 0u; j < TOK; j++) {
                    let xw = min(t0 + j, p.t - 1u) * pairs + i;
                    acc[j] += dot(unpack_act(x[xw / 4u][xw % 4u]), v);
                }
            }
        }
    }
    for (var i = 0u; i < RPT; i++) {
        for (var j = 0u; j < TOK; j++) {
            partial[(j * RW + ROWS * i + r) * LANES + lane] = acc[i * MAX_TOK + j];
        }
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            for (var i = 0u; i < RPT; i++) {
                for (var j = 0u; j < TOK; j++) {
                    let o = (j * RW + ROWS * i + r) * LANES + lane;
                    partial[o] += partial[o + s];
                }
            }
        }
        workgroupBarrier();
    }
    if lane != 0u {
        return;
    }
    for (var i = 0u; i < RPT; i++) {
        let row = row0 + ROWS * i;
        if row >= p.n {
            break;
        }
        for (var j = 0u; j < TOK; j++) {
            let t = t0 + j;
            if t >= p.t {
                break;
            }
            let y = partial[(j * RW + ROWS * i + r) * LANES];
            let col = t * p.out_stride + p.out_offset + row;
            if OUT_MODE != 0u {
                store2(col, vec2<f32>(y, 0.0), false);
            } else if r % 2u == 0u {
                store2(col, vec2<f32>(y, partial[(j * RW + ROWS * i + r + 1u) * LANES]), true);
            }
        }
    }
}

// This lane's share of x[t] . W[row] for one token (the decode step; wbase = row * K).
fn dot_row(t: u32, wbase: u32, lane: u32) -> f32 {
    var acc = 0.0;
    if w_blocks() {
        // K-quants: 32 elements per step, two steps in flight per lane
        let groups = p.k / 32u;
        var i = lane;
        for (; i + LANES < groups; i += 2u * LANES) {
            let a = dot32f(x32(t, i), wbase + 32u * i);
            let b = dot32f(x32(t, i + LANES), wbase + 32u * (i + LANES));
            acc += a + b;
        }
        if i < groups {
            acc += dot32f(x32(t, i), wbase + 32u * i);
        }
    } else if VEC {
        // two 16-byte weight loads in flight per lane
        let groups = p.k / 8u;
        var i = lane;
        for (; i + LANES < groups; i += 2u * LANES) {
            let a = dot8(x[t * groups + i], wbase + 8u * i);
            let b = dot8(x[t * groups + i + LANES], wbase + 8u * (i + LANES));
            acc += a + b;
        }
        if i < groups {
            acc += dot8(x[t * groups + i], wbase + 8u * i);
        }
    } else {
        let pairs = p.k / 2u;
        for (var i = lane; i < pairs; i += LANES) {
            let xw = t * pairs + i;
            acc += dot(unpack_act(x[xw / 4u][xw % 4u]), load_w2(wbase + 2u * i));
        }
    }
    return acc;
}
