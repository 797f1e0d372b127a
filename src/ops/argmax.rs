//! Argmax over each row of f32 logits (greedy sampling on the GPU). Kernel: shaders/argmax.wgsl.

use super::check_buf;
use crate::error::Result;
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Mirrors `Params` in argmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ArgmaxParams {
    /// Row length V.
    pub v: u32,
    /// Rows T.
    pub t: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// The argmax op.
pub struct Argmax {
    ctx: GpuContext,
}

impl Argmax {
    /// An argmax op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Argmax { ctx: ctx.clone() }
    }

    /// Records `out (t) u32 = argmax(logits (t, v) f32)`.
    pub fn record(&self, g: &mut Graph, logits: &wgpu::Buffer, out: &wgpu::Buffer, v: usize, t: usize) -> Result<()> {
        check_buf("argmax logits", logits, (t * v * 4) as u64)?;
        check_buf("argmax output", out, (t * 4) as u64)?;
        let pipeline = self.ctx.pipeline("argmax", &[])?;
        let uniform = self.ctx.uniform("argmax params", &ArgmaxParams { v: v as u32, t: t as u32, _pad: [0; 2] });
        g.push(&self.ctx, "argmax", &pipeline, &[&uniform, logits, out], fold_workgroups(t as u32));
        Ok(())
    }
}
