//! Weights on the GPU, as the checkpoint's own bytes, split into row chunks that each fit one
//! storage binding.

use super::GpuContext;
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};

/// A contiguous run of rows of a weight, in its own buffer.
pub struct WeightChunk {
    /// First row held.
    pub row0: usize,
    /// Rows held.
    pub rows: usize,
    /// The bytes (block formats repacked, see shaders/weights.wgsl), padded to 16.
    pub buf: wgpu::Buffer,
    /// Block formats and W8A8: word offset of the scales in `buf`.
    pub d_off: u32,
    /// Block formats: word offset of the minimums in `buf`.
    pub m_off: u32,
}

/// A 2-D weight `(rows, cols)` (a 1-D weight has one row) in its checkpoint dtype.
pub struct Weight {
    /// Checkpoint name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Element type as stored.
    pub dtype: WeightDtype,
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features).
    pub cols: usize,
    /// Row chunks, each within the binding limit; one chunk when it fits.
    pub chunks: Vec<WeightChunk>,
}

impl Weight {
    /// Uploads `bytes` (little-endian, `rows * cols` elements of `dtype`) to the GPU.
    pub fn upload(
        ctx: &GpuContext,
        name: &str,
        dtype: WeightDtype,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self> {
        // (the column checks are upload_rows'; a size is only meaningful for whole blocks)
        let row_bytes = dtype.row_bytes(cols);
        if cols.is_multiple_of(dtype.block_len()) && bytes.len() != rows * row_bytes {
            return Err(Error::shape(
                name,
                format!("{rows}x{cols} {} = {} bytes", dtype.name(), rows * row_bytes),
                format!("{} bytes", bytes.len()),
            ));
        }
        Self::upload_rows(ctx, name, dtype, rows, cols, |r| &bytes[r * row_bytes..(r + 1) * row_bytes])
    }

    /// Uploads an int8 weight `(rows, cols)` with its per-row f32 scales (compressed-tensors
    /// W8A8): each chunk holds its rows' int8 bytes, then their scales at word `d_off`.
    pub fn upload_w8a8(
        ctx: &GpuContext,
        name: &str,
        rows: usize,
        cols: usize,
        q: &[u8],
        scales: &[f32],
    ) -> Result<Self> {
        if q.len() != rows * cols || scales.len() != rows {
            return Err(Error::shape(
                name,
                format!("{rows}x{cols} int8 and {rows} scales"),
                format!("{} bytes, {} scales", q.len(), scales.len()),
            ));
        }
        Self::upload_w8a8_rows(ctx, name, rows, cols, |r| (&q[r * cols..(r + 1) * cols], scales[r]))
    }

    /// [`Weight::upload_w8a8`] with row `r` and its scale given by `row(r)`, written straight
    /// into the GPU buffers: rows gathered from several tensors (fused projections) or reordered
    /// without an intermediate host copy.
    pub fn upload_w8a8_rows<'a>(
        ctx: &GpuContext,
        name: &str,
        rows: usize,
        cols: usize,
        row: impl Fn(usize) -> (&'a [u8], f32),
    ) -> Result<Self> {
        if let Some(r) = (0..rows).find(|&r| row(r).0.len() != cols) {
            return Err(Error::shape(
                name,
                format!("int8 rows of {cols} bytes"),
                format!("row {r}: {} bytes", row(r).0.len()),
            ));
        }
        // a row costs its int8 bytes plus its f32 scale
        let chunks = chunked(ctx, name, rows, cols as u64 + 4, |row0, n| {
            let d_off = (n * cols).div_ceil(4);
            let buf = ctx.storage_fill(name, d_off * 4 + n * 4, |write| {
                for i in 0..n {
                    let (q, scale) = row(row0 + i);
                    write(i * cols, q);
                    write(d_off * 4 + i * 4, &scale.to_le_bytes());
                }
            })?;
            Ok((buf, d_off as u32, 0))
        })?;
        Ok(Weight { name: name.to_string(), dtype: WeightDtype::I8, rows, cols, chunks })
    }

    /// Uploads a weight `(rows, cols)` of a float or block dtype whose row `r` is `row(r)`,
    /// written straight into the GPU buffers (block formats repacked on the way,
    /// [`crate::model::gguf::repack_into`]): rows gathered from several tensors (fused
    /// projections) or reordered without an intermediate host copy.
    pub fn upload_rows<'a>(
        ctx: &GpuContext,
        name: &str,
        dtype: WeightDtype,
        rows: usize,
        cols: usize,
        row: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Result<Self> {
        if !cols.is_multiple_of(dtype.block_len()) {
            let want = format!("a multiple of {} columns for {}", dtype.block_len(), dtype.name());
            return Err(Error::shape(name, want, cols));
        }
        if !cols.is_multiple_of(2) {
            return Err(Error::shape(name, "an even number of columns", cols));
        }
        if dtype == WeightDtype::I8 {
            return Err(Error::Invalid(format!("{name}: int8 weights need their scales (Weight::upload_w8a8)")));
        }
        let row_bytes = dtype.row_bytes(cols);
        if let Some(r) = (0..rows).find(|&r| row(r).len() != row_bytes) {
            return Err(Error::shape(
                name,
                format!("rows of {row_bytes} bytes"),
                format!("row {r}: {} bytes", row(r).len()),
            ));
        }
        let chunks = chunked(ctx, name, rows, row_bytes as u64, |row0, n| {
            // float rows are copied as they are, block formats repacked (both on worker threads)
            let (len, d_off, m_off) = crate::model::gguf::repacked_len(dtype, n * row_bytes);
            let buf = ctx.storage_fill(name, len, |write| {
                crate::model::gguf::repack_into(dtype, n, &|i| row(row0 + i), write)
            })?;
            Ok((buf, d_off, m_off))
        })?;
        Ok(Weight { name: name.to_string(), dtype, rows, cols, chunks })
    }

    /// Bytes held on the GPU (the tensor's bytes plus padding to 16 per chunk, and an i-quant's
    /// lookup grid per chunk).
    pub fn gpu_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.size()).sum()
    }

    /// Of [`Weight::gpu_bytes`], the i-quant lookup grids (one per chunk).
    pub fn table_bytes(&self) -> u64 {
        match self.dtype {
            WeightDtype::Stored(t) => (crate::model::gguf::grid_bytes(t).len() * self.chunks.len()) as u64,
            _ => 0,
        }
    }
}

/// Splits `rows` rows of `row_bytes` each into chunks that fit one storage binding (an even
/// multiple of 4 rows each, so packed outputs and fused gate/up pairs stay aligned); `make(row0, n)`
/// uploads a chunk and gives its buffer and its scale/minimum word offsets.
fn chunked(
    ctx: &GpuContext,
    name: &str,
    rows: usize,
    row_bytes: u64,
    mut make: impl FnMut(usize, usize) -> Result<(wgpu::Buffer, u32, u32)>,
) -> Result<Vec<WeightChunk>> {
    let max_rows = (ctx.max_binding / row_bytes) as usize & !3;
    if max_rows == 0 && rows > 0 {
        return Err(Error::Invalid(format!(
            "{name}: one row ({row_bytes} bytes) exceeds the storage binding limit {}",
            ctx.max_binding
        )));
    }
    let mut chunks = Vec::new();
    let mut row0 = 0;
    while row0 < rows {
        let n = max_rows.min(rows - row0);
        let (buf, d_off, m_off) = make(row0, n)?;
        chunks.push(WeightChunk { row0, rows: n, buf, d_off, m_off });
        row0 += n;
    }
    Ok(chunks)
}
