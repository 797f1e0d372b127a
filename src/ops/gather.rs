//! Row gather: `out[j] = src[idx[j]]` over rows of 32-bit words — the rows of the last hidden
//! state whose logits a step computes, picked on the GPU so one recorded graph serves every step
//! of the same shape. Kernel: shaders/gather_rows.wgsl.

use super::{check_buf, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in gather_rows.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    /// Words per row.
    pub words: u32,
    /// Rows gathered.
    pub rows: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// The row gather op.
pub struct Gather {
    ctx: GpuContext,
}

impl Gather {
    /// A gather op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Gather { ctx: ctx.clone() }
    }

    /// Records `out (rows, words) = src[idx (rows)]`. The indices must be rows of `src` (the
    /// caller checks them when it writes them).
    pub fn record(
        &self,
        g: &mut Graph,
        idx: &wgpu::Buffer,
        src: &wgpu::Buffer,
        out: &wgpu::Buffer,
        words: usize,
        rows: usize,
    ) -> Result<()> {
        check_buf("gather indices", idx, (rows * 4) as u64)?;
        check_buf("gather source", src, (words * 4) as u64)?;
        check_buf("gather output", out, (rows * words * 4) as u64)?;
        if rows == 0 || words == 0 {
            return Ok(());
        }
        let pipeline = self.ctx.pipeline("gather_rows", &[])?;
        let params = GatherParams { words: words as u32, rows: rows as u32, _pad: [0; 2] };
        let uniform = self.ctx.uniform("gather params", &params);
        g.push(&self.ctx, "gather_rows", &pipeline, &[&uniform, idx, src, out], per_item(rows * words));
        Ok(())
    }
}
