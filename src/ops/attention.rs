//! Causal grouped-query attention over the KV cache with a tiled online softmax.
//! Kernel: shaders/attention.wgsl.

use super::{act_bytes, check_buf, check_even};
use crate::error::{Error, Result};
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Mirrors `Params` in attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    /// Query heads H.
    pub heads: u32,
    /// KV heads (divides H).
    pub kv_heads: u32,
    /// Head dimension D (even, at most 256).
    pub head_dim: u32,
    /// Tokens T.
    pub tokens: u32,
    /// Cache positions per slot.
    pub ctx: u32,
    /// Score scale, usually 1/sqrt(D).
    pub scale: f32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Shape of an attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// KV heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Cache positions per slot.
    pub ctx: usize,
}

/// Largest head dimension the kernel handles.
pub const MAX_HEAD_DIM: usize = 256;

/// The attention op.
pub struct Attention {
    ctx: GpuContext,
}

impl Attention {
    /// An attention op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Attention { ctx: ctx.clone() }
    }

    /// Records `out (t, H, D) = softmax(q k^T / sqrt(D)) v` over each token's cache slot,
    /// keys at positions 0..=pos.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        g: &mut Graph,
        q: &wgpu::Buffer,
        tok: &wgpu::Buffer,
        kcache: &wgpu::Buffer,
        vcache: &wgpu::Buffer,
        out: &wgpu::Buffer,
        s: AttentionShape,
        t: usize,
    ) -> Result<()> {
        check_even("head_dim", s.head_dim)?;
        if s.head_dim > MAX_HEAD_DIM {
            return Err(Error::shape(
                "head_dim",
                format!("at most {MAX_HEAD_DIM}"),
                s.head_dim,
            ));
        }
        if s.kv_heads == 0 || !s.heads.is_multiple_of(s.kv_heads) {
            return Err(Error::shape(
                "num_key_value_heads",
                format!("a divisor of {} heads", s.heads),
                s.kv_heads,
            ));
        }
        check_buf("attention q", q, act_bytes(t * s.heads * s.head_dim))?;
        check_buf("attention positions", tok, (t * 8) as u64)?;
        check_buf(
            "k cache",
            kcache,
            act_bytes(s.ctx * s.kv_heads * s.head_dim),
        )?;
        check_buf(
            "v cache",
            vcache,
            act_bytes(s.ctx * s.kv_heads * s.head_dim),
        )?;
        check_buf("attention output", out, act_bytes(t * s.heads * s.head_dim))?;
        let pipeline = self.ctx.pipeline("attention", &[])?;
        let params = AttentionParams {
            heads: s.heads as u32,
            kv_heads: s.kv_heads as u32,
            head_dim: s.head_dim as u32,
            tokens: t as u32,
            ctx: s.ctx as u32,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
            _pad: [0; 2],
        };
        let uniform = self.ctx.uniform("attention params", &params);
        g.push(
            &self.ctx,
            "attention",
            &pipeline,
            &[&uniform, q, tok, kcache, vcache, out],
            fold_workgroups((t * s.heads) as u32),
        );
        Ok(())
    }
}
