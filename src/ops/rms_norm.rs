//! RMSNorm of the f32 residual stream into packed activations:
//! `out = x / sqrt(mean(x^2) + eps) * weight`, or straight into int8 per-token quantized
//! activations for W8A8 linears. Kernel: shaders/rms_norm.wgsl.

use super::w8a8::{xq_layout, QuantGrain, QuantScratch};
use super::{act_bytes, check_buf, check_even};
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Mirrors `Params` in rms_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RmsNormParams {
    /// Row length C.
    pub c: u32,
    /// Rows T.
    pub t: u32,
    /// Epsilon inside the square root.
    pub eps: f32,
    /// Padding.
    pub _pad: u32,
}

/// The RMSNorm op.
pub struct RmsNorm {
    ctx: GpuContext,
    /// Bound as the (unused) scale output when not quantizing.
    dummy: wgpu::Buffer,
}

impl RmsNorm {
    /// An RMSNorm op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        let dummy = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("rms_norm scales (unused)"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        RmsNorm { ctx: ctx.clone(), dummy }
    }

    /// Records `out (t, C) = rms_norm(x (t, C) f32) * w (C)`.
    pub fn record(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        out: &wgpu::Buffer,
        t: usize,
        eps: f32,
    ) -> Result<()> {
        check_buf("rms_norm output", out, act_bytes(t * w.cols))?;
        self.dispatch(g, x, w, out, None, t, eps)
    }

    /// Records the RMSNorm of `x (t, C)` quantized to int8, one scale per `grain`: for W8A8
    /// linears (per token) or the block-weight GEMV (per block of 32): `q.xq (t, C/4)` words and
    /// `q.xs` scales, as [`crate::ops::w8a8::W8a8::quantize_from`] would give for the packed
    /// normalized activations. C must be a multiple of 4 (of 32 for blocks).
    #[allow(clippy::too_many_arguments)]
    pub fn record_quant(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        grain: QuantGrain,
        q: &QuantScratch,
        t: usize,
        eps: f32,
    ) -> Result<()> {
        let (per, scale_bytes) = match grain {
            QuantGrain::Token => (4, (t * 4) as u64),
            QuantGrain::Block => (32, crate::ops::gemv_q8::xs_bytes(t, w.cols)),
        };
        if !w.cols.is_multiple_of(per) {
            return Err(Error::shape(&w.name, format!("a multiple of {per} values (int8 quantization)"), w.cols));
        }
        check_buf("int8 activation scratch", &q.xq, xq_layout(&self.ctx, grain, t, w.cols).1)?;
        check_buf("int8 activation scales", &q.xs, scale_bytes)?;
        self.dispatch(g, x, w, &q.xq, Some((&q.xs, grain)), t, eps)
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        w: &Weight,
        out: &wgpu::Buffer,
        scales: Option<(&wgpu::Buffer, QuantGrain)>,
        t: usize,
        eps: f32,
    ) -> Result<()> {
        let c = w.cols;
        if w.rows != 1 || w.chunks.len() != 1 || w.dtype.is_block() || w.dtype == crate::WeightDtype::I8 {
            return Err(Error::shape(&w.name, "a vector (C)", format!("{}x{}", w.rows, w.cols)));
        }
        check_even(&w.name, c)?;
        check_buf("rms_norm input", x, (t * c * 4) as u64)?;
        let quant = match scales {
            None => 0.0,
            Some((_, QuantGrain::Token)) => 1.0,
            Some((_, QuantGrain::Block)) => 2.0,
        };
        // (W8A8 activations for the f16 GEMMs: as 16-bit codes)
        let codes = scales.is_some_and(|(_, grain)| xq_layout(&self.ctx, grain, t, c).0);
        let consts = [("W_DTYPE", w.dtype.wgsl_id()), ("QUANT", quant), ("CODES", if codes { 1.0 } else { 0.0 })];
        let pipeline = self.ctx.pipeline("rms_norm", &consts)?;
        let params = RmsNormParams { c: c as u32, t: t as u32, eps, _pad: 0 };
        let uniform = self.ctx.uniform("rms_norm params", &params);
        let bufs = [&uniform, x, &w.chunks[0].buf, out, scales.map_or(&self.dummy, |s| s.0)];
        let grid = match scales {
            // a workgroup per 256 int8 words of a row and token
            Some((_, QuantGrain::Block)) => super::gemv_q8::quant_grid(c, t)?,
            _ => fold_workgroups(t as u32),
        };
        g.push(&self.ctx, "rms_norm", &pipeline, &bufs, grid);
        Ok(())
    }
}
