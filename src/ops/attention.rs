//! Causal grouped-query attention over the KV cache with a tiled online softmax.
//! Kernels: shaders/attention.wgsl (+ attention_combine.wgsl for split-K), and
//! shaders/attention_coop.wgsl (matrix cores) for a prompt chunk of one sequence where the
//! context has [`GpuContext::coopmat`].

use super::gemv_q8::{xq_bytes, xs_bytes};
use super::w8a8::QuantScratch;
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
    /// Padding (the head dimension is the kernel's `HEAD_DIM` override).
    pub _pad: u32,
    /// Tokens T.
    pub tokens: u32,
    /// Cache positions per slot.
    pub ctx: u32,
    /// Score scale, usually 1/sqrt(D).
    pub scale: f32,
    /// Key ranges per (token, head) (split-K); 1 = no split.
    pub splits: u32,
    /// Keys per range.
    pub chunk: u32,
}

impl AttentionParams {
    fn new(s: AttentionShape, t: usize, splits: usize, chunk: usize) -> Self {
        AttentionParams {
            heads: s.heads as u32,
            kv_heads: s.kv_heads as u32,
            _pad: 0,
            tokens: t as u32,
            ctx: s.ctx as u32,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
            splits: splits as u32,
            chunk: chunk as u32,
        }
    }
}

/// Mirrors `Params` in attention_combine.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CombineParams {
    /// Query heads H.
    pub heads: u32,
    /// Head dimension D.
    pub head_dim: u32,
    /// Tokens T.
    pub tokens: u32,
    /// Splits to merge.
    pub splits: u32,
    /// Keys per split.
    pub chunk: u32,
    /// Padding.
    pub _pad: [u32; 3],
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

/// The buffers of an attention call.
#[derive(Clone, Copy)]
pub struct AttentionIo<'a> {
    /// Queries `(t, H, D)`, packed, RoPE applied.
    pub q: &'a wgpu::Buffer,
    /// `(slot, position)` per token, two `u32` each.
    pub tok: &'a wgpu::Buffer,
    /// K cache `(slots, ctx, Hkv, D)`, packed, RoPE applied.
    pub kcache: &'a wgpu::Buffer,
    /// V cache `(slots, ctx, Hkv, D)`, packed.
    pub vcache: &'a wgpu::Buffer,
    /// Output `(t, H, D)`, packed.
    pub out: &'a wgpu::Buffer,
    /// Split-K scratch of [`part_bytes`] (None: no split).
    pub part: Option<&'a wgpu::Buffer>,
    /// Where the output may go instead of `out`, quantized to int8 per block of 32 (the input of
    /// the int8 GEMV, as ops::w8a8's `QuantGrain::Block` writes it, of rows of H*D values): where
    /// a call's split-K combine runs and D % 32 == 0 it does, and the call returns true.
    pub quant: Option<&'a QuantScratch>,
}

/// Largest head dimension the kernel handles.
pub const MAX_HEAD_DIM: usize = 256;

/// Fails unless the head dimension is even and at most [`MAX_HEAD_DIM`] and the KV heads divide
/// the heads.
fn check_shape(s: AttentionShape) -> Result<()> {
    check_even("head_dim", s.head_dim)?;
    if s.head_dim > MAX_HEAD_DIM {
        return Err(Error::shape("head_dim", format!("at most {MAX_HEAD_DIM}"), s.head_dim));
    }
    if s.kv_heads == 0 || !s.heads.is_multiple_of(s.kv_heads) {
        return Err(Error::shape("num_key_value_heads", format!("a divisor of {} heads", s.heads), s.kv_heads));
    }
    Ok(())
}

/// Split-K factor for `t` tokens of `heads` heads over a `ctx`-position cache: enough
/// workgroups to fill a large GPU (~2048), never ranges shorter than 64 keys, at most 64 splits.
pub fn splits_for(t: usize, heads: usize, ctx: usize) -> usize {
    2048usize.div_ceil(t * heads).min(ctx.div_ceil(64)).clamp(1, 64)
}

/// Bytes of the split-K scratch for `t` tokens.
pub fn part_bytes(t: usize, s: AttentionShape) -> u64 {
    let splits = splits_for(t, s.heads, s.ctx);
    if splits == 1 {
        return 16;
    }
    (t * s.heads * splits * (2 + s.head_dim) * 4) as u64
}

/// Cache positions a KV cache holds after its last slot so that [`Attention::record_prompt`] may
/// read whole 64-key tiles on matrix cores (and rows of q to a multiple of 64 tokens). Masked
/// keys' values are multiplied by zero there, so the cache past each position and this padding
/// must hold finite values (the session's start zeroed and only ever get finite f16 values).
pub const PROMPT_PAD: usize = 64;

/// The attention op.
pub struct Attention {
    ctx: GpuContext,
    /// Stand-ins for the split-K scratch and the combine's int8 output when they are off.
    dummy: [wgpu::Buffer; 3],
}

impl Attention {
    /// An attention op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        let dummy = || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("attention stand-in (unused)"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        Attention { ctx: ctx.clone(), dummy: [dummy(), dummy(), dummy()] }
    }

    /// Whether [`Attention::record_prompt`] runs this shape on matrix cores.
    pub fn prompt_on_matrix_cores(&self, s: AttentionShape, t: usize) -> bool {
        self.ctx.coopmat() && t >= 16 && s.head_dim.is_multiple_of(16) && s.head_dim <= 128
    }

    /// [`Attention::record_within`] for `t` tokens of one sequence at ascending positions of one
    /// cache slot (a prompt chunk, or one sequence's decode step): on matrix cores where
    /// [`Attention::prompt_on_matrix_cores`], which needs `q` to hold `t` rounded up to 64 rows and
    /// the caches [`PROMPT_PAD`] positions after their last slot (it reads each token's keys, so
    /// `keys` only bounds the portable kernel's split). Returns whether the output went to
    /// `io.quant` (the matrix-core kernel writes `out`).
    pub fn record_prompt(
        &self,
        g: &mut Graph,
        io: AttentionIo,
        s: AttentionShape,
        t: usize,
        keys: usize,
    ) -> Result<bool> {
        if !self.prompt_on_matrix_cores(s, t) {
            return self.record_within(g, io, s, t, keys);
        }
        check_shape(s)?;
        let (hd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        check_buf("attention q (rows to a multiple of 64)", io.q, act_bytes(t.div_ceil(64) * 64 * hd))?;
        check_buf("attention positions", io.tok, (t * 8) as u64)?;
        check_buf("k cache (with its padding)", io.kcache, act_bytes((s.ctx + PROMPT_PAD) * kvd))?;
        check_buf("v cache (with its padding)", io.vcache, act_bytes((s.ctx + PROMPT_PAD) * kvd))?;
        check_buf("attention output", io.out, act_bytes(t * hd))?;
        let c = [("HEAD_DIM", s.head_dim as f64)];
        let Some(pipeline) = self.ctx.coop_pipeline(|| self.ctx.pipeline("attention_coop", &c)) else {
            return self.record_within(g, io, s, t, keys); // the portable kernel
        };
        let uniform = self.ctx.uniform("attention params", &AttentionParams::new(s, t, 1, 0));
        let grid = [s.heads as u32, t.div_ceil(16) as u32, 1]; // tiles of 16 query tokens on y
        let buffers = [&uniform, io.q, io.tok, io.kcache, io.vcache, io.out];
        g.push(&self.ctx, "attention_coop", &pipeline, &buffers, grid);
        Ok(false)
    }

    /// Records `out (t, H, D) = softmax(q k^T / sqrt(D)) v` over each token's cache slot,
    /// keys at positions 0..=pos. `part` is the split-K scratch of [`part_bytes`] (None: no split).
    /// Returns whether the output went to `io.quant` instead of `io.out` (see [`AttentionIo`]).
    pub fn record(&self, g: &mut Graph, io: AttentionIo, s: AttentionShape, t: usize) -> Result<bool> {
        self.record_within(g, io, s, t, s.ctx)
    }

    /// [`Attention::record`] for tokens whose positions lie below `keys` (at most the cache's
    /// `s.ctx`): the split-K ranges divide keys 0..keys rather than the whole cache, so a short
    /// sequence in a long cache runs few workgroups. (A token past `keys` is still right — the last
    /// range reads on to its position — only slower.)
    pub fn record_within(
        &self,
        g: &mut Graph,
        io: AttentionIo,
        s: AttentionShape,
        t: usize,
        keys: usize,
    ) -> Result<bool> {
        check_shape(s)?;
        let keys = keys.clamp(1, s.ctx.max(1));
        let AttentionIo { q, tok, kcache, vcache, out, part, quant } = io;
        check_buf("attention q", q, act_bytes(t * s.heads * s.head_dim))?;
        check_buf("attention positions", tok, (t * 8) as u64)?;
        check_buf("k cache", kcache, act_bytes(s.ctx * s.kv_heads * s.head_dim))?;
        check_buf("v cache", vcache, act_bytes(s.ctx * s.kv_heads * s.head_dim))?;
        check_buf("attention output", out, act_bytes(t * s.heads * s.head_dim))?;
        let splits = if part.is_some() { splits_for(t, s.heads, keys) } else { 1 };
        let part = match part {
            Some(b) if splits > 1 => {
                check_buf("attention split scratch", b, part_bytes(t, s))?;
                b
            }
            _ => &self.dummy[0],
        };
        // the combine quantizes where it runs and a block of 32 lies within one head
        let quant = quant.filter(|_| splits > 1 && s.head_dim.is_multiple_of(32));
        let (xq, xs) = match quant {
            Some(qs) => {
                let k = s.heads * s.head_dim;
                check_buf("attention int8 output", &qs.xq, xq_bytes(t, k))?;
                check_buf("attention int8 output scales", &qs.xs, xs_bytes(t, k))?;
                (&qs.xq, &qs.xs)
            }
            None => (&self.dummy[1], &self.dummy[2]),
        };
        let chunk = keys.div_ceil(splits).div_ceil(64) * 64;
        let pipeline = self.ctx.pipeline("attention", &[("HEAD_DIM", s.head_dim as f64)])?;
        let uniform = self.ctx.uniform("attention params", &AttentionParams::new(s, t, splits, chunk));
        let [x, y, _] = fold_workgroups((t * s.heads) as u32);
        g.push(
            &self.ctx,
            "attention",
            &pipeline,
            &[&uniform, q, tok, kcache, vcache, out, part],
            [x, y, splits as u32],
        );
        if splits > 1 {
            let pipeline = self.ctx.pipeline("attention_combine", &[("QUANT", quant.is_some() as u8 as f64)])?;
            let params = CombineParams {
                heads: s.heads as u32,
                head_dim: s.head_dim as u32,
                tokens: t as u32,
                splits: splits as u32,
                chunk: chunk as u32,
                _pad: [0; 3],
            };
            let uniform = self.ctx.uniform("attention combine params", &params);
            g.push(&self.ctx, "attention_combine", &pipeline, &[&uniform, part, out, tok, xq, xs], [x, y, 1]);
        }
        Ok(quant.is_some())
    }
}
