//! Argmax over each row of f32 logits (greedy sampling on the GPU): argmax.wgsl reduces chunks of
//! 4096 logits in parallel, argmax_finish.wgsl picks the best of each row's few partials and
//! writes the row's id, so the id can feed the next step on the GPU and 4 bytes per row come back.

use super::check_buf;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Logits per workgroup (CHUNK in argmax.wgsl).
pub const CHUNK: usize = 4096;

/// Set in a row's id when the row holds a NaN or an infinity (BAD in argmax.wgsl): the id's
/// other bits are the largest finite logit's index.
pub const NON_FINITE: u32 = 0x8000_0000;

/// Mirrors `Params` in argmax.wgsl and argmax_finish.wgsl.
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

/// Bytes of the partials scratch for `t` rows of `v` logits.
pub fn partial_bytes(v: usize, t: usize) -> u64 {
    (t * v.div_ceil(CHUNK) * 8) as u64
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

    /// Records `ids (t) u32` = the index of each row's largest finite logit of `logits (t, v) f32`
    /// (the first on ties; 0 for a row without a finite number), with [`NON_FINITE`] set in the
    /// id of a row that holds a NaN or an infinity. `partials` is scratch of
    /// [`partial_bytes`].
    pub fn record(
        &self,
        g: &mut Graph,
        logits: &wgpu::Buffer,
        partials: &wgpu::Buffer,
        ids: &wgpu::Buffer,
        v: usize,
        t: usize,
    ) -> Result<()> {
        check_buf("argmax logits", logits, (t * v * 4) as u64)?;
        check_buf("argmax partials", partials, partial_bytes(v, t))?;
        check_buf("argmax ids", ids, (t * 4) as u64)?;
        if t > 65_535 {
            return Err(Error::Invalid(format!("argmax over {t} rows (at most 65535)")));
        }
        let chunks = v.div_ceil(CHUNK);
        let params = ArgmaxParams { v: v as u32, t: t as u32, chunks: chunks as u32, _pad: 0 };
        let uniform = self.ctx.uniform("argmax params", &params);
        let pipeline = self.ctx.pipeline("argmax", &[])?;
        g.push(&self.ctx, "argmax", &pipeline, &[&uniform, logits, partials], [chunks as u32, t as u32, 1]);
        let pipeline = self.ctx.pipeline("argmax_finish", &[])?;
        g.push(&self.ctx, "argmax_finish", &pipeline, &[&uniform, partials, ids], [1, t as u32, 1]);
        Ok(())
    }
}
