// dequant_f16.wgsl — rows of a block-format weight decoded to f16 (clamped to f16's range, as
// matmul_gemm_coop stages them), for long prompts: the prompt GEMM (matrix-core or portable)
// then reads f16 tiles, each weight decoded once here instead of for every token tile (and
// inside the GEMM's latency-bound stages).
//   W   (N, K)  this chunk's rows in W_DTYPE, a block format (weights.wgsl)
//   out (D + R, K)  f16 pairs: rows row0 .. row0 + R of W into out's rows D .. D + R (D = dst_row,
//                   so several weights may be decoded one after another)
// One thread per 8 weights of weights.wgsl's staging jobs (stage_raw, stage_scale, stage_dec, as
// the matrix-core kernels stage them); grid folded into y past 65535 workgroups.

struct Params {
    k: u32,     // elements per row (K % 32 == 0)
    rows: u32,  // R
    row0: u32,  // first row decoded
    d_off: u32, // word offset of the scales in W
    m_off: u32, // word offset of the minimums in W
    dst_row: u32, // D: the first row of out written
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>>; // (D + R, K/8)
// @binding(2) w: (N, K) in W_DTYPE, declared in weights.wgsl

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u; // this thread's 8 weights: rows * K / 8 of them
    if i >= p.rows * (p.k / 8u) {
        return;
    }
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    // the staging job holding them (a K-quant's 32 weights: its four threads share its loads
    // through the cache, and adjacent threads store adjacent 16 bytes)
    let e = p.row0 * p.k + 8u * i;
    let job = e - e % STAGE_JOB;
    let r = stage_raw(job);
    out[p.dst_row * (p.k / 8u) + i] = stage_dec(r, stage_scale(r, job), job, (e % STAGE_JOB) / 8u);
}
