//! Rotary position embedding (Meta's `precompute_freqs_cis`, with llama3 or linear frequency
//! scaling) of rotary pairs (2i, 2i + 1) — Meta's and GGUF's layout; the loader puts Hugging
//! Face q/k rows in that order — fused with the KV-cache append. Kernel: shaders/rope.wgsl.

use super::{act_bytes, check_buf, check_even, per_item};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Graph;

/// Frequency scaling of RoPE (`rope_scaling` in config.json).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum RopeScaling {
    /// Plain RoPE.
    #[default]
    None,
    /// Positions divided by `factor` (`rope_type: linear`).
    Linear {
        /// Scale factor.
        factor: f32,
    },
    /// Llama 3.1's wavelength-dependent scaling (`rope_type: llama3`).
    Llama3 {
        /// Scale factor for low frequencies.
        factor: f32,
        /// Wavelengths above `original_max / low_freq_factor` are divided by `factor`.
        low_freq_factor: f32,
        /// Wavelengths below `original_max / high_freq_factor` are kept.
        high_freq_factor: f32,
        /// Context length the model was pre-trained with.
        original_max_position_embeddings: f32,
    },
    /// One divisor per rotary pair (D/2 of them): pair i turns at `inv_freq[i] / factors[i]`.
    /// llama.cpp's converter stores Llama 3.x's llama3 scaling this way, as the GGUF tensor
    /// `rope_freqs.weight`; the engine applies it with llama.cpp's arithmetic.
    Factors(Vec<f32>),
}

/// Inverse frequencies `theta^(-2i/D)` for i in 0..D/2, scaled, computed in f32 as transformers does.
pub fn inv_freqs(head_dim: usize, theta: f32, scaling: &RopeScaling) -> Vec<f32> {
    let base: Vec<f32> = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
    match *scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
        RopeScaling::Factors(ref factors) => base.iter().zip(factors).map(|(f, s)| f / s).collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

/// The `llama3` scaling whose per-pair divisors are `factors` (what llama.cpp's converter stores
/// as `rope_freqs.weight` for Llama 3.x), found among the parameters Llama 3.1–3.3 use (low 1,
/// high 4, pre-trained context 8192, factor = the largest divisor); None if they do not match.
pub fn llama3_from_factors(factors: &[f32], head_dim: usize, theta: f32) -> Option<RopeScaling> {
    let factor = factors.iter().copied().fold(1.0f32, f32::max);
    let candidate = RopeScaling::Llama3 {
        factor,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let base = inv_freqs(head_dim, theta, &RopeScaling::None);
    let scaled = inv_freqs(head_dim, theta, &candidate);
    let same = factors.len() == base.len()
        && base.iter().zip(&scaled).zip(factors).all(|((b, s), f)| ((b / s) / f - 1.0).abs() < 1e-3);
    same.then_some(candidate)
}

/// `(cos, sin)` of `pos * inv_freq[i]` for every position < `max_pos`: shape (max_pos, D/2, 2).
pub fn freqs_cis(inv_freq: &[f32], max_pos: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(max_pos * inv_freq.len() * 2);
    for pos in 0..max_pos {
        for &f in inv_freq {
            let angle = (pos as f32 * f) as f64; // the f32 product, as torch computes it
            out.push(angle.cos() as f32);
            out.push(angle.sin() as f32);
        }
    }
    out
}

/// The (cos, sin) table on the GPU, shared by every layer.
pub struct RopeTable {
    /// (max_pos, D/2) of `vec2<f32>` (cos, sin).
    pub buf: wgpu::Buffer,
    /// Head dimension D.
    pub head_dim: usize,
    /// Positions covered.
    pub max_pos: usize,
}

impl RopeTable {
    /// Computes and uploads the table for positions `0..max_pos`.
    pub fn new(ctx: &GpuContext, head_dim: usize, theta: f32, scaling: &RopeScaling, max_pos: usize) -> Result<Self> {
        check_even("head_dim", head_dim)?;
        let table = freqs_cis(&inv_freqs(head_dim, theta, scaling), max_pos);
        let buf = ctx.storage_init("rope table", bytemuck::cast_slice(&table))?;
        Ok(RopeTable { buf, head_dim, max_pos })
    }
}

/// Mirrors `Params` in rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RopeParams {
    /// Query heads H.
    pub heads: u32,
    /// Key/value heads Hkv.
    pub kv_heads: u32,
    /// Head dimension D.
    pub head_dim: u32,
    /// Tokens T.
    pub tokens: u32,
    /// Cache positions per slot.
    pub ctx: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Where the attention inputs go: rotated queries, and the layer's KV cache.
#[derive(Clone, Copy)]
pub struct RopeDst<'a> {
    /// (T, H, D) rotated queries.
    pub q: &'a wgpu::Buffer,
    /// K cache (S, ctx, Hkv, D): rotated keys at each token's (slot, pos).
    pub k_cache: &'a wgpu::Buffer,
    /// V cache (S, ctx, Hkv, D): values at each token's (slot, pos).
    pub v_cache: &'a wgpu::Buffer,
    /// Positions per slot in the cache.
    pub ctx_len: usize,
}

/// The RoPE op (with the KV append).
pub struct Rope {
    ctx: GpuContext,
}

impl Rope {
    /// A RoPE op on this context.
    pub fn new(ctx: &GpuContext) -> Self {
        Rope { ctx: ctx.clone() }
    }

    /// Records, from `qkv (t, (heads + 2 kv_heads) D)` (rotary pairs side by side): RoPE of q into `dst.q`, RoPE of k and a copy
    /// of v into the cache at each token's (slot, pos) from `tok (t)`. Positions must be below the
    /// table's `max_pos` and `dst.ctx_len` (the caller checks per step).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        g: &mut Graph,
        qkv: &wgpu::Buffer,
        tok: &wgpu::Buffer,
        table: &RopeTable,
        dst: RopeDst<'_>,
        heads: usize,
        kv_heads: usize,
        t: usize,
    ) -> Result<()> {
        let d = table.head_dim;
        check_buf("rope input", qkv, act_bytes(t * (heads + 2 * kv_heads) * d))?;
        check_buf("rope positions", tok, (t * 8) as u64)?;
        check_buf("rope output", dst.q, act_bytes(t * heads * d))?;
        if dst.ctx_len > table.max_pos {
            return Err(Error::Invalid(format!(
                "cache length {} exceeds the RoPE table ({} positions)",
                dst.ctx_len, table.max_pos
            )));
        }
        for (what, cache) in [("K cache", dst.k_cache), ("V cache", dst.v_cache)] {
            check_buf(what, cache, act_bytes(dst.ctx_len * kv_heads * d))?;
        }
        let pipeline = self.ctx.pipeline("rope", &[])?;
        let params = RopeParams {
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: d as u32,
            tokens: t as u32,
            ctx: dst.ctx_len as u32,
            _pad: [0; 3],
        };
        let uniform = self.ctx.uniform("rope params", &params);
        g.push(
            &self.ctx,
            "rope",
            &pipeline,
            &[&uniform, qkv, tok, &table.buf, dst.q, dst.k_cache, dst.v_cache],
            per_item(t * (heads + 2 * kv_heads) * d / 2),
        );
        Ok(())
    }
}
