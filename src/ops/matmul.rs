//! `out = x @ W^T` with W in its checkpoint dtype: GEMV for a few tokens (decode, batched
//! decode), tiled GEMM for many (prefill). Kernels: shaders/matmul_gemv.wgsl,
//! shaders/matmul_gemm.wgsl, and shaders/matmul_gemm_coop.wgsl (matrix cores) for every dtype but
//! f32 with K % 32 == 0 where the context has [`GpuContext::coopmat`], with
//! shaders/matmul_skinny_coop.wgsl for batched decode steps of f16/bf16 weights; long prompts of
//! block weights decode them to f16 first (ops::dequant). (A subgroup
//! variant of the GEMV measured slower on the H100 than this one's workgroup reduction: 1.49 vs
//! 1.82 TB/s on the 1B shape, 2026-11-28, so only the fused norm-GEMV uses subgroups.)

use super::dequant::Dequant;
use super::rope::{EpilogueParams, RopeEpilogue};
use super::split_sum::{CodeScales, SplitSum};
use super::{act_bytes, check_buf, check_even, gemm_grid, MatmulDst, OutCols};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::gpu::weight::{Weight, WeightChunk};
use crate::gpu::{fold_workgroups, GpuContext, Kernel};
use crate::graph::Graph;
use std::sync::Arc;

/// Mirrors `Params` in matmul_common.wgsl and matmul_gemv_q8.wgsl: the matmul's fields, then
/// the RoPE epilogue's.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    /// Inner dimension K (elements, even).
    pub k: u32,
    /// Rows of W in this chunk.
    pub n: u32,
    /// Columns of the output (N total).
    pub out_stride: u32,
    /// First output column written by this chunk.
    pub out_offset: u32,
    /// Tokens.
    pub t: u32,
    /// Block formats: word offset of the scales in the chunk.
    pub d_off: u32,
    /// Block formats: word offset of the minimums in the chunk.
    pub m_off: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
    /// The RoPE epilogue's fields (zeros without it).
    pub rope: EpilogueParams,
}

impl MatmulParams {
    /// The params of `t` tokens through `n` f16/bf16 weight rows of inner size `k`, writing
    /// columns `cols.first..` of `cols.total`, without epilogue.
    pub fn new(k: usize, t: usize, n: usize, cols: OutCols) -> Self {
        MatmulParams {
            k: k as u32,
            n: n as u32,
            out_stride: cols.total as u32,
            out_offset: cols.first as u32,
            t: t as u32,
            d_off: 0,
            m_off: 0,
            _pad: 0,
            rope: EpilogueParams::default(),
        }
    }

    /// The params of `t` tokens through `chunk` of a weight of inner size `k`, writing its rows'
    /// columns of `cols` (from `cols.first + chunk.row0`), with the RoPE epilogue's fields.
    pub fn for_chunk(k: usize, t: usize, chunk: &WeightChunk, cols: OutCols, rope: EpilogueParams) -> Self {
        let cols = OutCols { first: cols.first + chunk.row0, total: cols.total };
        MatmulParams { d_off: chunk.d_off, m_off: chunk.m_off, rope, ..Self::new(k, t, chunk.rows, cols) }
    }
}

/// Up to this many tokens use the GEMV kernel (one sequence's decode, or one step of a batch of
/// sequences) where the adapter has no matrix-core GEMM; more use the tiled GEMM. (On the H200
/// the GEMV beats the portable GEMM up to 64 tokens of Q4_K_M — 599 vs 423 tok/s — but software
/// adapters run its per-invocation work slowly: lavapipe's 16-token prompt 2.0 vs 3.65 tok/s,
/// and SwiftShader's 37-token chat prompt did not finish in 15 minutes; 16 keeps prompts on the
/// GEMM there and batches of up to 16 sequences on the GEMV.)
pub const GEMV_MAX_TOKENS: usize = 16;

/// Where the adapter has the matrix-core GEMM, up to this many tokens of GGUF block weights take
/// the GEMV (or ops::gemv_q8) and more the GEMM (H200, 8B Q4_K_M, batched decode, tok/s through
/// the GEMV / the GEMM at 32 sequences: 571 / 379, 64: 599 / 733 — the GEMM's 64-token tiles
/// leave most of the GPU idle on a few tokens). f16/bf16 weights take the skinny GEMM from 5
/// tokens ([`SKINNY_TOKENS`]).
pub const GEMV_MAX_TOKENS_COOP: usize = 32;

/// Where the adapter has matrix cores, steps of f16/bf16 weights with this many tokens take the
/// skinny matrix-core GEMM (shaders/matmul_skinny_coop.wgsl) instead of the GEMV or the prompt
/// GEMM. H200, 8B bf16, batched decode, aggregate tok/s, GEMV / skinny (2026-12-03, tiles staged
/// in 8-byte stores): 4 sequences 471 / 371, 5: 426 / 465, 6: 507 / 558, 8: 628 / 753; 16:
/// 763 / 1,487 and 32: 842 / 2,722 (GEMV from 2026-12-02); prompt GEMM / skinny at 64: 1,618 /
/// 2,390 (2026-12-02). The repacked block formats join from [`skinny_block_from`] tokens.
pub const SKINNY_TOKENS: std::ops::RangeInclusive<usize> = 5..=64;

/// Workgroups the skinny GEMM's K splits aim for (about one per SM of a large GPU), and the
/// fewest stages of K a split takes (see [`skinny_splits`]).
const SPLIT_WORKGROUPS: usize = 128;
const SPLIT_MIN_STAGES: usize = 4;

/// K splits of a skinny matrix-core GEMM of `t` tokens over `rows` weight rows of K `k` (its
/// column tiles and stages of K: [`skinny_tiles`]): as many as bring its workgroups to
/// [`SPLIT_WORKGROUPS`], each of at least [`SPLIT_MIN_STAGES`] stages. 1B's 2048-row weights
/// have 64 tiles of 32 columns: half the H200's 132 SMs idle.
/// H200, aggregate tok/s, no splits / splits to 128 / 256 / 512 workgroups (2026-12-04): 1B
/// bf16 at 5 sequences 1,762 / 1,910 / 1,721 / 1,812, 8: 2,967 / 3,082 / 2,798 / 2,950, 16:
/// 5,779 / 5,933 / 5,475 / 5,416, 32: 10,100 / 11,084 / 10,478 / 9,993; 1B Q4_K_M at 17:
/// 3,703 / 4,245 / 4,018 / 4,086, 32: 7,073 / 7,949 / 7,508 / 7,488. 8B's 4096-row weights (128
/// tiles) stay whole: bf16 at 8 / 32 sequences 736-755 / 2,699-2,789 whole, 700-715 / 2,571-2,619
/// split to 512 workgroups, 722 / 2,673 to 256 (the sums' extra dispatches cost more than the
/// splits gain). The count depends on the weight's shape and the tile width (32 columns up to
/// 32 tokens, 64 above), not otherwise on the tokens.
fn skinny_splits(t: usize, rows: usize, k: usize) -> usize {
    k_splits(rows.div_ceil(skinny_tiles(t)[1]), skinny_stages(t, k))
}

/// The skinny GEMM's stages of K for `t` tokens (its BK: 256, or 128 for 64-column tiles).
fn skinny_stages(t: usize, k: usize) -> usize {
    k.div_ceil(if skinny_tiles(t)[1] == 64 { 128 } else { 256 })
}

/// K splits of a matrix-core GEMM of `tiles` workgroups per split and `stages` stages of K: as
/// many as bring its workgroups to [`SPLIT_WORKGROUPS`], each of at least [`SPLIT_MIN_STAGES`]
/// stages. The prompt GEMM's tiles of 128 tokens x 128 columns give 1B's 2048-row weights 64
/// workgroups at 512 tokens (H200, 1B bf16 pp512 profile: the down projection at 99 TFLOP/s, o
/// at 69, gate/up's 512 workgroups at 178); 8B's 4096-row weights have 128 and stay whole.
fn k_splits(tiles: usize, stages: usize) -> usize {
    nonempty_splits(stages, SPLIT_WORKGROUPS / tiles.max(1))
}

/// At most `splits` K splits of `stages` stages, none of them empty: the kernels give split z
/// stages z * per.. with per = ceil(stages / splits), so 33 stages in 8 splits would leave the
/// last one nothing (and its first loads past K): 7 splits of 5 stages instead.
fn nonempty_splits(stages: usize, splits: usize) -> usize {
    let s = splits.clamp(1, (stages / SPLIT_MIN_STAGES).max(1));
    stages.div_ceil(stages.div_ceil(s).max(1)).max(1)
}

/// The skinny GEMM's tiles `[bm, bn]` for `t` tokens: 16 or 32 tokens; 32 columns, 64 past 32
/// tokens (H200, 8B bf16, 64 sequences: 2,390 vs 2,066 tok/s; 32 sequences: 1,601 vs 1,809;
/// 2026-12-03 with 8-byte staging, 64 columns at 8 / 16 / 32 sequences: 611 / 1,211 / 2,277 vs 32
/// columns' 753 / 1,487 / 2,722; 16 columns for N <= 8192: 649 / 1,271 / 2,302; block formats,
/// 8B Q4_K_M 32 / 64 columns: 17 sequences 749 / 668, 32: 1,403 / 1,253, 64: 1,612 / 1,854; Q8_0
/// at 32: 2,137 / 1,586).
fn skinny_tiles(t: usize) -> [usize; 2] {
    [if t <= 16 { 16 } else { 32 }, if t <= 32 { 32 } else { 64 }]
}

/// From how many tokens (within [`SKINNY_TOKENS`]) a step takes weights of a repacked block
/// format to the skinny matrix-core GEMM, decoded to f16 as its tiles are staged, rather than to
/// the int8 GEMV (ops::gemv_q8); None: never (the types read as stored decode too slowly there).
/// H200, batched decode, aggregate tok/s, int8 GEMV / skinny: 8B Q4_K_M (2026-12-04, K-quant
/// scales decoded once per 32 weights) at 20 sequences 920 / 1,142, 24: 1,013 / 1,366, 28: 1,095
/// / 1,590, 32: 1,183 / 1,822 (Q6_K on the skinny GEMM in both); before that (each 8 weights
/// decoding their scales): 8: 856 / 392, 12: 735 / 588, 16: 949 / 787, 17: - / 749, 64: 1,464 /
/// 1,868; 8B Q6_K at 12: 756 / 774, 16: 969 / 1,035 (1,087 now), 32: 1,094 / 1,938 (2,003); 8B
/// Q8_0 at 16: 951 / 1,130, 32: 1,025 / 2,496; 8B Q4_0 at 16: 1,005 / 1,454, 32: 1,096 / 2,821;
/// 1B Q4_K_M at 16: 3,629 / 3,383, 32: 4,692 / 5,991.
pub fn skinny_block_from(dtype: WeightDtype) -> Option<usize> {
    match dtype {
        WeightDtype::Q8_0 | WeightDtype::Q4_0 | WeightDtype::Q4_1 | WeightDtype::Q6K => Some(16),
        WeightDtype::Q4K => Some(17),
        _ => None,
    }
}

/// Prompts of at least this many tokens take block-format weights to the prompt GEMM (matrix-core
/// or portable) decoded to f16 first (ops::dequant), once per weight row, rather than decoded as
/// each tile is staged, once per token tile and inside the GEMM's latency-bound stages. H200, 8B
/// Q4_K_M on matrix cores, 2026-12-03: pp512 4,900 -> 7,862 tok/s, Q8_0 4,444 -> 8,391; pp128
/// 1,181 -> 1,428; with the scratch holding a whole weight, 2026-12-04: pp128 2,493 -> 3,535, pp96
/// 1,896 -> 2,463 ± 346; pp72 907 ± 448 -> 1,565 ± 772, too noisy to decide. Without matrix
/// cores, 2026-12-04: pp512 1,532 -> 2,204.
pub const DEQUANT_TOKENS: usize = 96;

/// Tokens per GEMV workgroup at most (the kernel's `MAX_TOK`): a step of `t` tokens reads each
/// weight `ceil(t / 8)` times, from L2 after the first.
const GEMV_TOK: usize = 8;

/// Output storage of a matmul (the kernels' `OUT_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulOut {
    /// Packed 16-bit activations (N must be even).
    Act,
    /// f32 (logits).
    F32,
    /// Added into an f32 buffer (the residual stream: `x += h @ W^T`).
    AddF32,
}

impl MatmulOut {
    /// The kernels' `OUT_MODE` override value.
    pub(crate) fn mode(self) -> f64 {
        match self {
            MatmulOut::Act => 0.0,
            MatmulOut::F32 => 1.0,
            MatmulOut::AddF32 => 2.0,
        }
    }

    /// Bytes of a `(t, cols)` output of this kind.
    pub(crate) fn bytes(self, t: usize, cols: usize) -> u64 {
        match self {
            MatmulOut::Act => act_bytes(t * cols),
            MatmulOut::F32 | MatmulOut::AddF32 => (t * cols * 4) as u64,
        }
    }
}

/// Which matmul kernel a call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatmulKernel {
    Gemv,
    Gemm,
    GemmCoop,
    SkinnyCoop,
}

impl MatmulKernel {
    fn name(self) -> &'static str {
        match self {
            MatmulKernel::Gemv => "matmul_gemv",
            MatmulKernel::Gemm => "matmul_gemm",
            MatmulKernel::GemmCoop => "matmul_gemm_coop",
            MatmulKernel::SkinnyCoop => "matmul_skinny_coop",
        }
    }
}

/// The buffers of one matmul dispatch: activations, weight (a chunk, or rows decoded into the
/// dequant scratch), output and how it is stored; the K splits' partial sums where it is split
/// (binding 4); W8A8 codes' per-token scales (binding 9, [`Matmul::record_codes`]).
#[derive(Clone, Copy)]
struct Bufs<'a> {
    x: &'a wgpu::Buffer,
    w: &'a wgpu::Buffer,
    out: &'a wgpu::Buffer,
    kind: MatmulOut,
    sums: Option<&'a wgpu::Buffer>,
    xs: Option<&'a wgpu::Buffer>,
}

/// The matmul op (pipelines per kernel, weight dtype and output kind come from the context's cache).
pub struct Matmul {
    ctx: GpuContext,
}

impl Matmul {
    /// A matmul op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Matmul { ctx: ctx.clone() }
    }

    /// The kernel for `t` tokens of a weight of this dtype and inner size `k`: the GEMV for
    /// decode steps; for more tokens the matrix-core GEMMs where the adapter has them (every
    /// dtype but f32, K % 32 == 0: quantized tiles are decoded to f16 as they are staged; the
    /// skinny one for 5-64 tokens of f16/bf16 weights, 16 or 17-64 of the repacked block
    /// formats), else the portable GEMM, which takes over from the GEMV later (at more tokens).
    fn kernel(&self, t: usize, dtype: WeightDtype, k: usize) -> MatmulKernel {
        let coop = self.ctx.coopmat() && dtype != WeightDtype::F32 && k.is_multiple_of(32);
        if dtype == WeightDtype::I8 {
            // W8A8 codes (Matmul::record_codes): the prompt GEMMs only
            return if coop { MatmulKernel::GemmCoop } else { MatmulKernel::Gemm };
        }
        let gemv_max = if coop { self.max_gemv_tokens() } else { GEMV_MAX_TOKENS };
        let float = matches!(dtype, WeightDtype::F16 | WeightDtype::Bf16);
        let skinny = SKINNY_TOKENS.contains(&t) && (float || skinny_block_from(dtype).is_some_and(|min| t >= min));
        if coop && skinny {
            MatmulKernel::SkinnyCoop
        } else if t <= gemv_max {
            MatmulKernel::Gemv
        } else if coop {
            MatmulKernel::GemmCoop
        } else {
            MatmulKernel::Gemm
        }
    }

    /// The most tokens a step gives the GEMV (and so ops::gemv_q8) on this context.
    pub fn max_gemv_tokens(&self) -> usize {
        if self.ctx.coopmat() {
            GEMV_MAX_TOKENS_COOP
        } else {
            GEMV_MAX_TOKENS
        }
    }

    /// Whether `t` tokens of a weight of this dtype and inner size `k` see its values rounded to
    /// f16: on a matrix-core GEMM (which stages weights as f16), or block weights of a long
    /// prompt decoded to f16 before the GEMM (tests round their reference the same way).
    pub fn rounds_weights_to_f16(&self, t: usize, dtype: WeightDtype, k: usize) -> bool {
        self.dequantizes(t, dtype, k)
            || matches!(self.kernel(t, dtype, k), MatmulKernel::GemmCoop | MatmulKernel::SkinnyCoop)
    }

    /// Whether `t` tokens of q/k/v weight `w` may take the RoPE epilogue
    /// ([`Matmul::record_rope`]): the skinny matrix-core GEMM, unsplit.
    pub fn fuses_rope(&self, t: usize, w: &Weight) -> bool {
        self.kernel(t, w.dtype, w.cols) == MatmulKernel::SkinnyCoop
            && w.chunks.iter().all(|c| skinny_splits(t, c.rows, w.cols) == 1)
    }

    /// Records q/k/v output columns `cols` of `x (t, K) @ W^T` on the skinny matrix-core GEMM
    /// with RoPE and the KV-cache append as its epilogue (q into `rope.dst.q`, k and v into the
    /// caches; rope_epilogue.wgsl), for batched steps. Fails unless [`Matmul::fuses_rope`].
    pub fn record_rope(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        cols: OutCols,
        rope: RopeEpilogue,
        t: usize,
    ) -> Result<()> {
        let (n, k) = (w.rows, w.cols);
        if !self.fuses_rope(t, w) {
            return Err(Error::Invalid(format!("{}: the RoPE epilogue needs the skinny matrix-core GEMM", w.name)));
        }
        cols.check(&format!("output of {}", w.name), n)?;
        check_even(&format!("{} rows", w.name), n)?;
        check_buf(&format!("input of {}", w.name), x, act_bytes(t * k))?;
        rope.check(cols, t)?;
        let [bm, bn] = skinny_tiles(t);
        let c = [
            ("W_DTYPE", w.dtype.wgsl_id()),
            ("OUT_MODE", MatmulOut::Act.mode()),
            ("BM", bm as f64),
            ("BN", bn as f64),
            ("SPLIT", 1.0),
            ("ROPE", 1.0),
        ];
        let Some(pipeline) = self.ctx.coop_pipeline(|| self.ctx.pipeline("matmul_skinny_coop", &c)) else {
            return Err(Error::Invalid(format!("{}: the matrix-core kernels did not compile", w.name)));
        };
        let [positions, table, k_cache, v_cache] = rope.buffers();
        for chunk in &w.chunks {
            let params = MatmulParams::for_chunk(k, t, chunk, cols, RopeEpilogue::params(Some(&rope)));
            let uniform = self.ctx.uniform("matmul params", &params);
            // (binding 4, the split sums, is not bound with SPLIT = 1)
            let buffers = [&uniform, x, &chunk.buf, rope.dst.q, rope.dst.q, positions, table, k_cache, v_cache];
            g.push(&self.ctx, "matmul_skinny_coop", &pipeline, &buffers, gemm_grid(&w.name, chunk.rows, bn, t, bm)?);
            g.note_bytes(chunk.buf.size());
        }
        Ok(())
    }

    /// Whether `t` tokens of a weight of this dtype and inner size `k` take the GEMV (a decode
    /// step), which ops::gemv_q8 may take over for block weights.
    pub fn takes_gemv(&self, t: usize, dtype: WeightDtype, k: usize) -> bool {
        self.kernel(t, dtype, k) == MatmulKernel::Gemv
    }

    /// Records `out (t, W.rows) = x (t, W.cols) @ W^T`, one dispatch per weight chunk.
    pub fn record(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        out: &wgpu::Buffer,
        out_kind: MatmulOut,
        t: usize,
    ) -> Result<()> {
        self.record_cols(g, x, w, MatmulDst::all(out, w.rows, out_kind), t)
    }

    /// Records `out (t, total)[.., cols of each] = x (t, K) @ [W_0; W_1 ...]^T` for weights side by
    /// side in the output (a layer's q/k/v or gate/up), as [`Matmul::record_cols`] for each —
    /// except that a long prompt's block weights of one K on matrix cores are decoded into the
    /// dequant scratch one after another and multiplied by one GEMM per scratch-full: Q4_K_M's
    /// Q6_K v projection (8B: 1,024 rows) beside its Q4_K q/k was a GEMM of its own, 32
    /// workgroups of 128 x 128 at 512 tokens for 132 SMs.
    pub fn record_parts(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        parts: &[Weight],
        out: &wgpu::Buffer,
        kind: MatmulOut,
        t: usize,
    ) -> Result<()> {
        let parts: Vec<_> = OutCols::side_by_side(parts).collect();
        let k = parts.first().map_or(0, |(w, _)| w.cols);
        if parts.len() > 1 && parts.iter().all(|(w, _)| w.cols == k && self.dequantizes(t, w.dtype, w.cols)) {
            for &(w, cols) in &parts {
                self.check_call(x, w, MatmulDst::new(out, cols, kind), t)?;
            }
            if self.record_dequantized(g, x, &parts, out, kind, t)? {
                return Ok(());
            }
        }
        for (w, cols) in parts {
            self.record_cols(g, x, w, MatmulDst::new(out, cols, kind), t)?;
        }
        Ok(())
    }

    /// Whether `t` tokens of a weight of this dtype and inner size `k` take a GEMM of its rows
    /// decoded to f16 first (a long prompt's block weights, on matrix cores or not).
    fn dequantizes(&self, t: usize, dtype: WeightDtype, k: usize) -> bool {
        let gemm = matches!(self.kernel(t, dtype, k), MatmulKernel::GemmCoop | MatmulKernel::Gemm);
        gemm && dtype.is_block() && t >= DEQUANT_TOKENS
    }

    /// Fails unless `x`, `w` and `dst` fit a matmul of `t` tokens.
    fn check_call(&self, x: &wgpu::Buffer, w: &Weight, dst: MatmulDst, t: usize) -> Result<()> {
        let MatmulDst { out, cols, kind: out_kind } = dst;
        let (n, k) = (w.rows, w.cols);
        cols.check(&format!("output of {}", w.name), n)?;
        check_even(&format!("{} columns", w.name), k)?;
        check_buf(&format!("input of {}", w.name), x, act_bytes(t * k))?;
        if out_kind == MatmulOut::Act {
            check_even(&format!("{} rows (packed output)", w.name), n)?;
        }
        check_buf(&format!("output of {}", w.name), out, out_kind.bytes(t, cols.total))
    }

    /// Records `out (t, cols.total)[.., cols] = x (t, W.cols) @ W^T`.
    pub fn record_cols(&self, g: &mut Graph, x: &wgpu::Buffer, w: &Weight, dst: MatmulDst, t: usize) -> Result<()> {
        if w.dtype == WeightDtype::I8 {
            return Err(Error::UnsupportedDtype {
                what: format!("{} in the float matmul (use ops::w8a8)", w.name),
                dtype: "I8".into(),
            });
        }
        self.record_any(g, x, w, dst, t, None)
    }

    /// Records `dst = (codes(x) @ codes(W)^T) * xs[token] * scale[column]` for the int8 weight
    /// `w` of a W8A8 prompt (ops::w8a8): `x` holds the activations' int8 codes as 16-bit floats
    /// (their quantization writes them so: ops::w8a8::takes_codes), `xs` their f32 per-token
    /// scales; the GEMM reads the weight's codes as stored
    /// (weights.wgsl's W_DTYPE 6), its products and f32 sums are exact while they stay below
    /// 2^24, and the scales multiply them where they are stored (the GEMM's epilogue, or the
    /// split sum of a GEMM split along K) — matmul_w8a8.wgsl's arithmetic.
    pub(crate) fn record_codes(
        &self,
        g: &mut Graph,
        [x, xs]: [&wgpu::Buffer; 2],
        w: &Weight,
        dst: MatmulDst,
        t: usize,
    ) -> Result<()> {
        if w.dtype != WeightDtype::I8 {
            return Err(Error::Invalid(format!("{}: W8A8 codes need an I8 weight", w.name)));
        }
        check_buf(&format!("token scales of {}", w.name), xs, (t * 4) as u64)?;
        self.record_any(g, x, w, dst, t, Some(xs))
    }

    /// [`Matmul::record_cols`] of any dtype (I8, with its codes' token scales `xs`:
    /// [`Matmul::record_codes`]).
    fn record_any(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        dst: MatmulDst,
        t: usize,
        xs: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        self.check_call(x, w, dst, t)?;
        let MatmulDst { out, cols, kind: out_kind } = dst;
        let k = w.cols;
        if t == 0 {
            return Ok(());
        }
        let kernel = self.kernel(t, w.dtype, k);
        // matrix-core tiles of 128 tokens where the prompt fills them and 48 KiB of workgroup
        // memory exist (H100, 8B shape, pp512: 6,900 tok/s vs 4,211 with 64), else 64; stages of
        // 64 K where K allows (see matmul_gemm_coop.wgsl)
        let [bm, bk] = self.coop_tiles(t, k);
        if self.dequantizes(t, w.dtype, k) && self.record_dequantized(g, x, &[(w, cols)], out, out_kind, t)? {
            return Ok(());
        }
        let gemv_tok = t.next_power_of_two().min(GEMV_TOK); // tokens per GEMV workgroup
        let (wd, om) = (("W_DTYPE", w.dtype.wgsl_id()), ("OUT_MODE", out_kind.mode()));
        // GEMV lanes per weight row: 32 for one token (H200, 8B tg128: Q4_K_M 182.0 vs 179.7 at
        // 64, bf16 186.1 vs 180.8, Q8_0 213.1 vs 212.6; 16 lanes: 167.0), 64 for several (the
        // workgroup memory holds 4 rows x 8 tokens of partial sums); 1 where barriers are costly;
        // 16 on other software adapters, whose barriers switch each 8-lane fiber in turn
        // (lavapipe, 2 cores, SmolLM2 Q4_1 tg24: 2.62 / 2.89 tok/s vs 1.68 / 2.00 at 32; a step
        // of 8 tokens 2.4 s vs 6.3 s at 64)
        let lanes = if self.ctx.barriers_costly() {
            1
        } else if self.ctx.is_software() {
            16
        } else if gemv_tok == 1 {
            32
        } else {
            64
        };
        // GEMV rows per invocation for several tokens, so each unpacked activation serves two
        // weight rows (8 tokens, aggregate tok/s, 1 / 2 / 4 rows: H200 8B bf16 599 / 680 / 496,
        // 2026-12-03; lavapipe SmolLM2 bf16 6.45 / 7.18, Q4_1 5.43 / 8.29); its partial sums
        // then take 16 KiB of workgroup memory, what every WebGPU adapter offers
        let rpt = if gemv_tok > 1 && k.is_multiple_of(8) { 2 } else { 1 };
        let [skinny_bm, skinny_bn] = skinny_tiles(t);
        // the pipeline, but the portable GEMM's, which depends on the chunk's rows; where the
        // driver cannot compile a matrix-core kernel, the portable kernel takes the call
        let pipeline = match kernel {
            MatmulKernel::Gemv => {
                let vec = if k.is_multiple_of(8) { 1.0 } else { 0.0 };
                let c = [wd, om, ("VEC", vec), ("TOK", gemv_tok as f64), ("LANES", lanes as f64), ("RPT", rpt as f64)];
                // SAFETY: bounds checks cost 4% of 8B Q4_K_M decode on the H200 (172.9 vs 179.8
                // tok/s); the GEMV reads rows < N (rows past N of a workgroup read row N - 1),
                // elements < K and tokens < T of buffers whose sizes are checked above; its
                // accumulators are TOK x RPT <= 8 x 2 and its partial sums 256 x TOK x RPT, the
                // sizes of their arrays
                Some(unsafe { self.ctx.pipeline_unchecked("matmul_gemv", &c)? })
            }
            MatmulKernel::Gemm => None,
            MatmulKernel::GemmCoop => {
                let Some(p) = self.coop_gemm([wd, om], t, k, 1) else {
                    return self.record_any(g, x, w, dst, t, xs); // the portable GEMM
                };
                Some(p)
            }
            MatmulKernel::SkinnyCoop => {
                let c = [wd, om, ("BM", skinny_bm as f64), ("BN", skinny_bn as f64), ("SPLIT", 1.0)];
                let Some(p) = self.ctx.coop_pipeline(|| self.ctx.pipeline("matmul_skinny_coop", &c)) else {
                    return self.record_any(g, x, w, dst, t, xs); // the GEMV
                };
                Some(p)
            }
        };
        // the matrix-core GEMMs' K splits where their tiles alone leave most SMs idle
        let stages = match kernel {
            MatmulKernel::SkinnyCoop => skinny_stages(t, k),
            _ => k / bk,
        };
        let splits = |rows: usize| match kernel {
            MatmulKernel::SkinnyCoop => skinny_splits(t, rows, k),
            MatmulKernel::GemmCoop => self.coop_splits(t, rows, k),
            _ => 1,
        };
        // each chunk's splits (that fit the scratch) and, where more than one, its pipeline: all
        // made before anything is recorded, so that a driver that cannot compile one leaves the
        // call whole to the GEMV or the portable GEMM
        let mut split_pipelines = Vec::with_capacity(w.chunks.len());
        for chunk in &w.chunks {
            let (split, sums) = self.fit_splits(splits(chunk.rows), stages, t, chunk.rows)?;
            let pipeline = match (split, kernel) {
                (1, _) => None,
                (_, MatmulKernel::GemmCoop) => self.coop_gemm([wd, om], t, k, split),
                _ => {
                    let c = [wd, om, ("BM", skinny_bm as f64), ("BN", skinny_bn as f64), ("SPLIT", split as f64)];
                    self.ctx.coop_pipeline(|| self.ctx.pipeline("matmul_skinny_coop", &c))
                }
            };
            if split > 1 && pipeline.is_none() {
                return self.record_any(g, x, w, dst, t, xs);
            }
            split_pipelines.push((split, sums, pipeline));
        }
        for (chunk, (split, sums, split_pipeline)) in w.chunks.iter().zip(split_pipelines) {
            let (pipeline, workgroups) = match (kernel, split_pipeline.or_else(|| pipeline.clone())) {
                (MatmulKernel::Gemv, Some(p)) => {
                    let [x, y, _] = fold_workgroups(chunk.rows.div_ceil(256 / lanes * rpt) as u32);
                    (p, [t.div_ceil(gemv_tok) as u32, x, y]) // token groups on x
                }
                (MatmulKernel::SkinnyCoop, Some(p)) => {
                    let [x, y, _] = gemm_grid(&w.name, chunk.rows, skinny_bn, t, skinny_bm)?;
                    (p, [x, y, split as u32]) // K splits on z
                }
                (MatmulKernel::GemmCoop, Some(p)) => {
                    let [x, y, _] = gemm_grid(&w.name, chunk.rows, 128, t, bm)?;
                    (p, [x, y, split as u32]) // K splits on z
                }
                // the portable GEMM, whose tiles depend on the chunk's rows
                _ => self.portable_gemm(&w.name, [wd, om], t, chunk.rows)?,
            };
            let params = MatmulParams::for_chunk(k, t, chunk, cols, EpilogueParams::default());
            let bytes = chunk.buf.size();
            let bufs = Bufs { x, w: &chunk.buf, out, kind: out_kind, sums: sums.as_ref(), xs };
            self.push(g, kernel, &pipeline, params, bufs, (workgroups, bytes))?;
        }
        Ok(())
    }

    /// The matrix-core GEMM's tiles `[bm, bk]` for `t` tokens of K `k`.
    fn coop_tiles(&self, t: usize, k: usize) -> [usize; 2] {
        let big = t >= 256 && self.ctx.limits.max_compute_workgroup_storage_size >= 49152;
        [if big { 128 } else { 64 }, if k.is_multiple_of(64) { 64 } else { 32 }]
    }

    /// The portable GEMM's pipeline and grid for `t` tokens of a weight chunk of `rows` rows
    /// (constants `wd`, `om`: its dtype and output mode). Tiles of 128 tokens (8 per thread)
    /// from 256 tokens, else 64 (lavapipe, SmolLM2 Q4_1 pp512: 11.6 vs 9.6 tok/s; H200 without
    /// matrix cores, 8B pp512 128 / 64 with the next step's loads in flight, 2026-12-04: bf16
    /// 2,318 / 2,318 vs 2,253 / 2,252, Q4_K_M 2,263 / 2,259 vs 2,199 / 2,205 — without them 64
    /// had won on bf16, 1,889 vs 1,917); x 128 columns where that still gives >= 256
    /// workgroups, else x 64. The next step's loads go out early where the context says so
    /// ([`GpuContext::gemm_prefetch`], matmul_gemm.wgsl).
    fn portable_gemm(
        &self,
        name: &str,
        [wd, om]: [(&str, f64); 2],
        t: usize,
        rows: usize,
    ) -> Result<(Arc<Kernel>, [u32; 3])> {
        let bt = if t >= 256 { 128 } else { 64 };
        let bn = if rows.div_ceil(128) * t.div_ceil(bt) < 256 { 64 } else { 128 };
        let prefetch = if self.ctx.gemm_prefetch { 1.0 } else { 0.0 };
        let c = [wd, om, ("BN", bn as f64), ("BT", bt as f64), ("PREFETCH", prefetch)];
        let pipeline = self.ctx.pipeline("matmul_gemm", &c)?;
        let [x, y, z] = gemm_grid(name, rows, bn, t, bt)?;
        Ok((pipeline, [y, x, z])) // token tiles on x (see matmul_gemm.wgsl)
    }

    /// Records a long prompt's matmul of block weights of one K, side by side in the output, as in
    /// [`Matmul::record_cols`]: rows decoded to f16 once (ops::dequant) one weight after another
    /// into the context's scratch, and each scratch-full (or run of adjacent output columns)
    /// multiplied by the f16 matrix-core GEMM (the portable GEMM where the adapter has none).
    /// False (nothing recorded) where not even one row of K fits the scratch.
    fn record_dequantized(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        parts: &[(&Weight, OutCols)],
        out: &wgpu::Buffer,
        out_kind: MatmulOut,
        t: usize,
    ) -> Result<bool> {
        let Some(&(w0, cols0)) = parts.first() else {
            return Ok(true);
        };
        let scratch = self.ctx.dequant_scratch()?;
        let k = w0.cols;
        let [bm, bk] = self.coop_tiles(t, k);
        // (pieces of equal size instead of full ones and a remainder: 8B Q4_K_M pp512
        // 7,617 / 7,591 vs 7,862 tok/s, H200, two calls)
        // (whole tiles of 128 rows where they fit, else what fits)
        let fit = scratch.size() as usize / (2 * k);
        let piece = if fit >= 128 { fit / 128 * 128 } else { fit };
        if piece == 0 {
            return Ok(false);
        }
        let c = [("W_DTYPE", WeightDtype::F16.wgsl_id()), ("OUT_MODE", out_kind.mode())];
        // the f16 matrix-core GEMM, or the portable one where the adapter has none (or its
        // driver cannot compile it)
        let coop = match self.kernel(t, WeightDtype::F16, k) {
            MatmulKernel::GemmCoop => self.coop_gemm(c, t, k, 1),
            _ => None,
        };
        let dequant = Dequant::new(&self.ctx);
        // the GEMM of `rows` decoded rows whose output columns start at `col`, its K split as
        // record_cols splits it (an uncompiled split pipeline: unsplit)
        let gemm = |g: &mut Graph, [rows, col]: [usize; 2]| -> Result<()> {
            if rows == 0 {
                return Ok(());
            }
            let params = MatmulParams::new(k, t, rows, OutCols { first: col, total: cols0.total });
            let bytes = (rows * k * 2) as u64; // the decoded rows it reads
            let Some(pipeline) = &coop else {
                let (pipeline, grid) = self.portable_gemm(&w0.name, c, t, rows)?;
                let bufs = Bufs { x, w: &scratch, out, kind: out_kind, sums: None, xs: None };
                return self.push(g, MatmulKernel::Gemm, &pipeline, params, bufs, (grid, bytes));
            };
            let [gx, gy, _] = gemm_grid(&w0.name, rows, 128, t, bm)?;
            let (split, sums) = self.fit_splits(self.coop_splits(t, rows, k), k / bk, t, rows)?;
            let split_pipeline = match split {
                1 => None,
                _ => self.coop_gemm(c, t, k, split),
            };
            match (split_pipeline, &sums) {
                (Some(sp), Some(sums)) => {
                    let bufs = Bufs { x, w: &scratch, out, kind: out_kind, sums: Some(sums), xs: None };
                    self.push(g, MatmulKernel::GemmCoop, &sp, params, bufs, ([gx, gy, split as u32], bytes))
                }
                _ => {
                    let bufs = Bufs { x, w: &scratch, out, kind: out_kind, sums: None, xs: None };
                    self.push(g, MatmulKernel::GemmCoop, pipeline, params, bufs, ([gx, gy, 1], bytes))
                }
            }
        };
        let mut filled = [0, 0]; // rows in the scratch, the output column of its first
        for &(w, cols) in parts {
            for chunk in &w.chunks {
                let mut r0 = 0;
                while r0 < chunk.rows {
                    let col = cols.first + chunk.row0 + r0;
                    if filled[0] == piece || filled[1] + filled[0] != col {
                        gemm(g, filled)?;
                        filled = [0, col];
                    }
                    let rows = (piece - filled[0]).min(chunk.rows - r0);
                    dequant.record(g, w, chunk, r0..r0 + rows, &scratch, filled[0])?;
                    filled[0] += rows;
                    r0 += rows;
                }
            }
        }
        gemm(g, filled)?;
        Ok(true)
    }

    /// The matrix-core GEMM's pipeline (constants `wd`, `om`: its dtype and output mode) for `t`
    /// tokens of K `k` ([`Matmul::coop_tiles`]) in `split` K splits, or None where the context
    /// has none.
    fn coop_gemm(&self, [wd, om]: [(&str, f64); 2], t: usize, k: usize, split: usize) -> Option<Arc<Kernel>> {
        let [bm, bk] = self.coop_tiles(t, k);
        let c = [wd, om, ("BM", bm as f64), ("BK", bk as f64), ("SPLIT", split as f64)];
        // SAFETY: bounds checks cost 1.7x around the cooperative loads; every index is in
        // bounds by construction: global reads guarded by t < T, n < N, K % 32 == 0 (checked by
        // `kernel`), workgroup-memory offsets inside the staged tiles, writes guarded per element
        self.ctx.coop_pipeline(|| unsafe { self.ctx.pipeline_unchecked("matmul_gemm_coop", &c) })
    }

    /// The K splits of the matrix-core GEMM for `t` tokens over `rows` weight rows of K `k`
    /// (its tiles of `coop_tiles` x 128 columns, see [`k_splits`]), before the split scratch
    /// has its say ([`Matmul::fit_splits`]).
    fn coop_splits(&self, t: usize, rows: usize, k: usize) -> usize {
        let [bm, bk] = self.coop_tiles(t, k);
        k_splits(rows.div_ceil(128) * t.div_ceil(bm), k / bk)
    }

    /// Pushes one dispatch of `kernel` over `bufs` with these params, on `grid`, noting the
    /// weight bytes it streams (for profiles; on the GEMM, not on a split sum after it); with K
    /// splits (grid z, `bufs.sums`), the splits' partial sums into `sums`, then their sum stored
    /// into `bufs.out` as `bufs.kind` says, in the columns `params` names.
    fn push(
        &self,
        g: &mut Graph,
        kernel: MatmulKernel,
        pipeline: &Arc<Kernel>,
        params: MatmulParams,
        bufs: Bufs,
        (grid, bytes): ([u32; 3], u64),
    ) -> Result<()> {
        let Bufs { x, w, out, kind, sums, xs } = bufs;
        let uniform = self.ctx.uniform("matmul params", &params);
        // (bindings a pipeline does not use are left out: sums without splits, 5..8 (the RoPE
        // epilogue's, not recorded here), xs but for codes)
        let bufs = [&uniform, x, w, out, sums.unwrap_or(out), x, x, x, x, xs.unwrap_or(x)];
        g.push(&self.ctx, kernel.name(), pipeline, &bufs, grid);
        g.note_bytes(bytes);
        let Some(sums) = sums else {
            return Ok(());
        };
        let cols = OutCols { first: params.out_offset as usize, total: params.out_stride as usize };
        let [split, t, n] = [grid[2], params.t, params.n].map(|v| v as usize);
        let scales = xs.map(|xs| CodeScales { xs, w, scale_off: params.d_off as usize });
        SplitSum::new(&self.ctx).record(g, sums, MatmulDst::new(out, cols, kind), [split, t, n], scales)
    }

    /// `want` K splits of `stages` stages as many as the split scratch holds for `t` tokens x
    /// `rows` columns (none empty), and the scratch where that is more than one.
    fn fit_splits(&self, want: usize, stages: usize, t: usize, rows: usize) -> Result<(usize, Option<wgpu::Buffer>)> {
        if want <= 1 {
            return Ok((1, None));
        }
        let sums = self.ctx.split_scratch()?;
        match nonempty_splits(stages, want.min(sums.size() as usize / (t * rows * 4))) {
            1 => Ok((1, None)),
            split => Ok((split, Some(sums))),
        }
    }
}
