//! Decode GEMV with the preceding RMSNorm fused in: `out = rms_norm(x) * g @ W^T`, reading the f32
//! residual stream directly; optionally with the SwiGLU as epilogue of a fused gate/up weight, or
//! (subgroup kernel) RoPE and the KV-cache append as epilogue of the q/k/v weight.
//! Kernels: shaders/matmul_gemv_norm.wgsl, or matmul_gemv_norm_sg.wgsl with subgroups.

use super::rope::{EpilogueParams, RopeEpilogue};
use super::{act_bytes, check_buf, check_even, OutCols};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Up to this many tokens take the fused norm-GEMV (it reads the weight once per token); a
/// step of more tokens writes the norm once and takes the multi-token GEMV, which reads it once
/// for up to 8 (H200, 8B, batched decode of 4 sequences: Q4_K_M 293 tok/s that way, 205 fused;
/// bf16 417 / 307; 2 sequences: even).
pub const MAX_TOKENS: usize = 1;

/// Mirrors `Params` in gemv_norm_common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulNormParams {
    /// Inner dimension K (a multiple of 8).
    pub k: u32,
    /// Rows of W in this chunk.
    pub n: u32,
    /// Columns of the output.
    pub out_stride: u32,
    /// First output column written by this chunk.
    pub out_offset: u32,
    /// Block formats: word offset of the scales.
    pub d_off: u32,
    /// Block formats: word offset of the minimums.
    pub m_off: u32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// RoPE epilogue's shape (zeros without it).
    pub rope: EpilogueParams,
    /// Padding.
    pub _pad: u32,
}

/// What the fused norm-GEMV writes.
#[derive(Clone, Copy)]
pub enum NormEpilogue<'a> {
    /// `y` into these columns of a packed output `(t, cols.total)`.
    Cols(OutCols),
    /// W's rows alternate gate and up (a fused gate/up weight): `out (t, W.rows / 2) =
    /// silu(y[:, 0::2]) * y[:, 1::2]`.
    Swiglu,
    /// W is (these columns of) a q/k/v projection whose q/k rows hold each rotary pair side by
    /// side: `y`'s q and k pairs rotated at each token's position into `dst.q` and the K cache,
    /// its v into the V cache (what ops::rope does; subgroup kernel only, see
    /// [`MatmulNorm::fuses_rope`]). `out` is unused.
    Rope(OutCols, RopeEpilogue<'a>),
}

/// The fused norm + GEMV op.
pub struct MatmulNorm {
    ctx: GpuContext,
    /// Stand-ins for the RoPE epilogue's bindings when it is off: read-only, K cache, V cache.
    unused: [wgpu::Buffer; 3],
}

impl MatmulNorm {
    /// A fused norm + GEMV op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        MatmulNorm { ctx: ctx.clone(), unused: RopeEpilogue::stand_ins(ctx) }
    }

    /// Whether [`NormEpilogue::Rope`] is available (the subgroup kernel has it).
    pub fn fuses_rope(&self) -> bool {
        self.ctx.subgroups
    }

    /// Whether a decode step should take the fused kernel for this weight after this norm: float
    /// weights everywhere it [`MatmulNorm::supports`] them; GGUF block weights only on software
    /// adapters (lavapipe, SwiftShader), where the dispatches and barriers it saves dominate —
    /// on GPUs the fused form reads the f32 residual stream and the norm weight beside every
    /// 4-bit weight and is bound by those loads, so there the norm is written once and the plain
    /// GEMV reads the blocks (H200, 8B Q4_K_M decode: 174 tok/s unfused, 139 fused; 1B 635 /
    /// 576; bf16 fused 188, unfused 184; lavapipe, SmolLM2 Q4_1: 1.27 unfused, 2.35 fused;
    /// 2026-12-02; with the 32-lane GEMV there: 4.8–5.0 unfused, 5.9–6.1 fused).
    pub fn fuses(&self, norm: &Weight, w: &Weight) -> bool {
        Self::supports(norm, w) && !self.ctx.barriers_costly() && (w.dtype.is_float() || self.ctx.is_software())
    }

    /// Whether the fused kernel handles this weight (decode-sized inputs are checked by the caller).
    pub fn supports(norm: &Weight, w: &Weight) -> bool {
        w.cols.is_multiple_of(8)
            && w.dtype != WeightDtype::I8
            && !norm.dtype.is_block()
            && norm.dtype != WeightDtype::I8
    }

    /// Records `y = (rms_norm(x (t, C) f32) * norm (C)) @ W^T` into `out`, as `epilogue` says.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        norm: &Weight,
        w: &Weight,
        out: &wgpu::Buffer,
        epilogue: NormEpilogue,
        t: usize,
        eps: f32,
    ) -> Result<()> {
        let (cols, swiglu, rope) = match epilogue {
            NormEpilogue::Cols(cols) => {
                cols.check(&format!("output of {}", w.name), w.rows)?;
                (cols, false, None)
            }
            NormEpilogue::Swiglu => {
                if !w.rows.is_multiple_of(4) || w.chunks.iter().any(|c| !c.row0.is_multiple_of(4)) {
                    return Err(Error::shape(&w.name, "a multiple of 4 rows (gate, up pairs)", w.rows));
                }
                (OutCols::all(w.rows / 2), true, None)
            }
            NormEpilogue::Rope(cols, r) => {
                cols.check(&format!("output of {}", w.name), w.rows)?;
                if !self.fuses_rope() {
                    return Err(Error::Invalid("the RoPE epilogue needs the subgroup norm-GEMV".into()));
                }
                r.check(cols, t)?;
                (cols, false, Some(r))
            }
        };
        if rope.is_none() {
            check_buf(&format!("output of {}", w.name), out, act_bytes(t * cols.total))?;
        }
        let (n, k) = (w.rows, w.cols);
        if !Self::supports(norm, w) || norm.cols != k || norm.chunks.len() != 1 {
            return Err(Error::shape(
                format!("{} after {}", w.name, norm.name),
                "a float norm of K values, K % 8 == 0, float or GGUF-block weight",
                format!("K {k}, {} {}", norm.name, norm.dtype.name()),
            ));
        }
        check_even(&format!("{} rows", w.name), n)?;
        check_buf("fused norm input", x, (t * k * 4) as u64)?;
        for chunk in &w.chunks {
            let mut constants = vec![
                ("W_DTYPE", w.dtype.wgsl_id()),
                ("G_DTYPE", norm.dtype.wgsl_id()),
                ("SWIGLU", swiglu as u8 as f64),
            ];
            if self.ctx.subgroups {
                constants.push(("ROPE", rope.is_some() as u8 as f64));
            }
            let rows_per_wg = if self.ctx.subgroups {
                if swiglu {
                    16
                } else {
                    8
                }
            } else {
                // 8 rows per workgroup share one row statistic where that still leaves >= 512 workgroups
                let rows = if chunk.rows >= 4096 { 8 } else { 4 };
                constants.push(("ROWS", rows as f64));
                rows
            };
            let name = if self.ctx.subgroups { "matmul_gemv_norm_sg" } else { "matmul_gemv_norm" };
            let pipeline = self.ctx.pipeline(name, &constants)?;
            let params = MatmulNormParams {
                k: k as u32,
                n: chunk.rows as u32,
                out_stride: cols.total as u32,
                out_offset: (cols.first + chunk.row0) as u32,
                d_off: chunk.d_off,
                m_off: chunk.m_off,
                eps,
                rope: RopeEpilogue::params(rope.as_ref()),
                _pad: 0,
            };
            let uniform = self.ctx.uniform("matmul_norm params", &params);
            let [wx, wy, _] = fold_workgroups(chunk.rows.div_ceil(rows_per_wg) as u32);
            let [tok, table, k_cache, v_cache] = RopeEpilogue::bindings(rope.as_ref(), &self.unused);
            let buffers = match rope {
                Some(r) => vec![&uniform, x, &chunk.buf, r.dst.q, &norm.chunks[0].buf, tok, table, k_cache, v_cache],
                None if self.ctx.subgroups => {
                    vec![&uniform, x, &chunk.buf, out, &norm.chunks[0].buf, tok, table, k_cache, v_cache]
                }
                None => vec![&uniform, x, &chunk.buf, out, &norm.chunks[0].buf],
            };
            g.push(&self.ctx, "matmul_gemv_norm", &pipeline, &buffers, [wx, wy, t as u32]);
            g.note_bytes(chunk.buf.size());
        }
        Ok(())
    }
}
