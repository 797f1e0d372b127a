// matmul_skinny_coop.wgsl — out = x @ W^T on matrix cores for a few tokens (a batched decode step
// of several sequences, a short prompt): the 16x16x16 f16 multiply-adds of matmul_gemm_coop.wgsl
// (same staging, same weight decoding, same `enable` directives), shaped for T <= 64. The prompt
// GEMM's 64 x 128 tiles give a 4096-row weight 32 workgroups — a few SMs' worth of loads in
// flight — and waste most of each tile on a few tokens; here a workgroup owns only BN columns and
// BM tokens, and its 8 subgroups split K: each stage of BK K values (256; 128 for 64 columns) is
// staged by all threads, subgroup s multiplies K slice s BK / 8.., and the 8 partial tiles are
// summed in workgroup memory at the end. Each weight is read once per BM tokens, as f16 into the
// matrix cores. (H200, 8B bf16 at 8 tokens: 1.7 TB/s of weights with 8-byte stores into the
// staged tiles, 1.2 with scalar f16 stores.)
//
//   x   (T, K)        packed f16 activations, K % 32 == 0
//   W   (N, K)        this chunk's rows of the weight, any W_DTYPE but f32 (weights.wgsl)
//   out (T, N_total)  packed activations, f32, or the f32 residual stream it adds to (OUT_MODE);
//                     columns [out_offset, out_offset + N)
// (Params and bindings in matmul_common.wgsl, OUT_MODE and store2 in matmul_out.wgsl.)
// Grid: x = column tiles (N / BN), y = token tiles (T / BM), z = K splits (SPLIT); 256 threads
// = 8 subgroups of 32. K goes in stages of BK (zeros past K): the next stage's global loads are
// issued into registers before this stage's multiply-adds, and stored to workgroup memory after
// them. With SPLIT > 1 (a weight of few column tiles, whose workgroups alone leave most SMs idle),
// workgroup z takes split z of the stages and writes its f32 partial sums to `splits`
// (SPLIT, T, N); matmul_split_sum.wgsl adds them up in split order and stores the result.

override BM: u32 = 32u;      // tokens per tile: 16 or 32
override BN: u32 = 32u;      // columns per tile: 32 or 64 (16: f16/bf16 only)
override SPLIT: u32 = 1u;    // K splits (grid z)
override ROPE: bool = false; // q/k/v of a batched step: RoPE and the KV append as the epilogue
                             // (rope_epilogue.wgsl; SPLIT = 1)

const THREADS: u32 = 256u;
const SUBGROUPS: u32 = 8u;
override KS: u32 = select(32u, 16u, BN == 64u); // K per subgroup per stage
override BK: u32 = SUBGROUPS * KS;               // K per stage: 256, or 128 for 64 columns
override LD: u32 = BK + 8u;       // row stride of the staged tiles (f16), against bank conflicts
override X_JOBS: u32 = BM * BK / 8u / THREADS; // vec4 loads of the x stage per thread: 1..4
override W_JOBS: u32 = BN * BK / STAGE_JOB / THREADS; // jobs of the W stage (>= 1: BN >= 32 for K-quants)

var<workgroup> xs: array<vec4<f16>, BM * LD / 4u>;  // the stage of x: [token][k]
var<workgroup> ws: array<vec4<f16>, BN * LD / 4u>;  // the stage of W: [column][k] (= W^T column-major)
var<workgroup> part: array<f32, SUBGROUPS * 256u>; // each subgroup's 16x16 partial tile, to sum

@group(0) @binding(4) var<storage, read_write> splits: array<f32>; // SPLIT > 1: (SPLIT, T, N)

// Job i of this thread in the x stage at k0: 8 values of one token (zeros past T and K).
fn load_x(lid: u32, i: u32, t0: u32, k0: u32) -> vec4<u32> {
    let job = lid + THREADS * i;
    let t = t0 + job / (BK / 8u);
    let k = k0 + 8u * (job % (BK / 8u));
    if t >= p.t || k >= p.k {
        return vec4<u32>(0u);
    }
    return x[(t * p.k + k) / 8u];
}

// Job i of this thread in the W stage at k0: the words of STAGE_JOB weights of one column (zeros
// past N and K), as weights.wgsl's stage_raw loads them (decoded by put_w).
fn load_w(lid: u32, i: u32, n0: u32, k0: u32) -> RawJob {
    let job = lid + THREADS * i;
    let n = n0 + job / (BK / STAGE_JOB);
    let k = k0 + STAGE_JOB * (job % (BK / STAGE_JOB));
    if n >= p.n || k >= p.k {
        return RawJob();
    }
    return stage_raw(n * p.k + k);
}

fn put_x(lid: u32, i: u32, v: vec4<u32>) {
    let job = lid + THREADS * i;
    let o = ((job / (BK / 8u)) * LD + 8u * (job % (BK / 8u))) / 4u;
    xs[o] = to_f16x4(v.x, v.y, false);
    xs[o + 1u] = to_f16x4(v.z, v.w, false);
}

fn put_w(lid: u32, i: u32, n0: u32, k0: u32, r: RawJob) {
    let job = lid + THREADS * i;
    let n = job / (BK / STAGE_JOB);
    let k = STAGE_JOB * (job % (BK / STAGE_JOB));
    let o = (n * LD + k) / 4u;
    let v = dec_job((n0 + n) * p.k + k0 + k, r);
    for (var j = 0u; j < STAGE_JOB / 4u; j++) {
        ws[o + j] = v[j];
    }
}

// Sums the subgroups' partial tiles of result tile (tokens t.., columns col.., 16 x 16) and
// writes it: thread l < 128 takes token l / 8, columns 2 (l % 8)... (pairs stay whole: N even
// for packed outputs).
fn emit(c: coop_mat16x16<f32, C>, sg: u32, lid: u32, t: u32, col: u32, z: u32) {
    coopStoreT(c, &part[sg * 256u], 16u);
    workgroupBarrier();
    if lid < 128u {
        let r = lid / 8u;
        let h = 2u * (lid % 8u);
        var v = vec2<f32>(0.0);
        for (var s = 0u; s < SUBGROUPS; s++) {
            let o = s * 256u + r * 16u + h;
            v += vec2<f32>(part[o], part[o + 1u]);
        }
        let tt = t + r;
        let c0 = col + h;
        if tt < p.t && c0 < p.n {
            if ROPE {
                rope_out(tt, p.out_offset + c0, v);
            } else if SPLIT > 1u {
                let o = (z * p.t + tt) * p.n + c0;
                splits[o] = v.x;
                if c0 + 1u < p.n {
                    splits[o + 1u] = v.y;
                }
            } else {
                store2(tt * p.out_stride + p.out_offset + c0, v, c0 + 1u < p.n);
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let n0 = wid.x * BN;
    let t0 = wid.y * BM;
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;
    var xr: array<vec4<u32>, 4>;
    var wr: array<RawJob, 4>;
    // this workgroup's stages: split wid.z of them (all with SPLIT = 1)
    let per = ((p.k + BK - 1u) / BK + SPLIT - 1u) / SPLIT;
    let s0 = wid.z * per;
    let stages = min(s0 + per, (p.k + BK - 1u) / BK);
    for (var i = 0u; i < X_JOBS; i++) {
        xr[i] = load_x(lid, i, t0, s0 * BK);
    }
    for (var i = 0u; i < W_JOBS; i++) {
        wr[i] = load_w(lid, i, n0, s0 * BK);
    }
    for (var s = s0; s < stages; s++) {
        for (var i = 0u; i < X_JOBS; i++) {
            put_x(lid, i, xr[i]);
        }
        for (var i = 0u; i < W_JOBS; i++) {
            put_w(lid, i, n0, s * BK, wr[i]);
        }
        workgroupBarrier();
        // the next stage's loads go out first (registers), then this stage's multiply-adds
        if s + 1u < stages {
            let k1 = (s + 1u) * BK;
            for (var i = 0u; i < X_JOBS; i++) {
                xr[i] = load_x(lid, i, t0, k1);
            }
            for (var i = 0u; i < W_JOBS; i++) {
                wr[i] = load_w(lid, i, n0, k1);
            }
        }
        for (var kk = 0u; kk < KS; kk += 16u) {
            let o = sg * KS + kk;
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[o / 4u], LD / 4u);
            var a1: coop_mat16x16<f16, A>;
            if BM == 32u {
                a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(o + 16u * LD) / 4u], LD / 4u);
            }
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[o / 4u], LD / 4u);
            c00 = coopMultiplyAdd(a0, b0, c00);
            if BM == 32u {
                c10 = coopMultiplyAdd(a1, b0, c10);
            }
            if BN >= 32u {
                let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(o + 16u * LD) / 4u], LD / 4u);
                c01 = coopMultiplyAdd(a0, b1, c01);
                if BM == 32u {
                    c11 = coopMultiplyAdd(a1, b1, c11);
                }
            }
            if BN == 64u {
                let b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(o + 32u * LD) / 4u], LD / 4u);
                let b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(o + 48u * LD) / 4u], LD / 4u);
                c02 = coopMultiplyAdd(a0, b2, c02);
                c03 = coopMultiplyAdd(a0, b3, c03);
                if BM == 32u {
                    c12 = coopMultiplyAdd(a1, b2, c12);
                    c13 = coopMultiplyAdd(a1, b3, c13);
                }
            }
        }
        workgroupBarrier();
    }
    emit(c00, sg, lid, t0, n0, wid.z);
    if BN >= 32u {
        emit(c01, sg, lid, t0, n0 + 16u, wid.z);
    }
    if BN == 64u {
        emit(c02, sg, lid, t0, n0 + 32u, wid.z);
        emit(c03, sg, lid, t0, n0 + 48u, wid.z);
    }
    if BM == 32u {
        emit(c10, sg, lid, t0 + 16u, n0, wid.z);
        if BN >= 32u {
            emit(c11, sg, lid, t0 + 16u, n0 + 16u, wid.z);
        }
        if BN == 64u {
            emit(c12, sg, lid, t0 + 16u, n0 + 32u, wid.z);
            emit(c13, sg, lid, t0 + 16u, n0 + 48u, wid.z);
        }
    }
}
