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
        for (var i = lane; i < p.k / 8u && !w_blocks(); i += lanes) {
            let e = 8u * i;
            let x0 = x[xbase + 2u * i];
            let x1 = x[xbase + 2u * i + 1u];
            ss += dot(x0, x0) + dot(x1, x1);
            let xg0 = x0 * g4(e);
            let xg1 = x1 * g4(e + 4u);
            acc.x += dot8f(xg0, xg1, r0 * p.k + e);
            acc.y += dot8f(xg0, xg1, (r0 + 1u) * p.k + e);
            if SWIGLU {
                acc.z += dot8f(xg0, xg1, (r0 + 2u) * p.k + e);
                acc.w += dot8f(xg0, xg1, (r0 + 3u) * p.k + e);
            }
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
