//! Rows of a block-format weight decoded to f16, for the prompt GEMM on matrix cores (a prompt
//! decodes each weight once, then streams f16 tiles). Kernel: shaders/dequant_f16.wgsl.

use super::{check_buf, per_item};
use crate::error::{Error, Result};
use crate::gpu::weight::{Weight, WeightChunk};
use crate::gpu::GpuContext;
use crate::graph::Graph;
use std::ops::Range;

/// Mirrors `Params` in dequant_f16.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DequantParams {
    /// Elements per row (K % 32 == 0).
    pub k: u32,
    /// Rows decoded.
    pub rows: u32,
    /// First row decoded (of the chunk).
    pub row0: u32,
    /// Word offset of the scales in the chunk.
    pub d_off: u32,
    /// Word offset of the minimums in the chunk.
    pub m_off: u32,
    /// The first row of the output written.
    pub dst_row: u32,
    /// Padding to 32 bytes.
    pub _pad: [u32; 2],
}

/// The dequantization op.
pub struct Dequant {
    ctx: GpuContext,
}

impl Dequant {
    /// A dequantization op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Dequant { ctx: ctx.clone() }
    }

    /// Records `out (dst_row.., K)[..rows.len()] = f16(rows of chunk)` for a chunk of
    /// block-format weight `w` (`rows` counted within the chunk).
    pub fn record(
        &self,
        g: &mut Graph,
        w: &Weight,
        chunk: &WeightChunk,
        rows: Range<usize>,
        out: &wgpu::Buffer,
        dst_row: usize,
    ) -> Result<()> {
        let (name, k) = (&w.name, w.cols);
        if !w.dtype.is_block() || !k.is_multiple_of(32) || rows.end > chunk.rows {
            return Err(Error::shape(
                format!("rows of {name} to decode"),
                format!("a block format, K % 32 == 0 and rows within the chunk's {}", chunk.rows),
                format!("{}, K {k}, rows {rows:?}", w.dtype.name()),
            ));
        }
        let (row0, rows) = (rows.start, rows.len());
        check_buf(&format!("decoded rows of {name}"), out, ((dst_row + rows) * k * 2) as u64)?;
        if rows == 0 {
            return Ok(());
        }
        let pipeline = self.ctx.pipeline("dequant_f16", &[("W_DTYPE", w.dtype.wgsl_id())])?;
        let params = DequantParams {
            k: k as u32,
            rows: rows as u32,
            row0: row0 as u32,
            d_off: chunk.d_off,
            m_off: chunk.m_off,
            dst_row: dst_row as u32,
            _pad: [0; 2],
        };
        let uniform = self.ctx.uniform("dequant params", &params);
        g.push(&self.ctx, "dequant_f16", &pipeline, &[&uniform, out, &chunk.buf], per_item(rows * k / 8));
        g.note_bytes(chunk.buf.size() * rows as u64 / chunk.rows as u64);
        Ok(())
    }
}
