// matmul_gemv_norm_sg.wgsl — matmul_gemv_norm.wgsl for adapters with subgroups: each subgroup
// owns pairs of weight rows (quadruples with SWIGLU), its lanes stride over K, and subgroupAdd
// gives each row's dot product and the row statistic sum(x^2) — no workgroup memory, no barriers.
// Correct for any subgroup size (rows are assigned by subgroup_id).
// Interface (Params, bindings, shapes): gemv_norm_common.wgsl.
// Workgroup = 128 invocations for ROWS rows; grid x/y = row groups (folded), z = token.
// With ROPE (decode's q/k/v projection) the output pairs become the attention input: RoPE and
// the KV-cache append as rope_epilogue.wgsl's epilogue.

override TASK: u32 = select(2u, 4u, SWIGLU); // rows per subgroup task
override ROWS: u32 = 4u * TASK;               // rows per workgroup: 8, or 16 with SWIGLU
override ROPE: bool = false;

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
    let xbase = t * (p.k / 4u);
    for (var task = sg; task < ROWS / TASK; task += nsg) {
        let r0 = group * ROWS + TASK * task;
        if r0 >= p.n {
            break;
        }
        // N is even (a multiple of 4 with SWIGLU), so rows r0..r0+TASK-1 are all in range
        var acc = vec4<f32>(0.0);
        var ss = 0.0;
        for (var i = lane; i < p.k / 32u && w_blocks(); i += lanes) {
            // K-quants: 32 elements per step (weights.wgsl dot32f)
            let xg = xg32(xbase, i);
            ss += xg.ss;
            acc.x += dot32f(xg.v, r0 * p.k + 32u * i);
            acc.y += dot32f(xg.v, (r0 + 1u) * p.k + 32u * i);
            if SWIGLU {
                acc.z += dot32f(xg.v, (r0 + 2u) * p.k + 32u * i);
                acc.w += dot32f(xg.v, (r0 + 3u) * p.k + 32u * i);
            }
        }
        // other dtypes: 8 elements per step, four steps per iteration so each lane has 8 (16 with
        // SWIGLU) 16-byte weight loads in flight (H200, 8B bf16 tg128, 2026-12-04: one step
        // 186.6, two 191.0, four 195.3 tok/s)
        let steps = select(0u, p.k / 8u, !w_blocks());
        var i = lane;
        for (; i + 3u * lanes < steps; i += 4u * lanes) {
            let u0 = xg8(xbase, i);
            let u1 = xg8(xbase, i + lanes);
            let u2 = xg8(xbase, i + 2u * lanes);
            let u3 = xg8(xbase, i + 3u * lanes);
            ss += (u0.ss + u1.ss) + (u2.ss + u3.ss);
            acc += (dot_rows8(u0, r0, 8u * i) + dot_rows8(u1, r0, 8u * (i + lanes)))
                + (dot_rows8(u2, r0, 8u * (i + 2u * lanes)) + dot_rows8(u3, r0, 8u * (i + 3u * lanes)));
        }
        for (; i < steps; i += lanes) {
            let u = xg8(xbase, i);
            ss += u.ss;
            acc += dot_rows8(u, r0, 8u * i);
        }
        let inv = inverseSqrt(subgroupAdd(ss) / f32(p.k) + p.eps);
        let y = subgroupAdd(acc) * inv;
        if lane == 0u {
            if SWIGLU {
                let col = t * p.out_stride + (p.out_offset + r0) / 2u;
                out[col / 2u] = pack_act(vec2<f32>(silu(y.x) * y.y, silu(y.z) * y.w));
            } else if ROPE {
                rope_out(t, p.out_offset + r0, y.xy);
            } else {
                out[(t * p.out_stride + p.out_offset + r0) / 2u] = pack_act(y.xy);
            }
        }
    }
}

// x * g over elements 8i..8i+7 of the row at vec4 `xbase`, and their sum of squares.
struct XG8 {
    a: vec4<f32>,
    b: vec4<f32>,
    ss: f32,
}

fn xg8(xbase: u32, i: u32) -> XG8 {
    let x0 = x[xbase + 2u * i];
    let x1 = x[xbase + 2u * i + 1u];
    return XG8(x0 * g4(8u * i), x1 * g4(8u * i + 4u), dot(x0, x0) + dot(x1, x1));
}

// The dot products of u with rows r0, r0 + 1 (and r0 + 2, r0 + 3 with SWIGLU) at elements e..e+7.
fn dot_rows8(u: XG8, r0: u32, e: u32) -> vec4<f32> {
    var d = vec4<f32>(dot8f(u.a, u.b, r0 * p.k + e), dot8f(u.a, u.b, (r0 + 1u) * p.k + e), 0.0, 0.0);
    if SWIGLU {
        d.z = dot8f(u.a, u.b, (r0 + 2u) * p.k + e);
        d.w = dot8f(u.a, u.b, (r0 + 3u) * p.k + e);
    }
    return d;
}
