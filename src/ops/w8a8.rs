//! INT8 W8A8 linear layers (compressed-tensors, as RedHatAI's `*-quantized.w8a8`): activations
//! are quantized per token on the fly (shaders/quant_act.wgsl), then multiplied with the int8
//! weights with i32 accumulation and rescaled (shaders/matmul_w8a8.wgsl for a few tokens,
//! shaders/matmul_w8a8_gemm.wgsl for prefill; prompts of more than 16 tokens on matrix cores
//! take the f16 GEMM on the int8 codes instead, [`GpuContext::w8a8_f16_gemm`], with the same
//! exact sums).

use super::matmul::MatmulOut;
use super::{act_bytes, check_buf, check_even, gemm_grid, MatmulDst};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::{fold_workgroups, GpuContext};
use crate::graph::Graph;

/// Up to this many tokens use the W8A8 GEMV (one weight read per token); more use the GEMM.
pub const GEMV_MAX_TOKENS: usize = 4;

/// Whether `t` tokens of W8A8 activations of K `k` go to the f16 GEMMs as codes (matrix cores,
/// [`GpuContext::w8a8_f16_gemm`]; more than 16 tokens, K % 8 == 0): their quantization
/// ([`W8a8::quantize_from`], ops::rms_norm's `record_quant`) then writes the int8 values as
/// 16-bit activations of the same integers, which the GEMM stages with the weight's codes
/// (ops::matmul's `Matmul::record_codes`); otherwise int8 words for the int8 kernels. (The GEMM
/// reading the int8 activations itself, converting them as it stages them, was slower: H200 1B
/// pp512 41,000 vs 47,100-47,600 tok/s with them rewritten as codes first.)
pub fn takes_codes(ctx: &GpuContext, t: usize, k: usize) -> bool {
    codes_at(ctx, t) && k.is_multiple_of(8)
}

/// Whether steps of `t` tokens may take [`takes_codes`]' path (whatever their K): on the f16
/// GEMMs, more than 16 tokens.
fn codes_at(ctx: &GpuContext, t: usize) -> bool {
    ctx.w8a8_f16_gemm() && t > 16
}

/// How `t` tokens of `k` activations quantized per `grain` lie in [`QuantScratch::xq`]: whether
/// as 16-bit codes ([`takes_codes`]; per token only), and the bytes they take.
pub fn xq_layout(ctx: &GpuContext, grain: QuantGrain, t: usize, k: usize) -> (bool, u64) {
    if grain == QuantGrain::Token && takes_codes(ctx, t, k) {
        (true, act_bytes(t * k))
    } else {
        (false, (t * k.div_ceil(4) * 4) as u64)
    }
}

/// Mirrors `Params` in quant_act.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantActParams {
    /// Row length K.
    pub k: u32,
    /// Tokens T.
    pub t: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Mirrors `Params` in matmul_w8a8.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct W8a8Params {
    /// Inner dimension K.
    pub k: u32,
    /// Rows in this chunk.
    pub n: u32,
    /// Columns of the output.
    pub out_stride: u32,
    /// First output column of this chunk.
    pub out_offset: u32,
    /// Word offset of the per-row scales in the chunk.
    pub scale_off: u32,
    /// Tokens (the GEMM; the GEMV takes them from the grid).
    pub t: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Scratch for quantized activations: (T, ceil(K/4)) words of int8 and their scales, (T) f32
/// per token ([`QuantGrain::Token`]) or (T, K/32) `(d, s)` pairs ([`QuantGrain::Block`]).
pub struct QuantScratch {
    /// int8 activations.
    pub xq: wgpu::Buffer,
    /// Their scales.
    pub xs: wgpu::Buffer,
}

impl QuantScratch {
    /// Scratch for up to `t` tokens of rows up to `k` long, of either grain.
    pub fn new(ctx: &GpuContext, t: usize, k: usize) -> Result<Self> {
        // (W8A8 codes for the f16 GEMMs take two bytes a value: [`takes_codes`], for any row of
        // up to k values)
        let codes = if codes_at(ctx, t) { act_bytes(t * k) } else { 0 };
        Ok(QuantScratch {
            xq: ctx.storage("int8 activations", ((t * k.div_ceil(4) * 4) as u64).max(codes))?,
            xs: ctx.storage("int8 activation scales", (t * 4).max(t * k.div_ceil(32) * 8) as u64)?,
        })
    }

    /// Bytes of both buffers.
    pub fn bytes(&self) -> u64 {
        self.xq.size() + self.xs.size()
    }
}

/// Which values share one int8 scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantGrain {
    /// A token's row (W8A8, as vLLM quantizes): f32 scales (T).
    Token,
    /// Each block of 32 of a row (the block-weight GEMV, ops::gemv_q8; K % 32 == 0), in the
    /// word order of reduce.wgsl's `quant_word`, each row stored in halves (`quant_word_index`:
    /// every block's first 16 values, then every block's last 16): `(d, s)` pairs (T, K/32).
    Block,
}

/// What [`W8a8::quantize_from`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantInput {
    /// Packed activations `(t, k)`.
    Act,
    /// The gate/up projection's output `(t, 2k)` (columns interleaved gate, up, gate, ... or
    /// `[gate | up]`); the values quantized are `silu(gate) * up` (the down projection's input).
    Swiglu {
        /// Interleaved columns (a fused gate/up weight) rather than halves.
        interleaved: bool,
    },
}

/// The W8A8 op.
pub struct W8a8 {
    ctx: GpuContext,
}

impl W8a8 {
    /// A W8A8 op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        W8a8 { ctx: ctx.clone() }
    }

    /// Records the per-token int8 quantization of `x (t, k)` into `q`.
    pub fn quantize(&self, g: &mut Graph, x: &wgpu::Buffer, q: &QuantScratch, k: usize, t: usize) -> Result<()> {
        self.quantize_from(g, x, QuantInput::Act, QuantGrain::Token, q, k, t)
    }

    /// Records the int8 quantization of `k` values per token read from `x` as `input` says into
    /// `q`, one scale per `grain`.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize_from(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        input: QuantInput,
        grain: QuantGrain,
        q: &QuantScratch,
        k: usize,
        t: usize,
    ) -> Result<()> {
        let (mode, width) = match input {
            QuantInput::Act => (0.0, k),
            QuantInput::Swiglu { interleaved } => {
                check_even("SwiGLU width", k)?;
                (if interleaved { 1.0 } else { 2.0 }, 2 * k)
            }
        };
        check_buf("int8 quantization input", x, act_bytes(t * width))?;
        let blocks = grain == QuantGrain::Block;
        let (codes, xq_bytes) = xq_layout(&self.ctx, grain, t, k);
        check_buf("int8 activation scratch", &q.xq, xq_bytes)?;
        if blocks && !k.is_multiple_of(32) {
            return Err(Error::shape("int8 activations per block", "a multiple of 32 values", k));
        }
        let scale_bytes = if blocks { super::gemv_q8::xs_bytes(t, k) } else { (t * 4) as u64 };
        check_buf("int8 activation scales", &q.xs, scale_bytes)?;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let c = [("SWIGLU", mode), ("BLOCKS", flag(blocks)), ("CODES", flag(codes))];
        let quant = self.ctx.pipeline("quant_act", &c)?;
        let uniform = self.ctx.uniform("quant_act params", &QuantActParams { k: k as u32, t: t as u32, _pad: [0; 2] });
        let grid = if blocks { super::gemv_q8::quant_grid(k, t)? } else { fold_workgroups(t as u32) };
        g.push(&self.ctx, "quant_act", &quant, &[&uniform, x, &q.xq, &q.xs], grid);
        Ok(())
    }

    /// Records `out (t, cols.total)[.., cols] = xq (t, W.cols) @ W^T` rescaled, from activations
    /// already quantized into `q` by [`W8a8::quantize`]; `out_kind` is packed activations or the
    /// f32 residual stream it adds to ([`MatmulOut::Act`] / [`MatmulOut::AddF32`]).
    pub fn matmul(&self, g: &mut Graph, q: &QuantScratch, w: &Weight, dst: MatmulDst, t: usize) -> Result<()> {
        let MatmulDst { out, cols, kind: out_kind } = dst;
        if w.dtype != WeightDtype::I8 {
            return Err(Error::UnsupportedDtype {
                what: format!("{} in the W8A8 matmul", w.name),
                dtype: w.dtype.name().into(),
            });
        }
        let (n, k) = (w.rows, w.cols);
        check_even(&format!("{} rows", w.name), n)?;
        cols.check(&format!("output of {}", w.name), n)?;
        if out_kind == MatmulOut::F32 {
            return Err(Error::Invalid(format!("{}: W8A8 writes activations or adds", w.name)));
        }
        check_buf(&format!("output of {}", w.name), out, out_kind.bytes(t, cols.total))?;
        let (codes, xq_bytes) = xq_layout(&self.ctx, QuantGrain::Token, t, k);
        check_buf("w8a8 activation scratch", &q.xq, xq_bytes)?;
        if codes {
            return super::matmul::Matmul::new(&self.ctx).record_codes(g, [&q.xq, &q.xs], w, dst, t);
        }
        // many tokens (prefill) take the tiled GEMM where K is whole words
        let gemm = t > GEMV_MAX_TOKENS && k.is_multiple_of(4);
        let label = if gemm { "matmul_w8a8_gemm" } else { "matmul_w8a8" };
        let mm = self.ctx.pipeline(label, &[("OUT_MODE", out_kind.mode())])?;
        for chunk in &w.chunks {
            let params = W8a8Params {
                k: k as u32,
                n: chunk.rows as u32,
                out_stride: cols.total as u32,
                out_offset: (cols.first + chunk.row0) as u32,
                scale_off: chunk.d_off,
                t: t as u32,
                _pad: [0; 2],
            };
            let uniform = self.ctx.uniform("w8a8 params", &params);
            let grid = if gemm {
                gemm_grid(&w.name, chunk.rows, 64, t, 64)?
            } else {
                let [x_wg, y_wg, _] = fold_workgroups(chunk.rows.div_ceil(4) as u32);
                [x_wg, y_wg, t as u32]
            };
            g.push(&self.ctx, label, &mm, &[&uniform, &q.xq, &chunk.buf, out, &q.xs], grid);
            g.note_bytes(chunk.buf.size());
        }
        Ok(())
    }

    /// Records `out = w8a8(x, W)` (or `out += ...` with [`MatmulOut::AddF32`]):
    /// [`W8a8::quantize`] then [`W8a8::matmul`].
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        g: &mut Graph,
        x: &wgpu::Buffer,
        q: &QuantScratch,
        w: &Weight,
        out: &wgpu::Buffer,
        out_kind: MatmulOut,
        t: usize,
    ) -> Result<()> {
        self.quantize(g, x, q, w.cols, t)?;
        self.matmul(g, q, w, MatmulDst::all(out, w.rows, out_kind), t)
    }
}
