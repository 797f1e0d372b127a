//! Argmax over each row of f32 logits (greedy sampling on the GPU): the kernel reduces chunks of
//! 4096 logits in parallel and the host picks the best of the few partials per row, so only
//! 8 bytes per chunk come back. Kernel: shaders/argmax.wgsl.

use super::check_buf;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Logits per workgroup (CHUNK in argmax.wgsl).
pub const CHUNK: usize = 4096;

/// Mirrors `Params` in argmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ArgmaxParams {
    /// Row length V.
    pub v: u32,
    /// Rows T.
    pub t: u32,
    /// Chunks per row.
    pub chunks: u32,
    /// Padding.
    pub _pad: u32,
}

/// Bytes of the partials for `t` rows of `v` logits.
pub fn partial_bytes(v: usize, t: usize) -> u64 {
    (t * v.div_ceil(CHUNK) * 8) as u64
}

/// The row argmaxes from the partials the kernel wrote (first index on ties; 0 for a row of NaN).
pub fn finish(partials: &[u32], v: usize, t: usize) -> Vec<u32> {
    let chunks = v.div_ceil(CHUNK);
    (0..t)
        .map(|r| {
            let mut best: Option<(f32, u32)> = None;
            for c in 0..chunks {
                let (i, bits) = (partials[2 * (r * chunks + c)], partials[2 * (r * chunks + c) + 1]);
                let x = f32::from_bits(bits);
                if i != u32::MAX && best.is_none_or(|(bv, _)| x > bv) {
                    best = Some((x, i));
                }
            }
            best.map_or(0, |b| b.1)
        })
        .collect()
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

    /// Records the per-chunk partial argmaxes of `logits (t, v) f32` into `out`
    /// ([`partial_bytes`]); [`finish`] turns them into ids.
    pub fn record(&self, g: &mut Graph, logits: &wgpu::Buffer, out: &wgpu::Buffer, v: usize, t: usize) -> Result<()> {
        check_buf("argmax logits", logits, (t * v * 4) as u64)?;
        check_buf("argmax output", out, partial_bytes(v, t))?;
        if t > 65_535 {
            return Err(Error::Invalid(format!("argmax over {t} rows (at most 65535)")));
        }
        let chunks = v.div_ceil(CHUNK);
        let pipeline = self.ctx.pipeline("argmax", &[])?;
        let params = ArgmaxParams { v: v as u32, t: t as u32, chunks: chunks as u32, _pad: 0 };
        let uniform = self.ctx.uniform("argmax params", &params);
        g.push(&self.ctx, "argmax", &pipeline, &[&uniform, logits, out], [chunks as u32, t as u32, 1]);
        Ok(())
    }
}
