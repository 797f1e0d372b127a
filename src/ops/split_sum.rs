//! The end of a matmul split along K: the splits' f32 partial sums added up in split order and
//! stored as the matmul's output (packed, f32 or added to f32). Kernel:
//! shaders/matmul_split_sum.wgsl; the splits come from the skinny matrix-core GEMM
//! (ops::matmul).

use super::matmul::MatmulOut;
use super::{check_buf, per_item};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Mirrors `Params` in matmul_split_sum.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SplitSumParams {
    /// Columns of the chunk N.
    pub n: u32,
    /// Tokens T.
    pub t: u32,
    /// Columns of the output (N_total).
    pub out_stride: u32,
    /// First output column written (even).
    pub out_offset: u32,
    /// Splits S.
    pub s: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// The split-K sum op.
pub struct SplitSum {
    ctx: GpuContext,
}

impl SplitSum {
    /// A split-K sum op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        SplitSum { ctx: ctx.clone() }
    }

    /// Records `out (t, total)[.., first..first + n] = sum over s of splits (s, t, n)[s]`, stored
    /// as `kind` says.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        g: &mut Graph,
        splits: &wgpu::Buffer,
        out: &wgpu::Buffer,
        kind: MatmulOut,
        [s, t, n]: [usize; 3],
        [first, total]: [usize; 2],
    ) -> Result<()> {
        check_buf("split-K partial sums", splits, (s * t * n * 4) as u64)?;
        check_buf("split-K output", out, kind.bytes(t, total))?;
        let pipeline = self.ctx.pipeline("matmul_split_sum", &[("OUT_MODE", kind.mode())])?;
        let params = SplitSumParams {
            n: n as u32,
            t: t as u32,
            out_stride: total as u32,
            out_offset: first as u32,
            s: s as u32,
            _pad: [0; 3],
        };
        let uniform = self.ctx.uniform("split-K sum params", &params);
        g.push(&self.ctx, "matmul_split_sum", &pipeline, &[&uniform, splits, out], per_item(t * n.div_ceil(2)));
        Ok(())
    }
}
