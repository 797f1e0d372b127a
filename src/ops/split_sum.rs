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

/// The scales of a W8A8 weight chunk's code sums (ops::w8a8): each sum times its token's scale
/// and its column's.
#[derive(Clone, Copy)]
pub struct CodeScales<'a> {
    /// (T) f32 per-token scales.
    pub xs: &'a wgpu::Buffer,
    /// The int8 weight chunk, its columns' f32 scales from word `scale_off`.
    pub w: &'a wgpu::Buffer,
    /// Word offset of column 0's scale in `w`.
    pub scale_off: usize,
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
    /// columns `cols` (n of them from `cols.first`), stored as its kind says; W8A8 code sums
    /// each times their token's and column's scale where `scales` are given.
    pub fn record(
        &self,
        g: &mut Graph,
        splits: &wgpu::Buffer,
        dst: MatmulDst,
        [s, t, n]: [usize; 3],
        scales: Option<CodeScales>,
    ) -> Result<()> {
        let MatmulDst { out, cols, kind } = dst;
        cols.check("split-K output", n)?;
        check_buf("split-K partial sums", splits, (s * t * n * 4) as u64)?;
        check_buf("split-K output", out, kind.bytes(t, cols.total))?;
        let scaled = if scales.is_some() { 1.0 } else { 0.0 };
        let pipeline = self.ctx.pipeline("matmul_split_sum", &[("OUT_MODE", kind.mode()), ("SCALED", scaled)])?;
        let params = SplitSumParams {
            n: n as u32,
            t: t as u32,
            out_stride: cols.total as u32,
            out_offset: cols.first as u32,
            s: s as u32,
            scale_off: scales.map_or(0, |c| c.scale_off as u32),
            _pad: [0; 2],
        };
        let uniform = self.ctx.uniform("split-K sum params", &params);
        let mut buffers = vec![&uniform, splits, out];
        if let Some(c) = &scales {
            check_buf("W8A8 token scales", c.xs, (t * 4) as u64)?;
            check_buf("W8A8 weight scales", c.w, ((c.scale_off + n) * 4) as u64)?;
            buffers.extend([c.xs, c.w]);
        }
        g.push(&self.ctx, "matmul_split_sum", &pipeline, &buffers, per_item(t * n.div_ceil(2)));
        Ok(())
    }
}
