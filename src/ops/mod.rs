//! One Rust file per kernel: the pipeline(s), a `#[repr(C)]` Params struct mirroring the WGSL
//! uniform, shape checks and the dispatch math.
//!
//! Activation buffers hold 16-bit values packed two per `u32` (see [`crate::dtype::ActDtype`]);
//! logits are f32; token metadata is `(slot, position)` as two `u32` per token.

pub mod argmax;
pub mod attention;
pub mod dequant;
pub mod embedding;
pub mod gather;
pub mod gemv_q8;
pub mod matmul;
pub mod matmul_norm;
pub mod rms_norm;
pub mod rope;
pub mod split_sum;
pub mod swiglu;
pub mod w8a8;

use crate::error::{Error, Result};
use crate::gpu::fold_workgroups;
use crate::gpu::weight::Weight;

/// Bytes of `n` packed 16-bit activation values.
pub fn act_bytes(n: usize) -> u64 {
    (n as u64).div_ceil(2) * 4
}

/// Fails unless `buf` holds at least `bytes` bytes.
pub(crate) fn check_buf(what: &str, buf: &wgpu::Buffer, bytes: u64) -> Result<()> {
    if buf.size() < bytes {
        return Err(Error::shape(what, format!("a buffer of at least {bytes} bytes"), format!("{} bytes", buf.size())));
    }
    Ok(())
}

/// Fails unless `n` is even (packed activations are handled in pairs).
pub(crate) fn check_even(what: &str, n: usize) -> Result<()> {
    if !n.is_multiple_of(2) {
        return Err(Error::shape(what, "an even size", n));
    }
    Ok(())
}

/// Workgroups of a tiled GEMM over `rows` weight rows and `t` tokens: x = column tiles of `bn`,
/// y = token tiles of `bm` (each count within WebGPU's 65535).
pub(crate) fn gemm_grid(name: &str, rows: usize, bn: usize, t: usize, bm: usize) -> Result<[u32; 3]> {
    let (wx, wy) = (rows.div_ceil(bn), t.div_ceil(bm));
    if wx > 65_535 || wy > 65_535 {
        return Err(Error::Invalid(format!("{name}: GEMM grid {wx}x{wy} exceeds 65535 workgroups")));
    }
    Ok([wx as u32, wy as u32, 1])
}

/// Workgroups for a one-thread-per-item kernel of 256 threads.
pub(crate) fn per_item(items: usize) -> [u32; 3] {
    fold_workgroups(items.div_ceil(256) as u32)
}

/// Where a matmul writes: the output buffer, the columns it fills and how it stores them.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDst<'a> {
    /// The output `(t, cols.total)`.
    pub out: &'a wgpu::Buffer,
    /// The columns written.
    pub cols: OutCols,
    /// Packed activations, f32, or added into f32.
    pub kind: matmul::MatmulOut,
}

impl<'a> MatmulDst<'a> {
    /// Columns `cols` of `out`, stored as `kind`.
    pub fn new(out: &'a wgpu::Buffer, cols: OutCols, kind: matmul::MatmulOut) -> Self {
        MatmulDst { out, cols, kind }
    }

    /// All of an output exactly `rows` wide, stored as `kind`.
    pub fn all(out: &'a wgpu::Buffer, rows: usize, kind: matmul::MatmulOut) -> Self {
        MatmulDst { out, cols: OutCols::all(rows), kind }
    }
}

/// The output columns a matmul writes: `[first, first + W.rows)` of rows `total` columns wide, so
/// several weights that share an input can fill one output side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutCols {
    /// First column written (even).
    pub first: usize,
    /// Columns of the output.
    pub total: usize,
}

impl OutCols {
    /// All of an output exactly `rows` wide.
    pub fn all(rows: usize) -> Self {
        OutCols { first: 0, total: rows }
    }

    /// Each of `parts` (weights that share an input) with the columns it writes of one output
    /// that holds them side by side, in order.
    pub fn side_by_side(parts: &[Weight]) -> impl Iterator<Item = (&Weight, OutCols)> {
        let total = parts.iter().map(|w| w.rows).sum();
        parts.iter().scan(0, move |first, w| {
            let cols = OutCols { first: *first, total };
            *first += w.rows;
            Some((w, cols))
        })
    }

    /// Checks that `rows` columns from `first` fit and keep packed pairs aligned.
    pub(crate) fn check(&self, what: &str, rows: usize) -> Result<()> {
        if !self.first.is_multiple_of(2) || self.first + rows > self.total {
            return Err(Error::shape(
                what,
                format!("{rows} output columns inside {} from an even column", self.total),
                format!("from column {}", self.first),
            ));
        }
        Ok(())
    }
}
