//! Every kernel against the CPU reference, on fresh random data, with poisoned outputs, on both
//! activation paths (f16 and packed bf16) and every weight dtype.

mod common;

use common::*;
use inferno_llama::cpu;
use inferno_llama::gpu::weight::Weight;
use inferno_llama::graph::Graph;
use inferno_llama::model::gguf::GgmlType;
use inferno_llama::ops::{
    argmax::{partial_bytes, Argmax, NON_FINITE},
    attention::{part_bytes, splits_for, Attention, AttentionIo, AttentionShape},
    dequant::Dequant,
    embedding::Embedding,
    matmul::{Matmul, MatmulOut, DEQUANT_TOKENS},
    rms_norm::RmsNorm,
    rope::{inv_freqs, Rope, RopeDst, RopeEpilogue, RopeScaling, RopeTable},
    split_sum::SplitSum,
    swiglu::Swiglu,
    MatmulDst, OutCols,
};
use inferno_llama::{ActDtype, GpuContext, GpuOptions, WeightDtype};

const WDTYPES: [WeightDtype; 3] = [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16];

/// `v` as the matrix-core kernels stage it: rounded to f16, clamped to f16's range.
fn f16_round(v: f32) -> f32 {
    half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_f32()
}

/// Random weight values already rounded to `dtype`, and the uploaded weight. GGUF types the
/// engine only reads ([`WeightDtype::Stored`]) are random blocks whose f16 scale fields are set to
/// sane values (about `scale` / 1024 in size, either sign for d: with random sub-block scales and
/// codes the weights then stay around `scale`, and the outputs inside f16's range — larger ones
/// saturate on the GPU by design, which the CPU reference does not model).
fn rand_weight(
    c: &GpuContext,
    rng: &mut rand::rngs::StdRng,
    dtype: WeightDtype,
    rows: usize,
    cols: usize,
    scale: f32,
) -> (Vec<f32>, Weight) {
    let bytes = match dtype {
        WeightDtype::Stored(ty) => {
            use rand::Rng;
            let mut b: Vec<u8> = (0..dtype.row_bytes(cols) * rows).map(|_| rng.random()).collect();
            let size = ty.block().1;
            // ternary codes are -1/0/1: their scale is the weights' size
            let unit = if matches!(ty, GgmlType::Tq1_0 | GgmlType::Tq2_0) { scale } else { scale / 1024.0 };
            let log2 = scale.log2().round() as i32;
            for blk in b.chunks_exact_mut(size) {
                for (i, &o) in ty.f16_scale_offsets().iter().enumerate() {
                    let sign = if i == 0 && rng.random::<bool>() { -1.0 } else { 1.0 };
                    let v = sign * unit * rng.random_range(0.2..1.0f32);
                    blk[o..o + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
                // FP4 values reach 6 (doubled: 12): scales of about scale / 8
                if ty == GgmlType::Mxfp4 {
                    blk[0] = (124 + log2 + rng.random_range(0..3)) as u8; // half of 2^(e - 127)
                }
                if ty == GgmlType::Nvfp4 {
                    for s in &mut blk[..4] {
                        let ex = (5 + log2 + rng.random_range(0..3)).clamp(1, 14) as u8;
                        *s = ex << 3 | rng.random_range(0..8u8) | rng.random::<u8>() & 0x80;
                        // bit 7 is unused
                    }
                }
                if ty == GgmlType::Iq1M {
                    // its f16 d is spread over the top nibbles of the four u16 at byte 48
                    let d = half::f16::from_f32(scale / 128.0 * rng.random_range(0.2..1.0f32));
                    inferno_llama::model::gguf::set_iq1m_d(blk, d);
                }
            }
            b
        }
        _ => dtype.encode(&rand_vec(rng, rows * cols, scale)),
    };
    let w = Weight::upload(c, "test.weight", dtype, rows, cols, &bytes).unwrap();
    (dtype.decode(&bytes), w)
}

fn tok_buf(c: &GpuContext, tok: &[(usize, usize)]) -> wgpu::Buffer {
    let flat: Vec<u32> = tok.iter().flat_map(|&(s, p)| [s as u32, p as u32]).collect();
    c.storage_init("tok", bytemuck::cast_slice(&flat)).unwrap()
}

fn check_matmul(c: &GpuContext, path: ActDtype, dtype: WeightDtype, t: usize, k: usize, n: usize, out: MatmulOut) {
    let mut rng = rng("matmul");
    let x = round_act(path, &rand_vec(&mut rng, t * k, 1.0));
    let (mut wv, w) = rand_weight(c, &mut rng, dtype, n, k, 0.5);
    let rounded = Matmul::new(c).rounds_weights_to_f16(t, dtype, k);
    if rounded {
        // the matrix-core GEMMs stage weights as f16 (block formats decoded, then rounded), and a
        // long prompt's block weights are decoded to f16 before any GEMM
        wv = wv.iter().map(|&v| f16_round(v)).collect();
    }
    let want = cpu::matmul(&x, &wv, t, k, n);
    let xb = upload_act(c, &x);
    let what = format!("matmul {path:?} {dtype:?} t={t} k={k} n={n} {out:?} chunks={}", w.chunks.len());
    // (a block weight decoded in f32 on the GPU may round to the other f16 neighbour than the CPU's)
    let tol = if rounded && dtype.is_block() { 1e-4 } else { 1e-5 };
    check_out(c, path, &what, out, [t, n], &want, tol, &mut rng, |g, dst| {
        Matmul::new(c).record_cols(g, &xb, &w, dst, t).unwrap()
    });
}

/// Records an output of kind `out` (`t` tokens, `n` columns) with `record` and checks it against
/// `want`: packed activations into columns [4, 4 + n) of a (t, n + 6) output whose other columns
/// stay poisoned; f32 into a poisoned (t, n); f32 added into a random residual stream (t, n). f32
/// results within `f32_tol`.
#[allow(clippy::too_many_arguments)]
fn check_out(
    c: &GpuContext,
    path: ActDtype,
    what: &str,
    out: MatmulOut,
    [t, n]: [usize; 2],
    want: &[f32],
    f32_tol: f32,
    rng: &mut rand::rngs::StdRng,
    record: impl FnOnce(&mut Graph, MatmulDst),
) {
    let mut g = Graph::new();
    match out {
        MatmulOut::Act => {
            let ob = poisoned(c, t * (n + 6) * 2);
            record(&mut g, MatmulDst::new(&ob, OutCols { first: 4, total: n + 6 }, out));
            g.run(c);
            let got = read_act(c, &ob, t * (n + 6));
            let mine: Vec<f32> = got.chunks(n + 6).flat_map(|r| r[4..4 + n].to_vec()).collect();
            assert_close(what, &mine, want, act_tol(path));
            assert!(got.chunks(n + 6).all(|r| r[..4].iter().chain(&r[4 + n..]).all(|v| v.is_nan())), "{what}");
        }
        MatmulOut::F32 => {
            let ob = poisoned(c, t * n * 4);
            record(&mut g, MatmulDst::all(&ob, n, out));
            g.run(c);
            assert_close(what, &read_f32(c, &ob, t * n), want, f32_tol);
        }
        MatmulOut::AddF32 => {
            // the residual stream: out += result
            let residual = rand_vec(rng, t * n, 3.0);
            let ob = upload_f32(c, &residual);
            record(&mut g, MatmulDst::all(&ob, n, out));
            g.run(c);
            let want: Vec<f32> = want.iter().zip(&residual).map(|(a, b)| a + b).collect();
            assert_close(what, &read_f32(c, &ob, t * n), &want, f32_tol);
        }
    }
}

#[test]
fn matmul_all_dtypes_both_paths() {
    // (tokens, K, N): decode and prefill sizes, none a multiple of the tile sizes.
    // (65, 64, 16386) takes the 128-column GEMM tiles (>= 256 workgroups), the others 64.
    let shapes = [
        (1, 576, 1536),
        (1, 64, 10),
        (2, 130, 66),
        (4, 96, 50),
        (7, 576, 96),
        (33, 96, 130),
        (16, 576, 96),   // two token groups of the GEMV
        (24, 1056, 70),  // skinny matrix-core tiles: K in 5 stages of 256 (the last partial), N tail
        (8, 4096, 70),   // skinny tiles with K split 4 ways (3 column tiles, 16 stages)
        (24, 2600, 66),  // K split 2 ways: stages 0..6 and 6..11 (the last partial)
        (48, 1100, 130), // 64-column tiles (stages of 128), K split 2 ways
        (64, 96, 66),
        (130, 64, 200),
        (65, 64, 16386),
        (300, 96, 130), // 128-token matrix-core tiles where the adapter has them
        (260, 576, 66), // the same with K in 9 stages of 64 (or 18 of 32)
        (130, 576, 66), // 64-token matrix-core tiles, K in 9 stages of 64
        // K split across the matrix-core GEMM's workgroups (8 tiles): 33 stages of 64 in 7
        // splits of 5, the last of 3 (8 would leave one empty); block weights on the dequantized
        // path the same
        (200, 2112, 130),
    ];
    for path in PATHS {
        let c = ctx(path);
        for dtype in WDTYPES {
            for &(t, k, n) in &shapes {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::Act);
            }
            // f32 logits with an odd vocabulary
            for &(t, k, n) in &[(1, 64, 32003), (9, 64, 1001), (40, 64, 1001), (9, 2080, 1001), (100, 640, 1001)] {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::F32);
            }
            // accumulated into the f32 residual stream, decode and prefill
            for &(t, k, n) in &[
                (1, 576, 130),
                (5, 576, 130),
                (12, 288, 34),
                (12, 2100, 34),
                (33, 96, 66),
                (257, 64, 66),
                (140, 1024, 66),
            ] {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::AddF32);
            }
        }
    }
}

#[test]
fn split_sum_every_output_kind_both_paths() {
    // (splits, tokens, N): odd N (the last pair half outside), one split
    for path in PATHS {
        let c = ctx(path);
        for &(s, t, n) in &[(4, 8, 70), (3, 5, 33), (1, 2, 6), (7, 1, 1002)] {
            let mut rng = rng("split_sum");
            let parts = rand_vec(&mut rng, s * t * n, 1.0);
            let sums = upload_f32(c, &parts);
            let want: Vec<f32> =
                (0..t * n).map(|i| (0..s).map(|z| parts[z * t * n + i]).fold(0.0, |a, b| a + b)).collect();
            for kind in [MatmulOut::Act, MatmulOut::F32, MatmulOut::AddF32] {
                if kind == MatmulOut::Act && n % 2 == 1 {
                    continue; // packed outputs need N even
                }
                let what = format!("split sum {path:?} s={s} t={t} n={n} {kind:?}");
                check_out(c, path, &what, kind, [t, n], &want, 1e-6, &mut rng, |g, dst| {
                    SplitSum::new(c).record(g, &sums, dst, [s, t, n], None).unwrap()
                });
            }
        }
    }
}

#[test]
fn matmul_every_bf16_value_both_paths() {
    // Every finite bf16 bit pattern as a weight, read back through x = identity in a prompt-sized
    // GEMM. The portable GEMM computes in f32 (exact); the matrix-core GEMM (where the adapter has
    // it) converts bf16 to f16: exact in f16's normal range, rounded to nearest even f16
    // subnormals below 2^-14, clamped to +-65504 above.
    let (k, n) = (64, 1024);
    let bits: Vec<u16> = (0..=u16::MAX).map(|b| if (b & 0x7fff) >= 0x7f80 { 0 } else { b }).collect();
    let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
    let x: Vec<f32> = (0..k * k).map(|i| if i / k == i % k { 1.0 } else { 0.0 }).collect();
    for path in PATHS {
        let c = ctx(path);
        let w = Weight::upload(c, "test.weight", WeightDtype::Bf16, n, k, bytemuck::cast_slice(&bits)).unwrap();
        let ob = poisoned(c, k * n * 4);
        let mut g = Graph::new();
        Matmul::new(c).record(&mut g, &upload_act(c, &x), &w, &ob, MatmulOut::F32, k).unwrap();
        g.run(c);
        let got = read_f32(c, &ob, k * n);
        for (i, &v) in values.iter().enumerate() {
            let (row, col) = (i / k, i % k);
            let want = if c.coopmat() { f16_round(v) } else { v };
            let g = got[col * n + row];
            // f32 subnormal weights may be flushed to zero (WGSL allows it; NVIDIA does)
            let flushed = want.is_subnormal() && g == 0.0;
            assert!(
                g == want || flushed,
                "{path:?} coopmat={} bf16 {:#06x} = {v:e}: got {g:e}, want {want:e}",
                c.coopmat(),
                bits[i]
            );
        }
    }
}

const BLOCKS: [WeightDtype; 3] = [WeightDtype::Q8_0, WeightDtype::Q4_0, WeightDtype::Q4_1];

/// GGUF K-quants (super-blocks of 256), kept quantized on the GPU.
const KQUANTS: [WeightDtype; 2] = [WeightDtype::Q4K, WeightDtype::Q6K];

/// The GGUF types read as stored (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS ...).
fn stored() -> Vec<WeightDtype> {
    inferno_llama::model::gguf::STORED_TYPES.iter().map(|&t| WeightDtype::Stored(t)).collect()
}

#[test]
fn matmul_stored_gguf_types_both_paths() {
    // the reference is the CPU dequantizer (equal to gguf-py's, see gguf.rs tests)
    for path in PATHS {
        let c = ctx(path);
        let small = small_binding_ctx(path);
        for dtype in stored() {
            let k = dtype.block_len();
            // decode (GEMV, with two steps in flight per lane at 4864) and prompt (GEMM) sizes
            for &(t, k, n) in
                &[(1, 2 * k, 130), (2, k, 66), (1, 4864usize.div_ceil(k) * k, 36), (33, k, 130), (70, 2 * k, 200)]
            {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::Act);
            }
            check_matmul(c, path, dtype, 2, k, 1001, MatmulOut::F32);
            check_matmul(c, path, dtype, 1, 2 * k, 66, MatmulOut::AddF32);
            check_matmul(&small, path, dtype, 1, k, 130, MatmulOut::Act);
            check_matmul(&small, path, dtype, 37, k, 131, MatmulOut::F32);
        }
    }
}

#[test]
fn matmul_k_quants_both_paths() {
    // the reference is the CPU dequantizer (equal to gguf-py's, see gguf.rs tests)
    for path in PATHS {
        let c = ctx(path);
        for dtype in KQUANTS {
            // (1, 4864, 36): more than 2 x 64 blocks of 32 per row, so the decode GEMV's lanes take
            // two steps at a time, then one
            for &(t, k, n) in &[
                (1, 512, 130),
                (2, 256, 66),
                (4, 768, 36),
                (1, 4864, 36),
                (17, 1280, 66),
                (33, 256, 130),
                (70, 512, 200),
            ] {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::Act);
            }
            check_matmul(c, path, dtype, 2, 256, 1001, MatmulOut::F32);
            // a head's 16-row block into an odd vocabulary, a prompt's residual add
            check_matmul(c, path, dtype, 16, 256, 300, MatmulOut::F32);
            check_matmul(c, path, dtype, 1, 512, 66, MatmulOut::AddF32);
            check_matmul(c, path, dtype, 27, 512, 256, MatmulOut::AddF32);
        }
        let small = small_binding_ctx(path);
        for dtype in KQUANTS {
            check_matmul(&small, path, dtype, 1, 256, 130, MatmulOut::Act);
            check_matmul(&small, path, dtype, 37, 256, 131, MatmulOut::F32);
        }
    }
}

#[test]
fn matmul_gguf_blocks_both_paths() {
    // weights stay in GGUF blocks on the GPU; the reference is the ggml dequantization
    for path in PATHS {
        let c = ctx(path);
        for dtype in BLOCKS {
            // (70, 1056, 70): a prompt whose tiles the matrix-core GEMM decodes as it stages them,
            // K in 33 stages of 32 split 7 ways
            for &(t, k, n) in
                &[(1, 576, 1536), (1, 96, 10), (3, 64, 66), (7, 576, 96), (20, 1056, 70), (33, 96, 130), (70, 1056, 70)]
            {
                check_matmul(c, path, dtype, t, k, n, MatmulOut::Act);
            }
            check_matmul(c, path, dtype, 2, 64, 1001, MatmulOut::F32);
        }
        let small = small_binding_ctx(path);
        for dtype in BLOCKS {
            check_matmul(&small, path, dtype, 1, 96, 130, MatmulOut::Act);
            check_matmul(&small, path, dtype, 37, 96, 131, MatmulOut::F32);
        }
    }
}

#[test]
fn matmul_long_prompts_of_block_weights() {
    // from DEQUANT_TOKENS tokens weight rows are decoded to f16 first, in pieces that fit the
    // context's scratch: one piece, then three under a 96 KiB binding limit
    let t = DEQUANT_TOKENS + 4;
    for path in PATHS {
        let pieces = binding_ctx(path, 96 << 10);
        for c in [ctx(path), &pieces] {
            let some_stored = [GgmlType::Q2K, GgmlType::Q5K, GgmlType::Iq4Xs].map(WeightDtype::Stored);
            for dtype in BLOCKS.into_iter().chain(KQUANTS).chain(some_stored) {
                check_matmul(c, path, dtype, t, 256, 300, MatmulOut::Act);
            }
            check_matmul(c, path, WeightDtype::Q4K, t, 512, 130, MatmulOut::AddF32);
            // weights of several block formats side by side (Q4_K_M's q/k beside a Q6_K v):
            // decoded into the scratch one after another, the 128-row pieces of the small
            // binding crossing from one weight to the next
            check_parts(c, path, &[(WeightDtype::Q4K, 200), (WeightDtype::Q6K, 130), (WeightDtype::Q8_0, 66)], t, 256);
        }
    }
}

/// `x @ [W_0; W_1 ...]^T` of random weights of these (dtype, rows) side by side, through
/// `Matmul::record_parts`, against the CPU.
fn check_parts(c: &GpuContext, path: ActDtype, parts: &[(WeightDtype, usize)], t: usize, k: usize) {
    let mut rng = rng("matmul parts");
    let x = round_act(path, &rand_vec(&mut rng, t * k, 1.0));
    let (mut all, mut weights) = (vec![], vec![]);
    for &(dtype, n) in parts {
        let (mut wv, w) = rand_weight(c, &mut rng, dtype, n, k, 0.5);
        if Matmul::new(c).rounds_weights_to_f16(t, dtype, k) {
            wv = wv.iter().map(|&v| f16_round(v)).collect();
        }
        all.extend(wv);
        weights.push(w);
    }
    let n: usize = parts.iter().map(|p| p.1).sum();
    let want = cpu::matmul(&x, &all, t, k, n);
    let (xb, ob) = (upload_act(c, &x), poisoned(c, t * n * 2));
    let mut g = Graph::new();
    Matmul::new(c).record_parts(&mut g, &xb, &weights, &ob, MatmulOut::Act, t).unwrap();
    g.run(c);
    assert_close(
        &format!("matmul parts {path:?} {parts:?} t={t} k={k}"),
        &read_act(c, &ob, t * n),
        &want,
        act_tol(path),
    );
}

#[test]
fn dequant_f16_every_block_dtype() {
    // rows 2..7 of 9 into rows 3..8 of the output, as f16 within rounding of the CPU
    // dequantization; the rows before and after stay poisoned
    let mut rng = rng("dequant_f16");
    for path in PATHS {
        let c = ctx(path);
        for dtype in BLOCKS.into_iter().chain(KQUANTS).chain(stored()) {
            let k = 2 * dtype.block_len().max(32);
            let (want, w) = rand_weight(c, &mut rng, dtype, 9, k, 0.5);
            let (r0, rows, dst) = (2, 5, 3);
            let bytes = (dst + rows) * k * 2 + 64;
            let out = poisoned(c, bytes);
            let mut g = Graph::new();
            Dequant::new(c).record(&mut g, &w, &w.chunks[0], r0..r0 + rows, &out, dst).unwrap();
            g.run(c);
            let raw = c.read_blocking(&out, bytes as u64).unwrap();
            assert!(raw[..dst * k * 2].iter().all(|&b| b == 0xff), "{dtype:?}: wrote before its rows");
            let raw = &raw[dst * k * 2..];
            let got: Vec<f32> =
                raw[..rows * k * 2].chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
            for (i, (&g, &v)) in got.iter().zip(&want[r0 * k..(r0 + rows) * k]).enumerate() {
                let v = f16_round(v);
                assert!((g - v).abs() <= v.abs() / 1024.0 + 1e-7, "{dtype:?} element {i}: got {g}, want {v}");
            }
            assert!(raw[rows * k * 2..].iter().all(|&b| b == 0xff), "{dtype:?}: wrote past its rows");
        }
    }
}

#[test]
fn matmul_chunked_weights() {
    for path in PATHS {
        let c = small_binding_ctx(path);
        for dtype in WDTYPES {
            for &(t, k, n) in &[(1, 96, 130), (1, 96, 131), (37, 96, 130), (37, 96, 131)] {
                let out = if n % 2 == 0 { MatmulOut::Act } else { MatmulOut::F32 };
                check_matmul(&c, path, dtype, t, k, n, out);
            }
        }
    }
}

#[test]
fn rms_norm_all_dtypes_both_paths() {
    for path in PATHS {
        let c = ctx(path);
        for dtype in WDTYPES {
            for &(t, cols) in &[(1, 576), (7, 64), (33, 130), (3, 4096)] {
                let mut rng = rng("rms_norm");
                let x = rand_vec(&mut rng, t * cols, 3.0); // the f32 residual stream
                let (wv, w) = rand_weight(c, &mut rng, dtype, 1, cols, 1.0);
                let want = cpu::rms_norm(&x, &wv, cols, 1e-5);
                let (xb, ob) = (upload_f32(c, &x), poisoned(c, t * cols * 2));
                let mut g = Graph::new();
                RmsNorm::new(c).record(&mut g, &xb, &w, &ob, t, 1e-5).unwrap();
                g.run(c);
                assert_close(
                    &format!("rms_norm {path:?} {dtype:?} t={t} c={cols}"),
                    &read_act(c, &ob, t * cols),
                    &want,
                    act_tol(path),
                );
            }
        }
    }
}

#[test]
fn many_rows_fold_into_y() {
    // 70,000 rows: more than 65,535 workgroups in x.
    let path = ActDtype::Bf16;
    let c = ctx(path);
    let mut rng = rng("fold");
    let (t, cols) = (70_000, 2);
    let x = rand_vec(&mut rng, t * cols, 1.0);
    let (wv, w) = rand_weight(c, &mut rng, WeightDtype::F32, 1, cols, 1.0);
    let (xb, ob) = (upload_f32(c, &x), poisoned(c, t * cols * 2));
    let mut g = Graph::new();
    RmsNorm::new(c).record(&mut g, &xb, &w, &ob, t, 1e-5).unwrap();
    g.run(c);
    assert_close("rms_norm folded", &read_act(c, &ob, t * cols), &cpu::rms_norm(&x, &wv, cols, 1e-5), act_tol(path));

    let logits = rand_vec(&mut rng, t * 3, 1.0);
    let t = 60_000; // argmax rows (at most 65,535)
    let lb = c.storage_init("logits", bytemuck::cast_slice(&logits[..t * 3])).unwrap();
    let (pb, ob) = (poisoned(c, partial_bytes(3, t) as usize), poisoned(c, t * 4));
    let mut g = Graph::new();
    Argmax::new(c).record(&mut g, &lb, &pb, &ob, 3, t).unwrap();
    g.run(c);
    let got: Vec<u32> = bytemuck::cast_slice(&c.read_blocking(&ob, (t * 4) as u64).unwrap()).to_vec();
    assert_eq!(got, cpu::argmax(&logits[..t * 3], 3), "argmax of many rows");
}

fn scalings() -> Vec<(f32, RopeScaling)> {
    vec![
        (10_000.0, RopeScaling::None),
        (
            500_000.0,
            RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            },
        ),
        (10_000.0, RopeScaling::Linear { factor: 4.0 }),
    ]
}

#[test]
fn rope_qkv_into_cache_scalings_both_paths() {
    for path in PATHS {
        let c = ctx(path);
        for (theta, scaling) in scalings() {
            // (heads, kv_heads, D, tokens, first position)
            for &(heads, kvh, d, t, pos0) in
                &[(9, 3, 64, 7, 1000), (3, 1, 96, 33, 0), (2, 2, 128, 1, 5000), (1, 1, 6, 5, 17)]
            {
                let mut rng = rng("rope");
                let (slots, ctx_len) = (2, pos0 + t + 1);
                let table = RopeTable::new(c, d, theta, &scaling, ctx_len).unwrap();
                let (qd, kvd) = (heads * d, kvh * d);
                let qkv = round_act(path, &rand_vec(&mut rng, t * (qd + 2 * kvd), 2.0));
                let part = |from: usize, n: usize| -> Vec<f32> {
                    qkv.chunks(qd + 2 * kvd).flat_map(|row| row[from..from + n].to_vec()).collect()
                };
                let (q, k, v) = (part(0, qd), part(qd, kvd), part(qd + kvd, kvd));
                // tokens alternate between the two sequence slots
                let tok: Vec<(usize, usize)> = (0..t).map(|i| (i % 2, pos0 + i)).collect();
                let positions: Vec<usize> = tok.iter().map(|p| p.1).collect();
                let inv = inv_freqs(d, theta, &scaling);
                let want_q = cpu::rope(&q, &positions, heads, d, &inv);
                let k_rot = cpu::rope(&k, &positions, kvh, d, &inv);
                let (mut kc, kb) = rand_cache(c, path, &mut rng, slots * ctx_len * kvd);
                let (mut vc, vb) = rand_cache(c, path, &mut rng, slots * ctx_len * kvd);
                for (i, &(s, p)) in tok.iter().enumerate() {
                    kc[(s * ctx_len + p) * kvd..][..kvd].copy_from_slice(&k_rot[i * kvd..][..kvd]);
                    vc[(s * ctx_len + p) * kvd..][..kvd].copy_from_slice(&v[i * kvd..][..kvd]);
                }
                let (xb, tb, qb) = (upload_act(c, &qkv), tok_buf(c, &tok), poisoned(c, t * qd * 2));
                let mut g = Graph::new();
                let dst = RopeDst { q: &qb, k_cache: &kb, v_cache: &vb, ctx_len };
                Rope::new(c).record(&mut g, &xb, &tb, &table, dst, heads, kvh, t).unwrap();
                g.run(c);
                let what = format!("rope {path:?} {scaling:?} H={heads} Hkv={kvh} d={d} t={t} pos0={pos0}");
                assert_close(&format!("{what} q"), &read_act(c, &qb, t * qd), &want_q, act_tol(path));
                assert_close(&format!("{what} k cache"), &read_act(c, &kb, kc.len()), &kc, act_tol(path));
                assert_close(&format!("{what} v cache"), &read_act(c, &vb, vc.len()), &vc, 0.0);
            }
        }
    }
}

#[test]
fn llama3_inv_freqs_match_transformers() {
    // transformers 5.x _compute_llama3_parameters for head_dim 64, theta 500000, factor 32:
    // the first (high-frequency) entries are unchanged, the last ones divided by the factor.
    let s = RopeScaling::Llama3 {
        factor: 32.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let scaled = inv_freqs(64, 500_000.0, &s);
    let plain = inv_freqs(64, 500_000.0, &RopeScaling::None);
    assert_eq!(scaled[0], 1.0);
    assert_eq!(scaled[1], plain[1]);
    assert!((scaled[31] - plain[31] / 32.0).abs() < 1e-12);
    // a medium frequency is smoothed strictly between the two
    let mid = (0..32).find(|&i| scaled[i] != plain[i] && (scaled[i] - plain[i] / 32.0).abs() > 1e-12).unwrap();
    assert!(scaled[mid] < plain[mid] && scaled[mid] > plain[mid] / 32.0);
}

/// Fills a (slots, ctx, kv_heads, d) cache with random values and returns (values, buffer).
fn rand_cache(c: &GpuContext, path: ActDtype, rng: &mut rand::rngs::StdRng, n: usize) -> (Vec<f32>, wgpu::Buffer) {
    let v = round_act(path, &rand_vec(rng, n, 1.0));
    let b = upload_act(c, &v);
    (v, b)
}

#[test]
fn attention_gqa_causal_both_paths() {
    // (heads, kv_heads, head_dim, tokens as (slot, pos) list)
    let prefill = |slot: usize, from: usize, n: usize| (from..from + n).map(move |p| (slot, p));
    type Case = (usize, usize, usize, Vec<(usize, usize)>);
    let cases: Vec<Case> = vec![
        (9, 3, 64, prefill(0, 0, 7).collect()),    // prompt at position 0
        (9, 3, 64, vec![(1, 129)]),                // decode at position 129, slot 1
        (4, 1, 96, prefill(0, 100, 33).collect()), // one KV head, prompt past 0
        (8, 8, 128, prefill(1, 0, 130).collect()), // MHA, 130 tokens
        (3, 1, 36, prefill(1, 40, 3).collect()),   // D/2 not a multiple of 4: scalar loads
        (2, 1, 256, vec![(0, 5), (1, 77)]),        // batch of two sequences, D = 256
        (6, 2, 80, prefill(0, 3, 2).chain(prefill(1, 60, 3)).collect()),
        (4, 2, 128, vec![(0, 1999), (1, 1030)]), // a long cache: more than 16 splits to merge
    ];
    for path in PATHS {
        let c = ctx(path);
        for (heads, kv_heads, d, tok) in &cases {
            let (heads, kv_heads, d) = (*heads, *kv_heads, *d);
            let mut rng = rng("attention");
            let long = tok.iter().any(|&(_, p)| p >= 700);
            let (slots, ctx_len) = (2, if long { 2100 } else { 700 });
            let t = tok.len();
            let q = round_act(path, &rand_vec(&mut rng, t * heads * d, 1.5));
            let (kc, kb) = rand_cache(c, path, &mut rng, slots * ctx_len * kv_heads * d);
            let (vc, vb) = rand_cache(c, path, &mut rng, slots * ctx_len * kv_heads * d);
            let want =
                cpu::attention(&q, &kc, &vc, tok, &AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len });
            let (qb, tb) = (upload_act(c, &q), tok_buf(c, tok));
            let shape = AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len };
            // without and with split-K (flash-decoding) over the whole cache, and split over
            // its first 128 positions only (as a session bounds a short sequence's step; tokens
            // past them: the last range reads on)
            for (split, keys) in [(false, ctx_len), (true, ctx_len), (true, 128)] {
                let ob = poisoned(c, t * heads * d * 2);
                let part = poisoned(c, part_bytes(t, shape) as usize);
                let mut g = Graph::new();
                let part = split.then_some(&part);
                let io = AttentionIo { q: &qb, tok: &tb, kcache: &kb, vcache: &vb, out: &ob, part, quant: None };
                assert!(!Attention::new(c).record_within(&mut g, io, shape, t, keys).unwrap());
                g.run(c);
                let splits = if split { splits_for(t, heads, keys) } else { 1 };
                let what = format!(
                    "attention {path:?} H={heads} Hkv={kv_heads} D={d} t={t} first={:?} splits={splits} keys={keys}",
                    tok[0]
                );
                let got = read_act(c, &ob, t * heads * d);
                assert_close(&what, &got, &want, act_tol(path));
                // the int8 GEMV's input straight from the combine: the output quantized per block
                // of 32 as quant_act would (its values summed in another order: d within a step
                // of the 16-bit values, a few codes one step off), `out` left alone
                use inferno_llama::ops::w8a8::QuantScratch;
                let qs = QuantScratch::new(c, t, heads * d).unwrap();
                let ob = poisoned(c, t * heads * d * 2);
                let mut g = Graph::new();
                let io = AttentionIo { out: &ob, quant: Some(&qs), ..io };
                let quantized = Attention::new(c).record_within(&mut g, io, shape, t, keys).unwrap();
                assert_eq!(quantized, splits > 1 && d % 32 == 0, "{what}: quantized");
                g.run(c);
                if quantized {
                    read_block_quant(c, &qs, &got, heads * d, 1e-2, &format!("{what} quantized"));
                    assert!(read_act(c, &ob, t * heads * d).iter().all(|v| v.is_nan()), "{what}: wrote out");
                }
            }
        }
    }
}

#[test]
fn decode_attention_does_not_depend_on_the_step() {
    // a decode token's attention is bit for bit the same alone or beside other sequences, however
    // many key ranges the step's longest sequence and its size give the split (while ranges stay
    // 64 keys: a token whose keys all lie in the first range gets the combine's acc * 1 / l, what
    // the kernel writes unsplit), so that int8 rounding downstream cannot turn a batch into other
    // tokens
    let (heads, kv_heads, d, ctx_len) = (9, 3, 64, 700);
    let shape = AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len };
    for path in PATHS {
        let c = ctx(path);
        let mut rng = rng("attention decode steps");
        let (_, kb) = rand_cache(c, path, &mut rng, 2 * ctx_len * kv_heads * d);
        let (_, vb) = rand_cache(c, path, &mut rng, 2 * ctx_len * kv_heads * d);
        let q = round_act(path, &rand_vec(&mut rng, 3 * heads * d, 1.5));
        // each token's output (row r of q) in a step of `tok` with `keys`
        let run = |tok: &[(usize, usize)], rows: &[usize], keys: usize| -> Vec<Vec<u32>> {
            let qs: Vec<f32> = rows.iter().flat_map(|&r| q[r * heads * d..(r + 1) * heads * d].to_vec()).collect();
            let (qb, tb) = (upload_act(c, &qs), tok_buf(c, tok));
            let t = tok.len();
            let ob = poisoned(c, t * heads * d * 2);
            let part = poisoned(c, part_bytes(t, shape) as usize);
            let io =
                AttentionIo { q: &qb, tok: &tb, kcache: &kb, vcache: &vb, out: &ob, part: Some(&part), quant: None };
            let mut g = Graph::new();
            Attention::new(c).record_within(&mut g, io, shape, t, keys).unwrap();
            g.run(c);
            read_act(c, &ob, t * heads * d).chunks(heads * d).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect()
        };
        let (a, b, e) = ((0, 40), (1, 100), (0, 7)); // (slot, position)
        let alone = [run(&[a], &[0], 64), run(&[b], &[1], 128), run(&[e], &[2], 64)];
        for keys in [128, 256, 700] {
            let step = run(&[a, b, e], &[0, 1, 2], keys);
            for (i, want) in alone.iter().enumerate() {
                assert!(step[i] == want[0], "{path:?}: token {i} in a step of 3 with {keys} keys differs from alone");
            }
        }
    }
}

/// (T, 2I) gate/up output in the fused weight's row order (alternating) or as `[gate | up]`.
#[test]
fn attention_prompt_both_paths() {
    // one sequence's prompt chunk: on matrix cores where the adapter has them, else the same as
    // `record`. q rows are padded to 64 with NaN (which must not leak into real rows); the caches
    // have PROMPT_PAD positions of zeros after the last slot (as the session's zero-initialised
    // padding: matrix-core tiles multiply masked keys' values by zero, so they must be finite).
    // (heads, kv_heads, head_dim, slot, first position, tokens, key growth): keys at position p
    // scaled by 1 + growth * (p / 64), so that each tile of 64 keys raises the rows' maxima
    // (the matrix-core kernel's online softmax then rescales its running sums)
    use inferno_llama::ops::attention::PROMPT_PAD;
    let cases = [
        (8, 2, 64, 1, 0, 100, 0.0),  // two token tiles, the second partial, slot 1
        (4, 4, 128, 0, 37, 64, 0.0), // past position 0, one full tile
        (6, 1, 48, 1, 640, 60, 0.0), // D = 48, keys to the end of the cache's last slot
        (9, 3, 64, 0, 5, 17, 0.0),
        (4, 2, 64, 0, 0, 230, 6.0), // maxima rising tile by tile
        (2, 1, 36, 0, 0, 20, 0.0),  // D not a multiple of 16: the scalar kernel
    ];
    for path in PATHS {
        let c = ctx(path);
        for &(heads, kv_heads, d, slot, from, t, growth) in &cases {
            let mut rng = rng("attention_prompt");
            let (slots, ctx_len) = (2, 700);
            let tok: Vec<(usize, usize)> = (from..from + t).map(|p| (slot, p)).collect();
            let q = round_act(path, &rand_vec(&mut rng, t * heads * d, 1.5));
            let n = slots * ctx_len * kv_heads * d;
            let mut kc = rand_vec(&mut rng, n, 1.0);
            for (i, k) in kc.iter_mut().enumerate() {
                *k *= 1.0 + growth * ((i / (kv_heads * d)) % ctx_len / 64) as f32;
            }
            let (kc, vc) = (round_act(path, &kc), round_act(path, &rand_vec(&mut rng, n, 1.0)));
            if growth > 0.0 {
                // the case's premise: the last token's row (head 0) has a key past the first
                // tile whose scaled score passes the first tile's maximum by more than the
                // kernel's margin of 8 (attention_coop.wgsl's TAU), so a rescale happens
                let score = |p: usize| {
                    let key = &kc[(slot * ctx_len + p) * kv_heads * d..][..d];
                    key.iter().zip(&q[(t - 1) * heads * d..][..d]).map(|(k, q)| k * q).sum::<f32>() / (d as f32).sqrt()
                };
                let first = (0..64).map(score).fold(f32::MIN, f32::max);
                let later = (64..from + t).map(score).fold(f32::MIN, f32::max);
                assert!(later > first + 8.0, "rising maxima: {later} vs {first}");
            }
            let want =
                cpu::attention(&q, &kc, &vc, &tok, &AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len });
            let pad = vec![0.0; PROMPT_PAD * kv_heads * d];
            let kb = upload_act(c, &[kc.clone(), pad.clone()].concat());
            let vb = upload_act(c, &[vc.clone(), pad].concat());
            let qpad = vec![f32::NAN; (t.div_ceil(64) * 64 - t) * heads * d];
            let (qb, tb) = (upload_act(c, &[q.clone(), qpad].concat()), tok_buf(c, &tok));
            let shape = AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len };
            let ob = poisoned(c, t * heads * d * 2);
            let part = poisoned(c, part_bytes(t, shape) as usize);
            let mut g = Graph::new();
            let a = Attention::new(c);
            let io =
                AttentionIo { q: &qb, tok: &tb, kcache: &kb, vcache: &vb, out: &ob, part: Some(&part), quant: None };
            a.record_prompt(&mut g, io, shape, t, shape.ctx).unwrap();
            g.run(c);
            let what = format!(
                "prompt attention {path:?} H={heads} Hkv={kv_heads} D={d} t={t} from={from} matrix cores={}",
                a.prompt_on_matrix_cores(shape, t)
            );
            assert_close(&what, &read_act(c, &ob, t * heads * d), &want, act_tol(path));
        }
    }
}

fn gate_up_layout(gate: &[f32], up: &[f32], i: usize, interleaved: bool) -> Vec<f32> {
    gate.chunks(i)
        .zip(up.chunks(i))
        .flat_map(|(g, u)| {
            if interleaved {
                g.iter().zip(u).flat_map(|(a, b)| [*a, *b]).collect::<Vec<f32>>()
            } else {
                [g, u].concat()
            }
        })
        .collect()
}

#[test]
fn swiglu_both_layouts_both_paths() {
    for path in PATHS {
        let c = ctx(path);
        for (i, t) in [(2, 1), (576 * 7, 3), (1536 + 2, 33)] {
            for interleaved in [true, false] {
                let mut rng = rng("swiglu");
                let n = t * i;
                let gate = round_act(path, &rand_vec(&mut rng, n, 6.0));
                let up = round_act(path, &rand_vec(&mut rng, n, 2.0));
                let gu = upload_act(c, &gate_up_layout(&gate, &up, i, interleaved));
                let ob = poisoned(c, n * 2);
                let mut g = Graph::new();
                Swiglu::new(c).record(&mut g, &gu, &ob, i, t, interleaved).unwrap();
                g.run(c);
                let what = format!("swiglu {path:?} I={i} t={t} interleaved={interleaved}");
                assert_close(&what, &read_act(c, &ob, n), &cpu::swiglu(&gate, &up), act_tol(path));
            }
        }
    }
}

#[test]
fn embedding_all_dtypes_chunked_and_not() {
    for path in PATHS {
        for small in [false, true] {
            let owned;
            let c = if small {
                owned = small_binding_ctx(path);
                &owned
            } else {
                ctx(path)
            };
            for dtype in WDTYPES.into_iter().chain(BLOCKS).chain(KQUANTS).chain(stored()) {
                let mut rng = rng("embedding");
                let (vocab, cols) =
                    (1003, if dtype.block_len() == 256 { 512 } else { 96usize.next_multiple_of(dtype.block_len()) });
                let (table, w) = rand_weight(c, &mut rng, dtype, vocab, cols, 1.0);
                let ids: Vec<u32> = (0..37)
                    .map(|i| if i == 0 { vocab as u32 - 1 } else { rand::Rng::random_range(&mut rng, 0..vocab as u32) })
                    .collect();
                let want = cpu::embedding(&table, &ids, cols);
                let ib = c.storage_init("ids", bytemuck::cast_slice(&ids)).unwrap();
                let ob = poisoned(c, ids.len() * cols * 4);
                let mut g = Graph::new();
                Embedding::new(c).record(&mut g, &ib, &w, &ob, ids.len()).unwrap();
                g.run(c);
                let what = format!("embedding {path:?} {dtype:?} chunks={}", w.chunks.len());
                assert_close(&what, &read_f32(c, &ob, ids.len() * cols), &want, 1e-6);
            }
        }
    }
}

#[test]
fn argmax_rows_with_ties() {
    let c = ctx(ActDtype::F16);
    let mut rng = rng("argmax");
    let v = 32003;
    let mut logits = rand_vec(&mut rng, 3 * v, 10.0);
    logits[v + 5] = 100.0; // tie in row 1: the first index wins
    logits[v + 32000] = 100.0;
    logits[2 * v + 32002] = 1e9; // the last column
    logits[2 * v + 9000] = f32::NAN; // NaN never wins, and flags the row
    logits[v + 31000] = f32::INFINITY; // so does an infinity
    let lb = c.storage_init("logits", bytemuck::cast_slice(&logits)).unwrap();
    let (pb, ob) = (poisoned(c, partial_bytes(v, 3) as usize), poisoned(c, 12));
    let mut g = Graph::new();
    Argmax::new(c).record(&mut g, &lb, &pb, &ob, v, 3).unwrap();
    g.run(c);
    let got: Vec<u32> = bytemuck::cast_slice(&c.read_blocking(&ob, 12).unwrap()).to_vec();
    assert_eq!(got, cpu::argmax(&logits, v));
    assert_eq!(got[0], cpu::argmax(&logits[..v], v)[0]);
    assert_eq!(got[1], 5 | NON_FINITE);
    assert_eq!(got[2], 32002 | NON_FINITE);
}

#[test]
fn shape_errors_are_errors() {
    let c = ctx(ActDtype::F16);
    let w = Weight::upload(c, "w", WeightDtype::Bf16, 4, 64, &[0u8; 512]).unwrap();
    let small = c.storage("x", 4).unwrap();
    let out = c.storage("o", 1024).unwrap();
    let err = Matmul::new(c).record(&mut Graph::new(), &small, &w, &out, MatmulOut::Act, 1).unwrap_err();
    assert!(err.to_string().contains("input of w"), "{err}");
    let err = Weight::upload(c, "bad", WeightDtype::Bf16, 4, 8, &[0u8; 10]).err().unwrap();
    assert!(err.to_string().contains("bad"), "{err}");
    let err = WeightDtype::from_name("F8_E4M3", "model.x").unwrap_err();
    assert!(err.to_string().contains("F8_E4M3") && err.to_string().contains("model.x"), "{err}");
}

#[test]
fn w8a8_matches_integer_emulation() {
    // the same 16-bit activations the GPU sees, quantized per token on the CPU exactly as
    // vLLM does; the int8 products are exact, so only the final f32 rescale may differ
    use inferno_llama::ops::w8a8::{QuantScratch, W8a8};
    // t > 4 with K % 4 == 0 takes the tiled GEMM (70 tokens: two token tiles, 130 rows: three
    // column tiles); K % 4 != 0 stays on the GEMV; more than 16 tokens with K % 8 == 0 take the
    // f16 GEMM on codes in the f16 context (GpuOptions::w8a8_f16_gemm), the int8 GEMM in the bf16
    // one. K = 2064 / 2048: the GEMV's two-loads-in-flight loop with and without a tail
    let shapes = [
        (1, 576, 192),
        (3, 172, 64),
        (7, 64, 130),
        (1, 130, 10),
        (70, 100, 130),
        (9, 130, 66),
        (1, 2064, 66),
        (2, 2048, 34),
        (70, 2048, 130), // prompt tiles over a long K
        (33, 136, 66),
        (40, 256, 130), // 17-64 tokens (a batched step)
    ];
    // and codes of a weight in chunks (64 KiB bindings: 252 rows each, their channel scales at
    // each chunk's own offset); on matrix cores, (70, 2048, 130) has its K split (the split sum
    // scales), these not (the GEMM's epilogue scales). (K >= 256: one quantization step of an
    // activation that a GPU's division rounds the other way stays within the tolerance.)
    let chunked = [(100, 256, 600), (40, 256, 300)];
    let cases =
        PATHS.into_iter().map(|path| (ctx(path).clone(), path, &shapes[..])).chain(PATHS.into_iter().map(|path| {
            let opts = GpuOptions {
                force_bf16: path == ActDtype::Bf16,
                max_binding_override: Some(64 << 10),
                w8a8_f16_gemm: Some(true),
                ..GpuOptions::from_env()
            };
            (open(opts), path, &chunked[..])
        }));
    for (c, path, shapes) in cases {
        let c = &c;
        for &(t, k, n) in shapes {
            let mut rng = rng("w8a8");
            let x = round_act(path, &rand_vec(&mut rng, t * k, 2.0));
            let wq: Vec<i8> = (0..n * k).map(|_| rand::Rng::random_range(&mut rng, -128i32..=127) as i8).collect();
            let ws: Vec<f32> = (0..n).map(|_| rand::Rng::random_range(&mut rng, 1e-4f32..1e-2)).collect();
            let mut want = vec![0.0f32; t * n];
            for ti in 0..t {
                let row = &x[ti * k..(ti + 1) * k];
                let s = row.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                let q: Vec<i32> = row.iter().map(|v| (v / s).round_ties_even().clamp(-128.0, 127.0) as i32).collect();
                for j in 0..n {
                    let acc: i32 = (0..k).map(|l| q[l] * wq[j * k + l] as i32).sum();
                    want[ti * n + j] = acc as f32 * s * ws[j];
                }
            }
            let w = Weight::upload_w8a8(c, "w8a8.weight", n, k, bytemuck::cast_slice(&wq), &ws).unwrap();
            let (xb, ob) = (upload_act(c, &x), poisoned(c, t * n * 2));
            let qs = QuantScratch::new(c, t, k).unwrap();
            let mut g = Graph::new();
            W8a8::new(c).record(&mut g, &xb, &qs, &w, &ob, MatmulOut::Act, t).unwrap();
            g.run(c);
            assert_close(&format!("w8a8 {path:?} t={t} k={k} n={n}"), &read_act(c, &ob, t * n), &want, act_tol(path));
            // added into the f32 residual stream (the o/down projections); same tolerance as above:
            // a GPU's x / s may round an int8 value the other way than the CPU's (WGSL division
            // is 2.5 ulp), which moves an output by one quantization step
            let residual = rand_vec(&mut rng, t * n, 3.0);
            let rb = upload_f32(c, &residual);
            let mut g = Graph::new();
            W8a8::new(c).record(&mut g, &xb, &qs, &w, &rb, MatmulOut::AddF32, t).unwrap();
            g.run(c);
            let want: Vec<f32> = want.iter().zip(&residual).map(|(a, b)| a + b).collect();
            assert_close(
                &format!("w8a8 += {path:?} t={t} k={k} n={n}"),
                &read_f32(c, &rb, t * n),
                &want,
                act_tol(path),
            );
        }
    }
}

#[test]
fn quant_of_swiglu_both_layouts_both_paths() {
    // the W8A8 down projection's input: silu(gate) * up quantized per token straight from the
    // gate/up output, against the CPU (f32 SwiGLU, then vLLM's per-token quantization); an int8
    // value may differ by one step where x / s lands within rounding of a half
    use inferno_llama::ops::w8a8::{QuantGrain, QuantInput, QuantScratch, W8a8};
    for path in PATHS {
        let c = ctx(path);
        for interleaved in [true, false] {
            for &(t, i) in &[(1, 576), (3, 130), (5, 2050), (2, 2048)] {
                let mut rng = rng("quant_swiglu");
                let gate = round_act(path, &rand_vec(&mut rng, t * i, 4.0));
                let up = round_act(path, &rand_vec(&mut rng, t * i, 2.0));
                let a = cpu::swiglu(&gate, &up);
                let q = QuantScratch::new(c, t, i).unwrap();
                let gu = upload_act(c, &gate_up_layout(&gate, &up, i, interleaved));
                let mut g = Graph::new();
                let input = QuantInput::Swiglu { interleaved };
                W8a8::new(c).quantize_from(&mut g, &gu, input, QuantGrain::Token, &q, i, t).unwrap();
                g.run(c);
                if i % 32 == 0 {
                    // per block of 32 (the block-weight GEMV's down projection input)
                    let qb = QuantScratch::new(c, t, i).unwrap();
                    let mut g = Graph::new();
                    W8a8::new(c).quantize_from(&mut g, &gu, input, QuantGrain::Block, &qb, i, t).unwrap();
                    g.run(c);
                    let what = format!("block quant(swiglu) {path:?} interleaved={interleaved} t={t} i={i}");
                    read_block_quant(c, &qb, &a, i, 1e-5, &what);
                }
                let words = i.div_ceil(4);
                let xq: Vec<i8> = bytemuck::cast_slice::<f32, u32>(&read_f32(c, &q.xq, t * words))
                    .iter()
                    .flat_map(|w| w.to_le_bytes().map(|b| b as i8))
                    .collect();
                let xs = read_f32(c, &q.xs, t);
                let what = format!("quant(swiglu) {path:?} interleaved={interleaved} t={t} i={i}");
                let mut off_by_one = 0;
                for ti in 0..t {
                    let row = &a[ti * i..(ti + 1) * i];
                    let s = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
                    assert!((xs[ti] - s).abs() <= 1e-5 * s, "{what}: scale {} vs {s}", xs[ti]);
                    for (e, v) in row.iter().enumerate() {
                        let want = (v / s).round_ties_even().clamp(-128.0, 127.0) as i32;
                        let got = xq[ti * words * 4 + e] as i32;
                        assert!((got - want).abs() <= 1, "{what}: token {ti} element {e}: {got} vs {want}");
                        off_by_one += (got != want) as usize;
                    }
                }
                assert!(off_by_one * 100 <= t * i, "{what}: {off_by_one} values one step off");
            }
        }
    }
}

#[test]
fn norm_quant_equals_norm_then_quant() {
    // the W8A8 input: RMSNorm straight into int8 words + per-token scales must be what rms_norm
    // (packed activations) followed by quant_act gives (to rounding, see below)
    use inferno_llama::ops::w8a8::{QuantGrain, QuantInput, QuantScratch, W8a8};
    for path in PATHS {
        let c = ctx(path);
        for gdtype in WDTYPES {
            // (2, 2080): per block, three workgroups of 256 words per row, the last one partial;
            // (20, 64) per token: 16-bit codes in the f16 context (w8a8::takes_codes)
            for &(t, k) in &[(1, 576), (3, 64), (5, 2052), (2, 2080), (20, 64)] {
                for grain in [QuantGrain::Token, QuantGrain::Block] {
                    if grain == QuantGrain::Block && k % 32 != 0 {
                        continue;
                    }
                    let mut rng = rng("norm_quant");
                    let x = rand_vec(&mut rng, t * k, 3.0);
                    let (_, gw) = rand_weight(c, &mut rng, gdtype, 1, k, 1.0);
                    let xb = upload_f32(c, &x);
                    let (h, fused, plain) = (
                        poisoned(c, t * k * 2),
                        QuantScratch::new(c, t, k).unwrap(),
                        QuantScratch::new(c, t, k).unwrap(),
                    );
                    let mut g = Graph::new();
                    RmsNorm::new(c).record(&mut g, &xb, &gw, &h, t, 1e-5).unwrap();
                    W8a8::new(c).quantize_from(&mut g, &h, QuantInput::Act, grain, &plain, k, t).unwrap();
                    RmsNorm::new(c).record_quant(&mut g, &xb, &gw, grain, &fused, t, 1e-5).unwrap();
                    g.run(c);
                    let words = |b: &wgpu::Buffer, n: usize| -> Vec<u32> {
                        read_f32(c, b, n).iter().map(|v| v.to_bits()).collect()
                    };
                    let what = format!("norm+quant {path:?} norm {gdtype:?} t={t} k={k} {grain:?}");
                    // bit for bit on lavapipe; on the H100 the two kernels may round a normalized
                    // value to the activation precision one step apart (the compiler contracts
                    // x * inv * g differently) and divide by the scale differently (WGSL division
                    // is 2.5 ulp), so a scale may differ by one activation ulp of the maximum it
                    // comes from and an int8 value by one step (a block sum by a few steps)
                    let codes = grain == QuantGrain::Token && inferno_llama::ops::w8a8::takes_codes(c, t, k);
                    let bytes = |b: &wgpu::Buffer| -> Vec<i8> {
                        if codes {
                            // two 16-bit activations a word, each an integer in -128..=127
                            let v = read_act(c, b, t * k);
                            assert!(v.iter().all(|v| v.fract() == 0.0 && v.abs() <= 128.0), "{t} {k}: codes {v:?}");
                            return v.iter().map(|&v| v as i8).collect();
                        }
                        words(b, t * k / 4).iter().flat_map(|w| w.to_le_bytes().map(|v| v as i8)).collect()
                    };
                    let (f, pl) = (bytes(&fused.xq), bytes(&plain.xq));
                    assert!(f.iter().zip(&pl).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 1), "{what}: int8 values");
                    let ulp = if path == ActDtype::F16 { 1.0 / 1024.0 } else { 1.0 / 128.0 };
                    let n = if grain == QuantGrain::Token { t } else { t * k / 16 };
                    let (fs, ps) = (read_f32(c, &fused.xs, n), read_f32(c, &plain.xs, n));
                    for (i, (a, b)) in fs.iter().zip(&ps).enumerate() {
                        // block pairs (d, s): s within 4 steps of d
                        let d = if grain == QuantGrain::Block && i % 2 == 1 { ps[i - 1] } else { 0.0 };
                        assert!((a - b).abs() <= ulp * b.abs() + 4.0 * d, "{what}: scales {a} vs {b} at {i}");
                    }
                }
            }
        }
    }
}

/// What a RoPE epilogue makes of q/k/v outputs `y` (T, (H + 2 Hkv) D) of tokens at (slot,
/// position) `tok`: the rotated q (returned), and k rotated and v written into the caches `kc`,
/// `vc` (slots, ctx_len, Hkv D) at each token's place.
fn rope_epilogue_reference(
    y: &[f32],
    tok: &[(usize, usize)],
    (heads, kvh, d): (usize, usize, usize),
    (theta, scaling): (f32, &RopeScaling),
    ctx_len: usize,
    kc: &mut [f32],
    vc: &mut [f32],
) -> Vec<f32> {
    let (qd, kvd) = (heads * d, kvh * d);
    let n = qd + 2 * kvd;
    let part =
        |from: usize, len: usize| -> Vec<f32> { y.chunks(n).flat_map(|r| r[from..from + len].to_vec()).collect() };
    let positions: Vec<usize> = tok.iter().map(|p| p.1).collect();
    let inv = inv_freqs(d, theta, scaling);
    let k_rot = cpu::rope(&part(qd, kvd), &positions, kvh, d, &inv);
    let v = part(qd + kvd, kvd);
    for (i, &(s, p)) in tok.iter().enumerate() {
        kc[(s * ctx_len + p) * kvd..][..kvd].copy_from_slice(&k_rot[i * kvd..][..kvd]);
        vc[(s * ctx_len + p) * kvd..][..kvd].copy_from_slice(&v[i * kvd..][..kvd]);
    }
    cpu::rope(&part(0, qd), &positions, heads, d, &inv)
}

/// A RoPE epilogue's destinations for a kernel test: tokens `tok` (slot, position) over two
/// cache slots of 701 positions, random k/v caches (and their CPU copies) and a poisoned q for
/// `heads` x `d` (`kvh` KV heads), llama3 RoPE scaling; `check` compares them with the CPU's
/// RoPE and cache writes of the projection `y`.
struct RopeFixture {
    tok: Vec<(usize, usize)>,
    shape: (usize, usize, usize),
    theta: f32,
    scaling: RopeScaling,
    table: RopeTable,
    cpu_caches: [Vec<f32>; 2],
    bufs: [wgpu::Buffer; 4], // k cache, v cache, positions, q
}

impl RopeFixture {
    const CTX: usize = 701;

    fn new(
        c: &GpuContext,
        path: ActDtype,
        rng: &mut rand::rngs::StdRng,
        tok: &[(usize, usize)],
        (heads, kvh, d): (usize, usize, usize),
    ) -> Self {
        let (theta, scaling) = scalings().remove(1);
        let table = RopeTable::new(c, d, theta, &scaling, Self::CTX).unwrap();
        let (kc, kb) = rand_cache(c, path, rng, 2 * Self::CTX * kvh * d);
        let (vc, vb) = rand_cache(c, path, rng, 2 * Self::CTX * kvh * d);
        let bufs = [kb, vb, tok_buf(c, tok), poisoned(c, tok.len() * heads * d * 2)];
        RopeFixture { tok: tok.to_vec(), shape: (heads, kvh, d), theta, scaling, table, cpu_caches: [kc, vc], bufs }
    }

    fn epilogue(&self) -> RopeEpilogue<'_> {
        let [kb, vb, tb, qb] = &self.bufs;
        let dst = RopeDst { q: qb, k_cache: kb, v_cache: vb, ctx_len: Self::CTX };
        RopeEpilogue { dst, tok: tb, table: &self.table, heads: self.shape.0, kv_heads: self.shape.1 }
    }

    fn check(self, c: &GpuContext, path: ActDtype, what: &str, y: &[f32]) {
        let RopeFixture { tok, shape, theta, scaling, cpu_caches: [mut kc, mut vc], bufs: [kb, vb, _, qb], .. } = self;
        let want_q = rope_epilogue_reference(y, &tok, shape, (theta, &scaling), Self::CTX, &mut kc, &mut vc);
        assert_close(&format!("{what} q"), &read_act(c, &qb, want_q.len()), &want_q, act_tol(path));
        assert_close(&format!("{what} k cache"), &read_act(c, &kb, kc.len()), &kc, act_tol(path));
        assert_close(&format!("{what} v cache"), &read_act(c, &vb, vc.len()), &vc, act_tol(path));
    }
}

#[test]
fn fused_norm_gemv_rope_epilogue() {
    // decode's q/k/v GEMV with RoPE (rotary pairs side by side) and the KV append as epilogue,
    // against the CPU: rms_norm, matmul, rope, cache writes. Subgroup kernel only (the f16
    // context on adapters with subgroups); elsewhere the op says it cannot.
    use inferno_llama::ops::matmul_norm::{MatmulNorm, NormEpilogue};
    // the shared contexts, and an f16 one whose 4 KiB binding limit splits the weights into chunks
    let small = small_binding_ctx(ActDtype::F16);
    for (path, c) in
        [(ActDtype::F16, ctx(ActDtype::F16)), (ActDtype::Bf16, ctx(ActDtype::Bf16)), (ActDtype::F16, &small)]
    {
        let op = MatmulNorm::new(c);
        // (heads, kv heads, D, K, tokens as (slot, position)); q/k/v as one weight, or k and v
        // as their own weights (different dtypes) writing their columns
        let cases: &[(usize, usize, usize, usize, bool)] = if c.max_binding < 1 << 20 {
            &[(16, 4, 8, 64, false), (4, 1, 6, 64, true)] // rows small enough for 4 KiB chunks
        } else {
            &[(9, 3, 64, 576, false), (4, 1, 6, 64, true), (2, 2, 128, 256, false)]
        };
        for &(heads, kvh, d, k, split) in cases {
            let mut rng = rng("norm_gemv_rope");
            let tok = [(1usize, 700usize), (0, 3)];
            let t = tok.len();
            let (qd, kvd) = (heads * d, kvh * d);
            let n = qd + 2 * kvd;
            let x = rand_vec(&mut rng, t * k, 3.0);
            let (gv, gw) = rand_weight(c, &mut rng, WeightDtype::Bf16, 1, k, 1.0);
            let weights: Vec<(Vec<f32>, Weight)> = if split {
                vec![
                    rand_weight(c, &mut rng, WeightDtype::Bf16, qd, k, 0.5),
                    rand_weight(c, &mut rng, WeightDtype::F16, 2 * kvd, k, 0.5),
                ]
            } else {
                vec![rand_weight(c, &mut rng, WeightDtype::Bf16, n, k, 0.5)]
            };
            let wv: Vec<f32> = weights.iter().flat_map(|(v, _)| v.clone()).collect();
            let y = cpu::matmul(&cpu::rms_norm(&x, &gv, k, 1e-5), &wv, t, k, n);
            let fixture = RopeFixture::new(c, path, &mut rng, &tok, (heads, kvh, d));
            let rope = fixture.epilogue();
            let (xb, unused) = (upload_f32(c, &x), poisoned(c, 16));
            let mut g = Graph::new();
            let mut first = 0;
            let mut result = Ok(());
            for (_, w) in &weights {
                let epilogue = NormEpilogue::Rope(OutCols { first, total: n }, rope);
                result = result.and(op.record(&mut g, &xb, &gw, w, &unused, epilogue, t, 1e-5));
                first += w.rows;
            }
            let chunks: usize = weights.iter().map(|(_, w)| w.chunks.len()).sum();
            let what = format!("norm+gemv+rope {path:?} H={heads} Hkv={kvh} D={d} K={k} split={split} chunks={chunks}");
            if !op.fuses_rope() {
                assert!(result.is_err(), "{what}: the workgroup kernel has no RoPE epilogue");
                continue;
            }
            result.unwrap();
            g.run(c);
            fixture.check(c, path, &what, &y);
        }
    }
}

#[test]
fn fused_norm_gemv_all_dtypes_both_paths() {
    use inferno_llama::ops::matmul_norm::{MatmulNorm, NormEpilogue};
    for path in PATHS {
        let c = ctx(path);
        for dtype in WDTYPES.into_iter().chain(BLOCKS).chain(KQUANTS).chain(stored()) {
            for gdtype in WDTYPES {
                // N >= 4096 takes the 8-rows-per-workgroup variant (without subgroups); K = 2112
                // runs the subgroup kernel's four-step loop and then its one-step tail
                let shapes: &[(usize, usize, usize)] = if dtype.block_len() == 256 {
                    &[(1, 512, 130), (2, 256, 68), (1, 256, 4100)]
                } else {
                    &[(1, 576, 130), (3, 64, 68), (1, 2112, 12), (2, 64, 4100)]
                };
                for &(t, k, n) in shapes {
                    let mut rng = rng("matmul_norm");
                    let x = rand_vec(&mut rng, t * k, 3.0);
                    let (gv, gw) = rand_weight(c, &mut rng, gdtype, 1, k, 1.0);
                    let (wv, w) = rand_weight(c, &mut rng, dtype, n, k, 0.5);
                    let y = cpu::matmul(&cpu::rms_norm(&x, &gv, k, 1e-5), &wv, t, k, n);
                    let xb = upload_f32(c, &x);
                    let what = format!("norm+gemv {path:?} W {dtype:?} norm {gdtype:?} t={t} k={k} n={n}");
                    // into columns [2, 2 + n) of a (t, n + 6) output; the other columns stay poisoned
                    let ob = poisoned(c, t * (n + 6) * 2);
                    let mut g = Graph::new();
                    let cols = OutCols { first: 2, total: n + 6 };
                    MatmulNorm::new(c).record(&mut g, &xb, &gw, &w, &ob, NormEpilogue::Cols(cols), t, 1e-5).unwrap();
                    g.run(c);
                    let got = read_act(c, &ob, t * (n + 6));
                    let mine: Vec<f32> = got.chunks(n + 6).flat_map(|r| r[2..2 + n].to_vec()).collect();
                    assert_close(&what, &mine, &y, act_tol(path));
                    assert!(got.chunks(n + 6).all(|r| r[..2].iter().chain(&r[2 + n..]).all(|v| v.is_nan())), "{what}");
                    // the same rows as a fused gate/up weight: out = silu(y[2i]) * y[2i + 1]
                    if n % 4 != 0 {
                        continue;
                    }
                    let (gate, up): (Vec<f32>, Vec<f32>) = y.chunks(2).map(|p| (p[0], p[1])).unzip();
                    let ob = poisoned(c, t * n);
                    let mut g = Graph::new();
                    MatmulNorm::new(c).record(&mut g, &xb, &gw, &w, &ob, NormEpilogue::Swiglu, t, 1e-5).unwrap();
                    g.run(c);
                    let want = cpu::swiglu(&gate, &up);
                    assert_close(&format!("{what} swiglu"), &read_act(c, &ob, t * n / 2), &want, act_tol(path));
                }
            }
        }
    }
}

/// The int8 activations quantized per block of 32 ([`QuantGrain::Block`]) read back as values
/// `d * q` in element order, after checking every block against the CPU's quantization of `vals`
/// (the values quantized): `d = max|v| / 127` (to `dtol` relative), `q = round(v / d)` within one
/// step (WGSL division is 2.5 ulp), `s = d * sum(q)`; and that few values are a step off.
fn read_block_quant(
    c: &GpuContext,
    q: &inferno_llama::ops::w8a8::QuantScratch,
    vals: &[f32],
    k: usize,
    dtol: f32,
    what: &str,
) -> Vec<f32> {
    let n = vals.len();
    let words: Vec<u32> = read_f32(c, &q.xq, n / 4).iter().map(|v| v.to_bits()).collect();
    let ds = read_f32(c, &q.xs, n / 32 * 2);
    let mut out = vec![f32::NAN; n];
    let mut off_by_one = 0;
    for b in 0..n / 32 {
        let (d, s) = (ds[2 * b], ds[2 * b + 1]);
        let v = &vals[32 * b..32 * b + 32];
        let dw = v.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
        assert!((d - dw).abs() <= dtol * dw, "{what}: block {b}: d {d} vs {dw}");
        let mut sum = 0;
        // the row's first half holds each block's words 0..3, its second half words 4..7
        let (row, bi, wpr) = (b / (k / 32), b % (k / 32), k / 4);
        let block_words = (0..8).map(|i| words[row * wpr + i / 4 * (wpr / 2) + 4 * bi + i % 4]);
        for (i, word) in block_words.enumerate() {
            // word 2g: elements 8g + 0, 2, 4, 6; word 2g + 1: 8g + 1, 3, 5, 7
            for j in 0..4 {
                let e = 8 * (i / 2) + 2 * j + i % 2;
                let qv = (word >> (8 * j)) as u8 as i8 as i32;
                let want = if dw > 0.0 { (v[e] / dw).round_ties_even() as i32 } else { 0 };
                assert!((qv - want).abs() <= 1, "{what}: block {b} element {e}: {qv} vs {want}");
                off_by_one += (qv != want) as usize;
                sum += qv;
                out[32 * b + e] = d * qv as f32;
            }
        }
        let sw = d * sum as f32;
        assert!((s - sw).abs() <= 1e-5 * (sw.abs() + d), "{what}: block {b}: s {s} vs {sw}");
    }
    assert!(off_by_one * 100 <= n, "{what}: {off_by_one} values one step off");
    out
}

/// GGUF weights the int8-activation GEMV reads: the repacked types and every type read as stored.
fn q8_dtypes() -> Vec<WeightDtype> {
    let repacked = [WeightDtype::Q8_0, WeightDtype::Q4_0, WeightDtype::Q4_1, WeightDtype::Q4K, WeightDtype::Q6K];
    repacked.into_iter().chain(stored()).collect()
}

#[test]
fn gemv_q8_token_sums_do_not_depend_on_the_batch() {
    // a sequence decoded in a batch gets what it gets alone: a token's int8 GEMV result is bit for
    // bit the same in a step of 1, 3 or 8 tokens; steps of 9-16 tokens (two rows per thread) sum in
    // the same order, but a driver may contract their multiply-adds differently (H200: last-bit
    // differences), so they are held to 1e-5 of the outputs' RMS (per element, an output near
    // zero after cancellation would turn those last bits into a large ratio: 1.05e-4 of itself
    // on the H200 for Q4_K, 2026-12-04)
    use inferno_llama::ops::gemv_q8::GemvQ8;
    use inferno_llama::ops::w8a8::{QuantGrain, QuantInput, QuantScratch, W8a8};
    let c = ctx(ActDtype::F16);
    let (k, n) = (4864, 34);
    for dtype in q8_dtypes() {
        let mut rng = rng("gemv_q8 batch");
        let x = round_act(ActDtype::F16, &rand_vec(&mut rng, 16 * k, 1.0));
        let (_, w) = rand_weight(c, &mut rng, dtype, n, k, 0.5);
        let first_row = |t: usize| {
            let q = QuantScratch::new(c, t, k).unwrap();
            let ob = poisoned(c, t * n * 4);
            let mut g = Graph::new();
            let xb = upload_act(c, &x[..t * k]);
            W8a8::new(c).quantize_from(&mut g, &xb, QuantInput::Act, QuantGrain::Block, &q, k, t).unwrap();
            GemvQ8::new(c).record_cols(&mut g, &q, &w, MatmulDst::all(&ob, n, MatmulOut::F32), t).unwrap();
            g.run(c);
            read_f32(c, &ob, n)
        };
        let alone = first_row(1);
        for t in [3, 8] {
            let got = first_row(t);
            let differ = got.iter().zip(&alone).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{dtype:?}: {differ} of the first token's outputs differ in a step of {t}");
        }
        for t in [9, 16] {
            let what = format!("{dtype:?}: the first token's outputs in a step of {t}");
            let got = first_row(t);
            let rms = (alone.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
            let worst = got.iter().zip(&alone).map(|(a, b)| (a - b).abs() / rms).fold(0.0, f32::max);
            println!("{what}: largest difference {worst:e} of the outputs' RMS");
            assert!(worst <= 1e-5, "{what}: {worst:e}");
        }
    }
}

/// Checks a q/k/v projection with the RoPE epilogue against the CPU: random input x (t, k) and
/// weights of `dtypes` (one q/k/v weight, or q+k and v), a [`RopeFixture`]; `run` records
/// and runs it on the GPU and returns the input and weights as the GPU multiplied them (None: the
/// call rightly refused), then q and both caches are compared with the CPU's matmul, RoPE and
/// cache writes.
#[allow(clippy::type_complexity)]
fn check_rope_epilogue(
    c: &GpuContext,
    path: ActDtype,
    seed: &str,
    tok: &[(usize, usize)],
    [heads, kvh, d, k]: [usize; 4],
    dtypes: &[WeightDtype],
    run: impl FnOnce(&[f32], &wgpu::Buffer, &[(Vec<f32>, Weight)], RopeEpilogue) -> Option<(Vec<f32>, Vec<f32>)>,
) {
    let mut rng = rng(seed);
    let t = tok.len();
    let (qd, kvd) = (heads * d, kvh * d);
    let n = qd + 2 * kvd;
    let x = round_act(path, &rand_vec(&mut rng, t * k, 1.0));
    let rows = if dtypes.len() == 1 { vec![n] } else { vec![qd + kvd, kvd] };
    let weights: Vec<(Vec<f32>, Weight)> =
        dtypes.iter().zip(&rows).map(|(&dt, &r)| rand_weight(c, &mut rng, dt, r, k, 0.5)).collect();
    let fixture = RopeFixture::new(c, path, &mut rng, tok, (heads, kvh, d));
    let Some((xhat, wv)) = run(&x, &upload_act(c, &x), &weights, fixture.epilogue()) else {
        return;
    };
    let what = format!("{seed} {path:?} t={t} H={heads} Hkv={kvh} D={d} K={k} {dtypes:?}");
    fixture.check(c, path, &what, &cpu::matmul(&xhat, &wv, t, k, n));
}

#[test]
fn skinny_rope_epilogue() {
    // batched steps' q/k/v on the skinny matrix-core GEMM with RoPE and the KV append as its
    // epilogue, against the CPU (weights rounded to f16 as the GEMM stages them); q/k/v as one
    // weight, or q+k and v of two formats; where the call does not take the skinny GEMM (no
    // matrix cores) the epilogue is an error, never a wrong answer
    for path in PATHS {
        let c = ctx(path);
        let cases = [
            (8, [4, 2, 64, 256], vec![WeightDtype::Bf16]),
            (20, [4, 2, 64, 512], vec![WeightDtype::Q4K, WeightDtype::Q6K]),
            (6, [2, 1, 128, 256], vec![WeightDtype::F16]),
        ];
        for (t, shape, dtypes) in cases {
            let tok: Vec<(usize, usize)> = (0..t).map(|i| (i % 2, 3 + 7 * i)).collect();
            check_rope_epilogue(c, path, "skinny_rope", &tok, shape, &dtypes, |x, xb, weights, rope| {
                let m = Matmul::new(c);
                let mut g = Graph::new();
                let n = weights.iter().map(|(_, w)| w.rows).sum();
                if !weights.iter().all(|(_, w)| m.fuses_rope(t, w)) {
                    let refused = m.record_rope(&mut g, xb, &weights[0].1, OutCols { first: 0, total: n }, rope, t);
                    assert!(refused.is_err(), "skinny_rope {path:?} t={t} {dtypes:?}: not refused");
                    return None;
                }
                let mut first = 0;
                for (_, w) in weights {
                    m.record_rope(&mut g, xb, w, OutCols { first, total: n }, rope, t).unwrap();
                    first += w.rows;
                }
                g.run(c);
                Some((x.to_vec(), weights.iter().flat_map(|(v, _)| v.iter().map(|&v| f16_round(v))).collect()))
            });
        }
    }
}

#[test]
fn gemv_q8_rope_epilogue_both_paths() {
    // decode's int8 q/k/v GEMV with RoPE and the KV append as epilogue, against the CPU: the
    // GPU's per-block int8 activations dequantized, matmul, rope, cache writes; q/k/v as one
    // weight, or q+k and v as two weights of different formats (Q4_K_M) writing their columns
    use inferno_llama::ops::gemv_q8::GemvQ8;
    use inferno_llama::ops::w8a8::{QuantGrain, QuantInput, QuantScratch, W8a8};
    for path in PATHS {
        let c = ctx(path);
        let cases = [
            ([9, 3, 64, 512], vec![WeightDtype::Q4K]),
            ([4, 2, 8, 256], vec![WeightDtype::Q4K, WeightDtype::Q6K]),
            ([2, 1, 128, 256], vec![WeightDtype::Q8_0, WeightDtype::Q4_1]),
        ];
        for (shape, dtypes) in cases {
            let tok = [(1usize, 700usize), (0, 3), (1, 0)];
            let (t, k) = (tok.len(), shape[3]);
            check_rope_epilogue(c, path, "gemv_q8_rope", &tok, shape, &dtypes, |x, xb, weights, rope| {
                let q = QuantScratch::new(c, t, k).unwrap();
                let n = weights.iter().map(|(_, w)| w.rows).sum();
                let mut g = Graph::new();
                W8a8::new(c).quantize_from(&mut g, xb, QuantInput::Act, QuantGrain::Block, &q, k, t).unwrap();
                let mut first = 0;
                for (_, w) in weights {
                    GemvQ8::new(c).record_rope(&mut g, &q, w, OutCols { first, total: n }, rope, t).unwrap();
                    first += w.rows;
                }
                g.run(c);
                let xhat = read_block_quant(c, &q, x, k, 1e-6, &format!("gemv_q8_rope {path:?} {dtypes:?}"));
                Some((xhat, weights.iter().flat_map(|(v, _)| v.clone()).collect()))
            });
        }
    }
}

#[test]
fn gemv_q8_matches_cpu_both_paths() {
    // decode's block-weight GEMV on int8 activations: the activations quantized per block of 32
    // on the GPU (checked against the CPU's quantization), then the CPU's f32 product of the
    // dequantized weights with those int8 values; the integer sums are exact, so only the f32
    // scaling may differ
    use inferno_llama::ops::gemv_q8::GemvQ8;
    use inferno_llama::ops::w8a8::{QuantGrain, QuantInput, QuantScratch, W8a8};
    for path in PATHS {
        for small in [false, true] {
            let owned;
            let c = if small {
                owned = small_binding_ctx(path); // weights in chunks of a few rows
                &owned
            } else {
                ctx(path)
            };
            for dtype in q8_dtypes() {
                // (1, 4864): 19 blocks of 256, more than 4 x 32 blocks of 32 per row, so lanes take
                // several steps with a tail; 9, 12 and 20 tokens: token groups of 16 filled in part
                let shapes: &[(usize, usize, usize)] = if small {
                    &[(1, 256, 130), (3, 512, 34)]
                } else {
                    // (12, 256, 37): two rows per thread (groups of 16 tokens), odd N (f32 only)
                    &[
                        (1, 256, 130),
                        (1, 4864, 36),
                        (2, 512, 66),
                        (8, 256, 34),
                        (9, 768, 130),
                        (20, 256, 36),
                        (12, 256, 37),
                    ]
                };
                for &(t, k, n) in shapes {
                    for out in [MatmulOut::Act, MatmulOut::F32, MatmulOut::AddF32] {
                        if out == MatmulOut::Act && n % 2 == 1 {
                            continue; // packed outputs need N even
                        }
                        let mut rng = rng("gemv_q8");
                        let x = round_act(path, &rand_vec(&mut rng, t * k, 1.0));
                        let (wv, w) = rand_weight(c, &mut rng, dtype, n, k, 0.5);
                        let q = QuantScratch::new(c, t, k).unwrap();
                        let xb = upload_act(c, &x);
                        let what =
                            format!("gemv_q8 {path:?} {dtype:?} t={t} k={k} n={n} {out:?} chunks={}", w.chunks.len());
                        let mut g = Graph::new();
                        W8a8::new(c).quantize_from(&mut g, &xb, QuantInput::Act, QuantGrain::Block, &q, k, t).unwrap();
                        let (cols, residual) = match out {
                            MatmulOut::Act => (OutCols { first: 4, total: n + 6 }, vec![]),
                            MatmulOut::F32 => (OutCols::all(n), vec![]),
                            MatmulOut::AddF32 => (OutCols::all(n), rand_vec(&mut rng, t * n, 3.0)),
                        };
                        let ob = match out {
                            MatmulOut::Act => poisoned(c, t * (n + 6) * 2),
                            MatmulOut::F32 => poisoned(c, t * n * 4),
                            MatmulOut::AddF32 => upload_f32(c, &residual),
                        };
                        GemvQ8::new(c).record_cols(&mut g, &q, &w, MatmulDst::new(&ob, cols, out), t).unwrap();
                        g.run(c);
                        let xhat = read_block_quant(c, &q, &x, k, 1e-6, &what);
                        let mut want = cpu::matmul(&xhat, &wv, t, k, n);
                        match out {
                            MatmulOut::Act => {
                                let got = read_act(c, &ob, t * (n + 6));
                                let mine: Vec<f32> = got.chunks(n + 6).flat_map(|r| r[4..4 + n].to_vec()).collect();
                                assert_close(&what, &mine, &want, act_tol(path));
                                let others =
                                    got.chunks(n + 6).all(|r| r[..4].iter().chain(&r[4 + n..]).all(|v| v.is_nan()));
                                assert!(others, "{what}: wrote outside its columns");
                            }
                            _ => {
                                want.iter_mut()
                                    .zip(residual.iter().chain(std::iter::repeat(&0.0)))
                                    .for_each(|(a, b)| *a += b);
                                assert_close(&what, &read_f32(c, &ob, t * n), &want, 1e-5);
                            }
                        }
                    }
                }
            }
        }
    }
}
