//! The Llama weights on the GPU and the per-layer forward, recorded into a [`Graph`].

use super::checkpoint::Checkpoint;
use super::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::ops::{
    add::Add, argmax::Argmax, attention::Attention, attention::AttentionShape, embedding::Embedding, kv_write::KvWrite,
    matmul::Matmul, matmul::MatmulOut, matmul::GEMV_MAX_TOKENS, matmul_norm::MatmulNorm, rms_norm::RmsNorm, rope::Rope,
    rope::RopeDst, rope::RopeTable, swiglu::Swiglu, w8a8::QuantScratch, w8a8::W8a8,
};

/// One decoder layer's weights (names as in the checkpoint, `model.layers.{i}.*`).
pub struct Layer {
    /// `input_layernorm.weight` (C)
    pub input_layernorm: Weight,
    /// `self_attn.q_proj.weight` (H*D, C)
    pub q_proj: Weight,
    /// `self_attn.k_proj.weight` (Hkv*D, C)
    pub k_proj: Weight,
    /// `self_attn.v_proj.weight` (Hkv*D, C)
    pub v_proj: Weight,
    /// `self_attn.o_proj.weight` (C, H*D)
    pub o_proj: Weight,
    /// `post_attention_layernorm.weight` (C)
    pub post_attention_layernorm: Weight,
    /// `mlp.gate_proj.weight` (I, C)
    pub gate_proj: Weight,
    /// `mlp.up_proj.weight` (I, C)
    pub up_proj: Weight,
    /// `mlp.down_proj.weight` (C, I)
    pub down_proj: Weight,
}

/// Every kernel op, made once per context.
pub struct Ops {
    /// Matmul (GEMV/GEMM).
    pub matmul: Matmul,
    /// RMSNorm.
    pub rms_norm: RmsNorm,
    /// RoPE.
    pub rope: Rope,
    /// KV append.
    pub kv_write: KvWrite,
    /// Attention.
    pub attention: Attention,
    /// SwiGLU.
    pub swiglu: Swiglu,
    /// Residual add.
    pub add: Add,
    /// Embedding gather.
    pub embedding: Embedding,
    /// Argmax.
    pub argmax: Argmax,
    /// Decode GEMV with the RMSNorm fused in.
    pub matmul_norm: MatmulNorm,
    /// INT8 W8A8 linear layers.
    pub w8a8: W8a8,
}

impl Ops {
    /// All ops on a context.
    pub fn new(ctx: &GpuContext) -> Self {
        Ops {
            matmul: Matmul::new(ctx),
            rms_norm: RmsNorm::new(ctx),
            rope: Rope::new(ctx),
            kv_write: KvWrite::new(ctx),
            attention: Attention::new(ctx),
            swiglu: Swiglu::new(ctx),
            add: Add::new(ctx),
            embedding: Embedding::new(ctx),
            argmax: Argmax::new(ctx),
            matmul_norm: MatmulNorm::new(ctx),
            w8a8: W8a8::new(ctx),
        }
    }
}

/// GPU memory by category, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryLedger {
    /// Weight buffers (the file's tensor bytes, plus padding to 16 bytes per buffer).
    pub weights: u64,
    /// Of `weights`, bytes of tensors expanded from a GGUF block format at load.
    pub weights_expanded: u64,
    /// Bytes the same tensors take in the checkpoint files.
    pub weights_in_file: u64,
    /// KV cache.
    pub kv_cache: u64,
    /// Activations, RoPE table, uniforms, readback.
    pub scratch: u64,
}

impl MemoryLedger {
    /// Everything on the GPU.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.scratch
    }
}

/// A Llama model resident on the GPU.
pub struct Llama {
    /// The context it lives on.
    pub ctx: GpuContext,
    /// Its shape.
    pub config: LlamaConfig,
    /// `model.embed_tokens.weight` (V, C)
    pub embed_tokens: Weight,
    /// Decoder layers.
    pub layers: Vec<Layer>,
    /// `model.norm.weight` (C)
    pub norm: Weight,
    /// `lm_head.weight` (V, C); None when tied to the embedding.
    pub lm_head: Option<Weight>,
    /// RoPE rotates interleaved pairs (GGUF's permuted Q/K rows) instead of HF halves.
    pub rope_interleaved: bool,
    /// The kernels.
    pub ops: Ops,
    ledger: MemoryLedger,
}

/// Scratch activations for up to `t` tokens (shapes in comments).
pub struct Scratch {
    /// (T) token ids
    pub ids: wgpu::Buffer,
    /// (T) (slot, pos)
    pub tok: wgpu::Buffer,
    /// (T, C) f32 residual stream
    pub x: wgpu::Buffer,
    /// (T, C) normed input / projection output
    pub h: wgpu::Buffer,
    /// (T, H*D)
    pub q: wgpu::Buffer,
    /// (T, H*D) q after RoPE
    pub qr: wgpu::Buffer,
    /// (T, Hkv*D)
    pub k: wgpu::Buffer,
    /// (T, Hkv*D)
    pub v: wgpu::Buffer,
    /// (T, H*D) attention output
    pub attn: wgpu::Buffer,
    /// split-K attention partials (see `ops::attention::part_bytes`)
    pub attn_part: wgpu::Buffer,
    /// (T, I)
    pub gate: wgpu::Buffer,
    /// (T, I)
    pub up: wgpu::Buffer,
    /// (T, I) silu(gate) * up
    pub act: wgpu::Buffer,
    /// W8A8 only: int8 activations and their per-token scales (tiny otherwise)
    pub quant: QuantScratch,
}

/// Per-layer KV cache buffers, each (slots, ctx, Hkv, D) packed.
pub struct KvCache {
    /// K per layer.
    pub k: Vec<wgpu::Buffer>,
    /// V per layer.
    pub v: Vec<wgpu::Buffer>,
    /// Positions per slot.
    pub ctx_len: usize,
    /// Sequence slots.
    pub slots: usize,
}

impl Llama {
    /// Uploads a checkpoint's weights tensor by tensor; `progress(done, total)` in bytes.
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, progress: impl FnMut(u64, u64)) -> Result<Self> {
        ctx.guard_oom("model weights", || Self::load_inner(ctx, ckpt, progress))
    }

    fn load_inner(ctx: &GpuContext, ckpt: &Checkpoint, mut progress: impl FnMut(u64, u64)) -> Result<Self> {
        let cfg = ckpt.config.clone();
        let (c, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let qd = cfg.num_attention_heads * cfg.head_dim;
        let kvd = cfg.num_key_value_heads * cfg.head_dim;
        let total = ckpt.tensor_bytes();
        let mut done = 0u64;
        let mut ledger = MemoryLedger::default();
        let w8a8 = cfg.w8a8.clone();
        if w8a8.as_ref().is_some_and(|q| q.quantizes("lm_head")) && !cfg.tie_word_embeddings {
            return Err(Error::Config {
                field: "quantization_config.ignore".into(),
                reason: "a quantized lm_head is not supported".into(),
            });
        }
        let mut load = |name: &str, shape: &[usize]| -> Result<Weight> {
            let module = name.trim_end_matches(".weight");
            let (rows, cols) = if shape.len() == 1 { (1, shape[0]) } else { (shape[0], shape[1]) };
            let (w, file_bytes, expanded) = match &w8a8 {
                // compressed-tensors W8A8: `{module}.weight` I8 (rows, cols) + `{module}.weight_scale` (rows, 1)
                Some(q) if module.ends_with("_proj") && q.quantizes(module) => {
                    let raw = ckpt.tensor(name, shape)?;
                    if raw.dtype != crate::WeightDtype::I8 {
                        return Err(Error::UnsupportedDtype {
                            what: format!("{name} in a W8A8 checkpoint (expected I8)"),
                            dtype: raw.dtype.name().into(),
                        });
                    }
                    let scale_name = format!("{module}.weight_scale");
                    let scales = ckpt.tensor(&scale_name, &[rows, 1])?;
                    let scales = scales.dtype.decode(&scales.bytes);
                    let w = Weight::upload_w8a8(ctx, name, rows, cols, &raw.bytes, &scales)?;
                    ckpt.release(&scale_name);
                    (w, (ckpt.tensors[name].range.len() + ckpt.tensors[&scale_name].range.len()) as u64, false)
                }
                _ => {
                    let raw = ckpt.tensor(name, shape)?;
                    let w = Weight::upload(ctx, name, raw.dtype, rows, cols, &raw.bytes)?;
                    (w, ckpt.tensors[name].range.len() as u64, raw.expanded_from.is_some())
                }
            };
            ledger.weights += w.gpu_bytes();
            ledger.weights_in_file += file_bytes;
            if expanded {
                ledger.weights_expanded += w.gpu_bytes();
            }
            ckpt.release(name);
            done += file_bytes;
            progress(done, total);
            Ok(w)
        };
        let embed_tokens = load("model.embed_tokens.weight", &[v, c])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            layers.push(Layer {
                input_layernorm: load(&p("input_layernorm.weight"), &[c])?,
                q_proj: load(&p("self_attn.q_proj.weight"), &[qd, c])?,
                k_proj: load(&p("self_attn.k_proj.weight"), &[kvd, c])?,
                v_proj: load(&p("self_attn.v_proj.weight"), &[kvd, c])?,
                o_proj: load(&p("self_attn.o_proj.weight"), &[c, qd])?,
                post_attention_layernorm: load(&p("post_attention_layernorm.weight"), &[c])?,
                gate_proj: load(&p("mlp.gate_proj.weight"), &[i, c])?,
                up_proj: load(&p("mlp.up_proj.weight"), &[i, c])?,
                down_proj: load(&p("mlp.down_proj.weight"), &[c, i])?,
            });
        }
        let norm = load("model.norm.weight", &[c])?;
        // A checkpoint may carry lm_head even when tied; use it only when untied.
        let lm_head = if cfg.tie_word_embeddings { None } else { Some(load("lm_head.weight", &[v, c])?) };
        Ok(Llama {
            ctx: ctx.clone(),
            config: cfg,
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope_interleaved: ckpt.format == super::Format::Gguf,
            ops: Ops::new(ctx),
            ledger,
        })
    }

    /// Weight memory (KV cache and scratch belong to sessions).
    pub fn ledger(&self) -> MemoryLedger {
        self.ledger
    }

    /// The output projection (lm_head, or the embedding when tied).
    pub fn lm_head(&self) -> &Weight {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Records Linear layers that share an input: `out_i (t, W_i.rows) = x (t, C) @ W_i^T`, each
    /// in its weight's own format (W8A8 weights quantize x once for all of them).
    fn linears(
        &self,
        g: &mut Graph,
        s: &Scratch,
        x: &wgpu::Buffer,
        layers: &[(&Weight, &wgpu::Buffer)],
        t: usize,
    ) -> Result<()> {
        let mut quantized = false;
        for &(w, out) in layers {
            if w.dtype == crate::WeightDtype::I8 {
                if !quantized {
                    self.ops.w8a8.quantize(g, x, &s.quant, w.cols, t)?;
                    quantized = true;
                }
                self.ops.w8a8.matmul(g, &s.quant, w, out, t)?;
            } else {
                self.ops.matmul.record(g, x, w, out, MatmulOut::Act, t)?;
            }
        }
        Ok(())
    }

    /// Records `out_i = rms_norm(x) @ W_i^T` for Linear layers after the same norm: for decode
    /// the norm is fused into each GEMV (ops::matmul_norm); otherwise it is written to h once.
    fn normed_linears(
        &self,
        g: &mut Graph,
        s: &Scratch,
        norm: &Weight,
        layers: &[(&Weight, &wgpu::Buffer)],
        t: usize,
    ) -> Result<()> {
        let eps = self.config.rms_norm_eps;
        if t <= GEMV_MAX_TOKENS && layers.iter().all(|(w, _)| MatmulNorm::supports(norm, w)) {
            for &(w, out) in layers {
                self.ops.matmul_norm.record(g, &s.x, norm, w, out, t, eps)?;
            }
            return Ok(());
        }
        self.ops.rms_norm.record(g, &s.x, norm, &s.h, t, eps)?;
        self.linears(g, s, &s.h, layers, t)
    }

    /// Records `x (t, C) f32 += input @ W^T`: the add is the float matmul's epilogue; W8A8
    /// writes h and adds it.
    fn residual(&self, g: &mut Graph, s: &Scratch, input: &wgpu::Buffer, w: &Weight, t: usize) -> Result<()> {
        if w.dtype == crate::WeightDtype::I8 {
            self.ops.w8a8.record(g, input, &s.quant, w, &s.h, t)?;
            return self.ops.add.record(g, &s.x, &s.h, t * w.rows);
        }
        self.ops.matmul.record(g, input, w, &s.x, MatmulOut::AddF32, t)
    }

    /// Records the forward of `t` tokens: embeddings, every layer, final norm into `s.h`.
    pub fn record_body(&self, g: &mut Graph, s: &Scratch, kv: &KvCache, rope: &RopeTable, t: usize) -> Result<()> {
        let cfg = &self.config;
        let ops = &self.ops;
        let (i, eps) = (cfg.intermediate_size, cfg.rms_norm_eps);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let shape = AttentionShape { heads, kv_heads, head_dim: cfg.head_dim, ctx: kv.ctx_len };
        let kvd = kv_heads * cfg.head_dim;
        ops.embedding.record(g, &s.ids, &self.embed_tokens, &s.x, t)?; // x = embed_tokens[ids]
        for (l, w) in self.layers.iter().enumerate() {
            // h = attention(rms_norm(x)); x = x + o_proj(h)
            // q (T, H*D), k (T, Hkv*D), v (T, Hkv*D) = rms_norm(x) @ W^T
            self.normed_linears(
                g,
                s,
                &w.input_layernorm,
                &[(&w.q_proj, &s.q), (&w.k_proj, &s.k), (&w.v_proj, &s.v)],
                t,
            )?;
            ops.rope.record(g, &s.q, &s.tok, rope, RopeDst::Act(&s.qr), heads, t, self.rope_interleaved)?;
            ops.rope.record(
                g,
                &s.k,
                &s.tok,
                rope,
                RopeDst::Cache(&kv.k[l], kv.ctx_len),
                kv_heads,
                t,
                self.rope_interleaved,
            )?;
            ops.kv_write.record(g, &s.v, &s.tok, &kv.v[l], kvd, t, kv.ctx_len)?;
            ops.attention.record(g, &s.qr, &s.tok, &kv.k[l], &kv.v[l], &s.attn, Some(&s.attn_part), shape, t)?; // (T, H*D)
            self.residual(g, s, &s.attn, &w.o_proj, t)?; // x += o_proj(attn)
                                                         // x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = rms_norm(x)
                                                         // gate, up (T, I) = rms_norm(x) @ W^T
            self.normed_linears(g, s, &w.post_attention_layernorm, &[(&w.gate_proj, &s.gate), (&w.up_proj, &s.up)], t)?;
            ops.swiglu.record(g, &s.gate, &s.up, &s.act, t * i)?;
            self.residual(g, s, &s.act, &w.down_proj, t)?; // x += down_proj(act)
        }
        ops.rms_norm.record(g, &s.x, &self.norm, &s.h, t, eps) // h = norm(x)
    }
}
