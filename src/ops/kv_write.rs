//! Appends tokens' values to the KV cache at their (slot, position). Kernel: shaders/kv_write.wgsl.

use super::{act_bytes, check_buf, check_even, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in kv_write.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KvWriteParams {
    /// Words per token row (Hkv * D / 2).
    pub row_words: u32,
    /// Tokens T.
    pub tokens: u32,
    /// Cache positions per slot.
    pub ctx: u32,
    /// Padding.
    pub _pad: u32,
}

/// The KV-write op.
pub struct KvWrite {
    ctx: GpuContext,
}

impl KvWrite {
    /// A KV-write op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        KvWrite { ctx: ctx.clone() }
    }

    /// Records `cache[slot, pos] = src[t]` for each of `t` tokens; a row has `row` elements.
    pub fn record(
        &self,
        g: &mut Graph,
        src: &wgpu::Buffer,
        tok: &wgpu::Buffer,
        cache: &wgpu::Buffer,
        row: usize,
        t: usize,
        ctx_len: usize,
    ) -> Result<()> {
        check_even("kv row", row)?;
        check_buf("kv_write input", src, act_bytes(t * row))?;
        check_buf("kv_write positions", tok, (t * 8) as u64)?;
        check_buf("kv cache", cache, act_bytes(ctx_len * row))?;
        let pipeline = self.ctx.pipeline("kv_write", &[])?;
        let params = KvWriteParams { row_words: (row / 2) as u32, tokens: t as u32, ctx: ctx_len as u32, _pad: 0 };
        let uniform = self.ctx.uniform("kv_write params", &params);
        g.push(&self.ctx, "kv_write", &pipeline, &[&uniform, src, tok, cache], per_item(t * row / 2));
        Ok(())
    }
}
