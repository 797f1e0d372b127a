//! Residual add in place: `x (f32) += y (packed activations)`. Kernel: shaders/add.wgsl.

use super::{act_bytes, check_buf, check_even, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in add.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddParams {
    /// Packed words (elements / 2).
    pub words: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// The residual-add op.
pub struct Add {
    ctx: GpuContext,
}

impl Add {
    /// An add op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Add { ctx: ctx.clone() }
    }

    /// Records `x += y` over `n` elements (x f32, y packed).
    pub fn record(&self, g: &mut Graph, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Result<()> {
        check_even("add length", n)?;
        check_buf("add x", x, (n * 4) as u64)?;
        check_buf("add y", y, act_bytes(n))?;
        let pipeline = self.ctx.pipeline("add", &[])?;
        let uniform = self.ctx.uniform("add params", &AddParams { words: (n / 2) as u32, _pad: [0; 3] });
        g.push(&self.ctx, "add", &pipeline, &[&uniform, x, y], per_item(n / 2));
        Ok(())
    }
}
