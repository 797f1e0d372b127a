//! Embedding row gather into the f32 residual stream: `x[t] = W[ids[t]]`, one dispatch per row
//! chunk of the table.
//! Kernel: shaders/embedding.wgsl.

use super::{check_buf, check_even, per_item};
use crate::error::Result;
use crate::gpu::weight::Weight;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in embedding.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EmbeddingParams {
    /// Row length C.
    pub c: u32,
    /// Tokens T.
    pub tokens: u32,
    /// First row of this chunk.
    pub row0: u32,
    /// Rows in this chunk.
    pub rows: u32,
    /// Block formats: word offset of the scales in the chunk.
    pub d_off: u32,
    /// Block formats: word offset of the minimums in the chunk.
    pub m_off: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// The embedding op.
pub struct Embedding {
    ctx: GpuContext,
}

impl Embedding {
    /// An embedding op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Embedding { ctx: ctx.clone() }
    }

    /// Records `out (t, C) f32 = table[ids (t)]`. Ids must be < table rows (checked by the caller
    /// when it writes them; rows outside every chunk are left unwritten).
    pub fn record(
        &self,
        g: &mut Graph,
        ids: &wgpu::Buffer,
        table: &Weight,
        out: &wgpu::Buffer,
        t: usize,
    ) -> Result<()> {
        let c = table.cols;
        check_even(&table.name, c)?;
        if table.dtype == crate::WeightDtype::I8 {
            return Err(crate::Error::UnsupportedDtype { what: table.name.clone(), dtype: "I8".into() });
        }
        check_buf("embedding ids", ids, (t * 4) as u64)?;
        check_buf("embedding output", out, (t * c * 4) as u64)?;
        let pipeline = self.ctx.pipeline("embedding", &[("W_DTYPE", table.dtype.wgsl_id())])?;
        for chunk in &table.chunks {
            let params = EmbeddingParams {
                c: c as u32,
                tokens: t as u32,
                row0: chunk.row0 as u32,
                rows: chunk.rows as u32,
                d_off: chunk.d_off,
                m_off: chunk.m_off,
                _pad: [0; 2],
            };
            let uniform = self.ctx.uniform("embedding params", &params);
            g.push(&self.ctx, "embedding", &pipeline, &[&uniform, ids, &chunk.buf, out], per_item(t * c / 2));
        }
        Ok(())
    }
}
