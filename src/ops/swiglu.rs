//! SwiGLU: `out = silu(gate) * up`. Kernel: shaders/swiglu.wgsl.

use super::{act_bytes, check_buf, check_even, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in swiglu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SwigluParams {
    /// Packed words (elements / 2).
    pub words: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// The SwiGLU op.
pub struct Swiglu {
    ctx: GpuContext,
}

impl Swiglu {
    /// A SwiGLU op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Swiglu { ctx: ctx.clone() }
    }

    /// Records `out = silu(gate) * up` over `n` elements.
    pub fn record(
        &self,
        g: &mut Graph,
        gate: &wgpu::Buffer,
        up: &wgpu::Buffer,
        out: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        check_even("swiglu length", n)?;
        for (what, b) in [("gate", gate), ("up", up), ("swiglu output", out)] {
            check_buf(what, b, act_bytes(n))?;
        }
        let pipeline = self.ctx.pipeline("swiglu", &[])?;
        let uniform = self.ctx.uniform("swiglu params", &SwigluParams { words: (n / 2) as u32, _pad: [0; 3] });
        g.push(&self.ctx, "swiglu", &pipeline, &[&uniform, gate, up, out], per_item(n / 2));
        Ok(())
    }
}
