// matmul_gemm_coop.wgsl — the prefill GEMM on matrix cores: out = x @ W^T with cooperative
// matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX, Vulkan VK_KHR_cooperative_matrix), 16x16x16
// multiply-adds of f16 inputs into f32 accumulators. Used where the adapter has that
// configuration, 32-wide subgroups and f16 activations, for weights of every float and GGUF block
// dtype: f16/bf16 are staged as stored (bf16 -> f16 is exact in f16's range, see to_f16), block
// formats are decoded to f16 as they are staged (weights.wgsl stage_dec), so quantized weights
// reach the matrix cores too. (The source is compiled with `enable f16; enable
// wgpu_cooperative_matrix;`.) Tiles are staged as vec4<f16>, one 8-byte store per 4 values:
// NVIDIA's compiler rejects cooperative loads from u32 or vec4<u32> workgroup arrays, naga has no
// bitcast to vec2<f16>, and scalar f16 stores (8 per 16-byte load, 4-way bank conflicts) cost a
// third of the skinny kernel's speed (H200, 8B bf16, 16 sequences: 1,067 -> 1,395 tok/s).
//
//   x   (T, K)        packed f16 activations, K % BK == 0
//   W   (N, K)        this chunk's rows of the weight, any W_DTYPE but f32 (weights.wgsl)
//   out (T, N_total)  packed activations, f32, or the f32 residual stream it adds to (OUT_MODE);
//                     columns [out_offset, out_offset + N)
// (Params and bindings in matmul_common.wgsl, OUT_MODE and its stores in matmul_out.wgsl.)
// Grid: x = column tiles (N / 128), y = token tiles (T / BM), z = K splits (SPLIT: a weight of
// few tiles, whose workgroups alone leave SMs idle; split z's f32 partial sums go to `splits`
// (SPLIT, T, N), which matmul_split_sum.wgsl adds up in split order). 2 BM threads = BM / 16
// subgroups of 32; subgroup s computes tokens 32 (s % (BM / 32)).. x columns 64 (s / (BM / 32)).. (2 x 4
// accumulator tiles). BM = 128 halves the weight traffic per token.
// K goes in stages of BK: the next stage's global loads are issued into registers before the
// multiply-adds of this one and stored after them. Each stage waits on its loads' latency, so
// the more multiply-adds per stage the better: BK = 64 (K % 64 == 0) in one staged buffer, two
// barriers per stage (H200, pp512 8B bf16: 9,691 vs 7,115 tok/s, 1B bf16: 40,499 vs 31,666,
// 2026-12-03); else BK = 32 double-buffered, one barrier per stage. 44 / 48 KiB of workgroup
// memory at BM = 128.

override BM: u32 = 64u;      // tokens per tile: 64 or 128
override BK: u32 = 32u;      // K per stage: 32 (two staged buffers) or 64 (one)
override SPLIT: u32 = 1u;    // K splits (grid z)

const BN: u32 = 128u; // columns per tile
override NBUF: u32 = select(1u, 2u, BK == 32u); // staged buffers
override LD: u32 = BK + 8u;  // row stride of the staged tiles (f16), against bank conflicts
override XS: u32 = BM * LD;
override WS: u32 = BN * LD;
override THREADS: u32 = 2u * BM;
override X_JOBS: u32 = BM * BK / 8u / THREADS; // vec4 loads of the x stage per thread: 2 or 4
override W_JOBS: u32 = BN * BK / STAGE_JOB / THREADS; // jobs of the W stage (weights.wgsl): 1..8

var<workgroup> xs: array<vec4<f16>, NBUF * XS / 4u>; // staged x: [token][k]
var<workgroup> ws: array<vec4<f16>, NBUF * WS / 4u>; // staged W: [column][k] (= W^T column-major)
var<workgroup> cs: array<f32, THREADS / 32u * 256u>; // per subgroup: a 16x16 result tile on its way out

@group(0) @binding(4) var<storage, read_write> splits: array<f32>; // SPLIT > 1: (SPLIT, T, N)

// Job i of this thread in the x stage at k0: 8 values of one token (zeros past T).
fn load_x(lid: u32, i: u32, t0: u32, k0: u32) -> vec4<u32> {
    let job = lid + THREADS * i;
    let t = t0 + job / (BK / 8u);
    if t >= p.t {
        return vec4<u32>(0u);
    }
    return x[(t * p.k + k0) / 8u + job % (BK / 8u)];
}

// Job i of this thread in the W stage at k0: the words of STAGE_JOB weights of one column (zeros
// past N), as weights.wgsl's stage_raw loads them: f16/bf16 as stored, block formats undecoded,
// so these loads stay in flight during the multiply-adds (put_w converts or decodes them).
fn load_w(lid: u32, i: u32, n0: u32, k0: u32) -> RawJob {
    let job = lid + THREADS * i;
    let n = n0 + job / (BK / STAGE_JOB);
    if n >= p.n {
        return RawJob();
    }
    return stage_raw(n * p.k + k0 + STAGE_JOB * (job % (BK / STAGE_JOB)));
}

fn put_x(lid: u32, i: u32, buf: u32, v: vec4<u32>) {
    let job = lid + THREADS * i;
    let o = (buf * XS + (job / (BK / 8u)) * LD + 8u * (job % (BK / 8u))) / 4u;
    xs[o] = to_f16x4(v.x, v.y, false);
    xs[o + 1u] = to_f16x4(v.z, v.w, false);
}

fn put_w(lid: u32, i: u32, buf: u32, n0: u32, k0: u32, r: RawJob) {
    let job = lid + THREADS * i;
    let n = job / (BK / STAGE_JOB);
    let k = STAGE_JOB * (job % (BK / STAGE_JOB));
    let o = (buf * WS + n * LD + k) / 4u;
    let v = dec_job((n0 + n) * p.k + k0 + k, r);
    for (var j = 0u; j < STAGE_JOB / 4u; j++) {
        ws[o + j] = v[j];
    }
}

// Writes 8 results of token t from column col on (bounds-checked; pairs stay whole: N even
// for packed outputs), or with SPLIT > 1 split z's f32 partial sums of them.
fn store8(t: u32, col: u32, a: vec4<f32>, b: vec4<f32>, z: u32) {
    if t >= p.t {
        return;
    }
    if SPLIT > 1u {
        let o = (z * p.t + t) * p.n + col;
        for (var i = 0u; i < 8u; i++) {
            if col + i < p.n {
                splits[o + i] = select(b[i % 4u], a[i % 4u], i < 4u);
            }
        }
        return;
    }
    let o = t * p.out_stride + p.out_offset + col;
    if col < p.n {
        store4(o, a * code_scale4(t, col), col, p.n);
    }
    if col + 4u < p.n {
        store4(o + 4u, b * code_scale4(t, col + 4u), col + 4u, p.n);
    }
}

// Sends accumulator tile (tokens t, columns col, 16 x 16) out through this subgroup's `cs` slot:
// lane l writes row l / 2, columns 8 (l % 2)...
fn emit(c: coop_mat16x16<f32, C>, sg: u32, lane: u32, t: u32, col: u32, z: u32) {
    coopStoreT(c, &cs[sg * 256u], 16u);
    workgroupBarrier();
    let r = lane / 2u;
    let h = 8u * (lane % 2u);
    let o = sg * 256u + r * 16u + h;
    store8(t + r, col + h, vec4<f32>(cs[o], cs[o + 1u], cs[o + 2u], cs[o + 3u]),
        vec4<f32>(cs[o + 4u], cs[o + 5u], cs[o + 6u], cs[o + 7u]), z);
    workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let n0 = wid.x * BN;
    let t0 = wid.y * BM;
    let sm = 32u * (sg % (BM / 32u)); // this subgroup's tokens within the tile
    let sn = 64u * (sg / (BM / 32u)); // and columns
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;

    var xr: array<vec4<u32>, 4>;
    var wr: array<RawJob, 8>;
    // this workgroup's stages: split wid.z of them (all with SPLIT = 1)
    let per = (p.k / BK + SPLIT - 1u) / SPLIT;
    let s0 = wid.z * per;
    let stages = min(s0 + per, p.k / BK);
    for (var i = 0u; i < X_JOBS; i++) {
        put_x(lid, i, 0u, load_x(lid, i, t0, s0 * BK));
    }
    for (var i = 0u; i < W_JOBS; i++) {
        put_w(lid, i, 0u, n0, s0 * BK, load_w(lid, i, n0, s0 * BK));
    }
    workgroupBarrier();
    for (var s = s0; s < stages; s++) {
        let cur = (s - s0) % NBUF;
        let more = s + 1u < stages;
        // the next stage's loads go out first (registers), then this stage's multiply-adds
        if more {
            let k1 = (s + 1u) * BK;
            for (var i = 0u; i < X_JOBS; i++) {
                xr[i] = load_x(lid, i, t0, k1);
            }
            for (var i = 0u; i < W_JOBS; i++) {
                wr[i] = load_w(lid, i, n0, k1);
            }
        }
        for (var kk = 0u; kk < BK; kk += 16u) {
            let xo = cur * XS + sm * LD + kk;
            let wo = cur * WS + sn * LD + kk;
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[xo / 4u], LD / 4u);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xo + 16u * LD) / 4u], LD / 4u);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[wo / 4u], LD / 4u);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wo + 16u * LD) / 4u], LD / 4u);
            let b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wo + 32u * LD) / 4u], LD / 4u);
            let b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wo + 48u * LD) / 4u], LD / 4u);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
        }
        if more {
            if NBUF == 1u {
                workgroupBarrier(); // every subgroup is done with the one buffer
            }
            let next = (s + 1u - s0) % NBUF;
            for (var i = 0u; i < X_JOBS; i++) {
                put_x(lid, i, next, xr[i]);
            }
            for (var i = 0u; i < W_JOBS; i++) {
                put_w(lid, i, next, n0, (s + 1u) * BK, wr[i]);
            }
        }
        workgroupBarrier();
    }
    let t = t0 + sm;
    let col = n0 + sn;
    emit(c00, sg, lane, t, col, wid.z);
    emit(c01, sg, lane, t, col + 16u, wid.z);
    emit(c02, sg, lane, t, col + 32u, wid.z);
    emit(c03, sg, lane, t, col + 48u, wid.z);
    emit(c10, sg, lane, t + 16u, col, wid.z);
    emit(c11, sg, lane, t + 16u, col + 16u, wid.z);
    emit(c12, sg, lane, t + 16u, col + 32u, wid.z);
    emit(c13, sg, lane, t + 16u, col + 48u, wid.z);
}
