//! The end of a matmul split along K: the splits' f32 partial sums added up in split order and
//! stored as the matmul's output (packed, f32 or added to f32). Kernel:
//! shaders/matmul_split_sum.wgsl; the splits come from the matrix-core GEMMs (ops::matmul).

use super::{check_buf, per_item, MatmulDst};
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
    /// Scaled sums: word offset of column 0's f32 scale in the weight chunk.
    pub scale_off: u32,
    /// Padding.
    pub _pad: [u32; 2],
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

    /// Records `out (t, cols.total)[.., cols] = sum over s of splits (s, t, n)[s]` for `dst`'s
    /// columns `cols` (n of them from `cols.first`), stored as its kind says.
    pub fn record(&self, g: &mut Graph, splits: &wgpu::Buffer, dst: MatmulDst, [s, t, n]: [usize; 3]) -> Result<()> {
        let MatmulDst { out, cols, kind } = dst;
        cols.check("split-K output", n)?;
        check_buf("split-K partial sums", splits, (s * t * n * 4) as u64)?;
        check_buf("split-K output", out, kind.bytes(t, cols.total))?;
        let pipeline = self.ctx.pipeline("matmul_split_sum", &[("OUT_MODE", kind.mode())])?;
        let params = SplitSumParams {
            n: n as u32,
            t: t as u32,
            out_stride: cols.total as u32,
            out_offset: cols.first as u32,
            s: s as u32,
            scale_off: 0,
            _pad: [0; 2],
        };
        let uniform = self.ctx.uniform("split-K sum params", &params);
        g.push(&self.ctx, "matmul_split_sum", &pipeline, &[&uniform, splits, out], per_item(t * n.div_ceil(2)));
        Ok(())
    }

    /// Records [`SplitSum::record`] of one split of W8A8 code sums `(t, n)`, each times its
    /// token's scale `xs[t]` and its column's f32 scale (word `scale_off + column` of `w`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_scaled(
        &self,
        g: &mut Graph,
        sums: &wgpu::Buffer,
        dst: MatmulDst,
        [t, n]: [usize; 2],
        xs: &wgpu::Buffer,
        w: &wgpu::Buffer,
        scale_off: usize,
    ) -> Result<()> {
        let MatmulDst { out, cols, kind } = dst;
        cols.check("W8A8 output", n)?;
        check_buf("W8A8 code sums", sums, (t * n * 4) as u64)?;
        check_buf("W8A8 output", out, kind.bytes(t, cols.total))?;
        check_buf("W8A8 token scales", xs, (t * 4) as u64)?;
        check_buf("W8A8 weight scales", w, ((scale_off + n) * 4) as u64)?;
        let pipeline = self.ctx.pipeline("matmul_split_sum", &[("OUT_MODE", kind.mode()), ("SCALED", 1.0)])?;
        let params = SplitSumParams {
            n: n as u32,
            t: t as u32,
            out_stride: cols.total as u32,
            out_offset: cols.first as u32,
            s: 1,
            scale_off: scale_off as u32,
            _pad: [0; 2],
        };
        let uniform = self.ctx.uniform("scaled sum params", &params);
        g.push(&self.ctx, "matmul_split_sum", &pipeline, &[&uniform, sums, out, xs, w], per_item(t * n.div_ceil(2)));
        Ok(())
    }
}
