//! `out = x @ W^T` for decode steps with GGUF block weights (every type the engine reads: Q8_0,
//! the K-quants, Q4/Q5_0/1, the i-quants, TQ1_0/TQ2_0, MXFP4, NVFP4) on int8 activations, as
//! llama.cpp's MMVQ does: the input is quantized per block of 32
//! (shaders/quant_act.wgsl or shaders/rms_norm.wgsl with BLOCKS, into a [`QuantScratch`]), then
//! shaders/matmul_gemv_q8.wgsl multiplies the weights' integer codes with it four at a time
//! (`dot4I8Packed`). The f16-activation GEMV (ops::matmul) converts every weight and every
//! activation to f32 instead, and is bound by those conversions on GPUs.

use super::matmul::{MatmulOut, MatmulParams};
use super::rope::RopeEpilogue;
use super::w8a8::QuantScratch;
use super::{check_buf, check_even, MatmulDst, OutCols};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Tokens per workgroup at most (the kernel's `TOK`): a step of `t` tokens reads and decodes each
/// weight block `ceil(t / 16)` times, from L2 after the first (H200, 8B Q4_K_M, aggregate tg32 of
/// 16 / 32 sequences: 977 / 1,100 tok/s at 8 tokens per workgroup, 1,002 / 1,205 at 16 — measured
/// with all 16 tokens' partial sums in workgroup memory at once; the kernel now reduces them 8 at
/// a time, in 8 KiB, so the IQ4_XS table still fits WebGPU's 16 KiB).
const TOK: usize = 16;

/// Bytes of the int8 words of `t` rows of `k` activations quantized per block of 32.
pub fn xq_bytes(t: usize, k: usize) -> u64 {
    (t * k) as u64
}

/// Bytes of the per-block `(d, s)` pairs of `t` rows of `k` activations.
pub fn xs_bytes(t: usize, k: usize) -> u64 {
    (t * k.div_ceil(32) * 8) as u64
}

/// Workgroups of the per-block quantizers (quant_act.wgsl, rms_norm.wgsl): x = groups of 256
/// int8 words of a row of `k` values, y = the `t` tokens.
pub(crate) fn quant_grid(k: usize, t: usize) -> Result<[u32; 3]> {
    if t > 65_535 {
        return Err(Error::Invalid(format!("{t} tokens quantized per block: at most 65535 at once")));
    }
    Ok([(k / 4).div_ceil(256) as u32, t as u32, 1])
}

/// The int8-activation GEMV op.
pub struct GemvQ8 {
    ctx: GpuContext,
    /// Stand-ins for the RoPE epilogue's bindings when it is off.
    unused: [wgpu::Buffer; 3],
}

impl GemvQ8 {
    /// The op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        GemvQ8 { ctx: ctx.clone(), unused: RopeEpilogue::stand_ins(ctx) }
    }

    /// Whether the kernel reads weights of this dtype.
    pub fn supports(dtype: WeightDtype) -> bool {
        // every type read as stored: weights.wgsl decodes each to int8 codes (stored_c8, or the
        // kernel's nibble tables)
        matches!(
            dtype,
            WeightDtype::Q8_0
                | WeightDtype::Q4_0
                | WeightDtype::Q4_1
                | WeightDtype::Q4K
                | WeightDtype::Q6K
                | WeightDtype::Stored(_)
        )
    }

    /// Whether a step of `t` tokens should take this kernel for `w`: a dtype it reads, a decode
    /// step that the plain matmul would give its GEMV (`gemv`), and the context's
    /// [`GpuContext::int8_dot`].
    pub fn takes(&self, w: &Weight, gemv: bool) -> bool {
        self.ctx.int8_dot && gemv && Self::supports(w.dtype) && w.cols.is_multiple_of(32)
    }

    /// Records `out (t, cols.total)[.., cols] = x (t, W.cols) @ W^T` from activations already
    /// quantized per block into `q` (ops::w8a8 with blocks, or ops::rms_norm).
    pub fn record_cols(&self, g: &mut Graph, q: &QuantScratch, w: &Weight, dst: MatmulDst, t: usize) -> Result<()> {
        self.record(g, q, w, dst, None, t)
    }

    /// Records columns `cols` of a decode step's q/k/v projection (q/k rows holding each rotary
    /// pair side by side) with RoPE and the KV-cache append as epilogue: q rotated into
    /// `rope.dst.q`, k rotated and v into the caches at each token's (slot, position) — what
    /// [`record_cols`](Self::record_cols) then ops::rope do, in one dispatch.
    pub fn record_rope(
        &self,
        g: &mut Graph,
        q: &QuantScratch,
        w: &Weight,
        cols: OutCols,
        rope: RopeEpilogue,
        t: usize,
    ) -> Result<()> {
        rope.check(cols, t)?;
        self.record(g, q, w, MatmulDst::new(rope.dst.q, cols, MatmulOut::Act), Some(rope), t)
    }

    fn record(
        &self,
        g: &mut Graph,
        q: &QuantScratch,
        w: &Weight,
        dst: MatmulDst,
        rope: Option<RopeEpilogue>,
        t: usize,
    ) -> Result<()> {
        let MatmulDst { out, cols, kind: out_kind } = dst;
        let (n, k) = (w.rows, w.cols);
        if !Self::supports(w.dtype) {
            return Err(Error::UnsupportedDtype {
                what: format!("{} in the int8-activation GEMV", w.name),
                dtype: w.dtype.name().into(),
            });
        }
        if !k.is_multiple_of(32) {
            return Err(Error::shape(&w.name, "columns in whole blocks of 32", k));
        }
        cols.check(&format!("output of {}", w.name), n)?;
        if out_kind == MatmulOut::Act {
            check_even(&format!("{} rows (packed output)", w.name), n)?;
        }
        if rope.is_none() {
            check_buf(&format!("output of {}", w.name), out, out_kind.bytes(t, cols.total))?;
        }
        check_buf("int8 activation scratch", &q.xq, xq_bytes(t, k))?;
        check_buf("int8 activation scales", &q.xs, xs_bytes(t, k))?;
        if t == 0 {
            return Ok(());
        }
        let tok = t.next_power_of_two().min(TOK);
        // 32 lanes per row for any number of tokens, so that a token's sum is the same alone or
        // in a batch (H200, 8B Q4_K_M tg128 with one token: 231.0 tok/s at 32 lanes, 220.5 at
        // 64, 202.8 at 16); 16 on software adapters, as ops::matmul's GEMV
        let lanes = if self.ctx.is_software() { 16 } else { 32 };
        // two rows per thread for groups of 16 tokens, so each token's activation block is loaded
        // once for both rows, in workgroups of 128 threads that keep 256 / lanes rows (H200, 8B
        // Q4_K_M, aggregate tok/s, one / two rows: 12 sequences 802-808 / 875-885, 16: 906-910 /
        // 1,042-1,060; 8B Q8_0 at 12: 804 / 867; 1B Q4_K_M at 16: 3,324 / 3,401; 256 threads of
        // two rows each: 16 sequences 1,028-1,038). Groups of 2-8 tokens keep one (8 sequences
        // 881-889 / 833-843; four rows there: 606; with the activations' block halves stored
        // apart, 2026-12-04: 926-933 / 765-772); a token's sum is the same either way
        let rpt = if tok == TOK { 2 } else { 1 };
        let rows = 256 / lanes / rpt; // threads per lane index
        let c = [
            ("W_DTYPE", w.dtype.wgsl_id()),
            ("OUT_MODE", out_kind.mode()),
            ("TOK", tok as f64),
            ("LANES", lanes as f64),
            ("RPT", rpt as f64),
            ("ROWS", rows as f64),
            ("ROPE", rope.is_some() as u8 as f64),
        ];
        let pipeline = if rope.is_some() {
            // the RoPE epilogue writes the KV cache at positions read from a buffer: checked
            self.ctx.pipeline("matmul_gemv_q8", &c)?
        } else {
            // SAFETY: bounds checks cost 3.7% of 8B Q4_K_M decode on the H200 (279.2 vs 289.5
            // tok/s, 2026-12-03); without the epilogue every index is in bounds: weight rows < N
            // (clamped), activation blocks of tokens <= T - 1 (buffers checked above), partial
            // sums PART_TOK x RPT x 256 = 2048 (the array's size), output writes t < T and row <
            // N, the IQ4_XS pair table indexed by a byte
            unsafe { self.ctx.pipeline_unchecked("matmul_gemv_q8", &c)? }
        };
        let [positions, table, k_cache, v_cache] = RopeEpilogue::bindings(rope.as_ref(), &self.unused);
        for chunk in &w.chunks {
            let params = MatmulParams::for_chunk(k, t, chunk, cols, RopeEpilogue::params(rope.as_ref()));
            let uniform = self.ctx.uniform("matmul params", &params);
            let [x, y, _] = fold_workgroups(chunk.rows.div_ceil(256 / lanes) as u32);
            let grid = [t.div_ceil(tok) as u32, x, y]; // token groups on x
            let buffers = [&uniform, &q.xq, &chunk.buf, out, &q.xs, positions, table, k_cache, v_cache];
            g.push(&self.ctx, "matmul_gemv_q8", &pipeline, &buffers, grid);
            g.note_bytes(chunk.buf.size());
        }
        Ok(())
    }
}
