//! RMSNorm of the f32 residual stream into packed activations:
//! `out = x / sqrt(mean(x^2) + eps) * weight`. Kernel: shaders/rms_norm.wgsl.

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
}

impl RmsNorm {
    /// An RMSNorm op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        RmsNorm { ctx: ctx.clone() }
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
        let c = w.cols;
        if w.rows != 1 || w.chunks.len() != 1 || w.dtype.is_block() || w.dtype == crate::WeightDtype::I8 {
            return Err(Error::shape(&w.name, "a vector (C)", format!("{}x{}", w.rows, w.cols)));
        }
        check_even(&w.name, c)?;
        check_buf("rms_norm input", x, (t * c * 4) as u64)?;
        check_buf("rms_norm output", out, act_bytes(t * c))?;
        let pipeline = self.ctx.pipeline("rms_norm", &[("W_DTYPE", w.dtype.wgsl_id())])?;
        let params = RmsNormParams { c: c as u32, t: t as u32, eps, _pad: 0 };
        let uniform = self.ctx.uniform("rms_norm params", &params);
        g.push(&self.ctx, "rms_norm", &pipeline, &[&uniform, x, &w.chunks[0].buf, out], fold_workgroups(t as u32));
        Ok(())
    }
}
