//! SwiGLU: `out = silu(gate) * up` from the gate/up projection's output. Kernel:
//! shaders/swiglu.wgsl.

use super::{act_bytes, check_buf, check_even, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in swiglu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SwigluParams {
    /// Intermediate size I.
    pub inter: u32,
    /// Tokens T.
    pub tokens: u32,
    /// 1: `gu` columns alternate gate, up; 0: `gu` is `[gate | up]`.
    pub interleaved: u32,
    /// Padding.
    pub _pad: u32,
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

    /// Records `out (t, I) = silu(gate) * up` from `gu (t, 2I)`: columns alternating gate, up when
    /// `interleaved`, else `[gate | up]`.
    pub fn record(
        &self,
        g: &mut Graph,
        gu: &wgpu::Buffer,
        out: &wgpu::Buffer,
        inter: usize,
        t: usize,
        interleaved: bool,
    ) -> Result<()> {
        check_even("intermediate size", inter)?;
        check_buf("gate/up", gu, act_bytes(2 * t * inter))?;
        check_buf("swiglu output", out, act_bytes(t * inter))?;
        let pipeline = self.ctx.pipeline("swiglu", &[])?;
        let params = SwigluParams { inter: inter as u32, tokens: t as u32, interleaved: interleaved as u32, _pad: 0 };
        let uniform = self.ctx.uniform("swiglu params", &params);
        g.push(&self.ctx, "swiglu", &pipeline, &[&uniform, gu, out], per_item(t * inter / 2));
        Ok(())
    }
}
