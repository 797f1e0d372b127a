//! Rotary position embedding (Meta's `precompute_freqs_cis`, with llama3 or linear frequency
//! scaling) of rotary pairs (2i, 2i + 1) — Meta's and GGUF's layout; the loader puts Hugging
//! Face q/k rows in that order — fused with the KV-cache append. Kernel: shaders/rope.wgsl.

use super::{act_bytes, check_buf, check_even, per_item, OutCols};
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

/// Where the RoPE epilogue of a decode q/k/v GEMV (shaders/rope_epilogue.wgsl) puts the attention
/// inputs: the fused norm-GEMV's `NormEpilogue::Rope` (ops::matmul_norm) and the int8 GEMV's
/// `GemvQ8::record_rope` (ops::gemv_q8). The q/k rows of the weight hold each rotary pair side
/// by side, as for [`Rope`].
#[derive(Clone, Copy)]
pub struct RopeEpilogue<'a> {
    /// Rotated q (T, H, D) and the caches.
    pub dst: RopeDst<'a>,
    /// (slot, position) per token.
    pub tok: &'a wgpu::Buffer,
    /// The RoPE (cos, sin) table.
    pub table: &'a RopeTable,
    /// Query heads H.
    pub heads: usize,
    /// KV heads.
    pub kv_heads: usize,
}

/// The RoPE epilogue's part of a GEMV's `Params` (rope_epilogue.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EpilogueParams {
    /// The q columns H D of the q/k/v output.
    pub q_cols: u32,
    /// The k (and v) columns Hkv D.
    pub kv_cols: u32,
    /// Head dimension D.
    pub head_dim: u32,
    /// Cache positions per slot.
    pub ctx: u32,
}

impl RopeEpilogue<'_> {
    /// Checks the epilogue for `t` tokens writing q/k/v output columns `cols`: the q/k/v width,
    /// the table's positions, the buffers' sizes.
    pub fn check(&self, cols: OutCols, t: usize) -> Result<()> {
        let d = self.table.head_dim;
        let (qd, kvd) = (self.heads * d, self.kv_heads * d);
        if cols.total != qd + 2 * kvd {
            return Err(Error::shape("q/k/v output", format!("{} columns, (H + 2 Hkv) D", qd + 2 * kvd), cols.total));
        }
        if self.table.max_pos < self.dst.ctx_len {
            return Err(Error::shape("RoPE table", format!("{} positions", self.dst.ctx_len), self.table.max_pos));
        }
        check_buf("rotated q", self.dst.q, act_bytes(t * qd))?;
        check_buf("token positions", self.tok, (t * 8) as u64)?;
        check_buf("k cache", self.dst.k_cache, act_bytes(self.dst.ctx_len * kvd))?;
        check_buf("v cache", self.dst.v_cache, act_bytes(self.dst.ctx_len * kvd))
    }

    /// The kernel parameters of an epilogue (zeros without one).
    pub(crate) fn params(r: Option<&Self>) -> EpilogueParams {
        r.map_or(EpilogueParams::default(), |r| EpilogueParams {
            q_cols: (r.heads * r.table.head_dim) as u32,
            kv_cols: (r.kv_heads * r.table.head_dim) as u32,
            head_dim: r.table.head_dim as u32,
            ctx: r.dst.ctx_len as u32,
        })
    }

    /// Stand-ins for bindings 5..8 of a kernel with the epilogue off: positions/table, K and V
    /// cache (three buffers, so the writable ones do not alias).
    pub(crate) fn stand_ins(ctx: &GpuContext) -> [wgpu::Buffer; 3] {
        ["unused tok/rope", "unused k", "unused v"].map(|label| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
    }

    /// Bindings 5..8 of this epilogue: positions, table, K cache, V cache.
    pub(crate) fn buffers(&self) -> [&wgpu::Buffer; 4] {
        [self.tok, &self.table.buf, self.dst.k_cache, self.dst.v_cache]
    }

    /// Bindings 5..8 of an epilogue ([`RopeEpilogue::buffers`]), or the stand-ins.
    pub(crate) fn bindings<'b>(r: Option<&'b Self>, unused: &'b [wgpu::Buffer; 3]) -> [&'b wgpu::Buffer; 4] {
        match r {
            Some(r) => r.buffers(),
            None => [&unused[0], &unused[0], &unused[1], &unused[2]],
        }
    }
}
