//! The Llama weights on the GPU and the per-layer forward, recorded into a [`Graph`].

use super::checkpoint::Checkpoint;
use super::config::LlamaConfig;
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::gpu::weight::Weight;
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::ops::{
    argmax::Argmax, attention::Attention, attention::AttentionIo, attention::AttentionShape, embedding::Embedding,
    gather::Gather, gemv_q8::GemvQ8, matmul::Matmul, matmul::MatmulOut, matmul_norm::MatmulNorm,
    matmul_norm::NormEpilogue, matmul_norm::RopeEpilogue, rms_norm::RmsNorm, rope::Rope, rope::RopeDst,
    rope::RopeTable, swiglu::Swiglu, w8a8::QuantGrain, w8a8::QuantInput, w8a8::QuantScratch, w8a8::W8a8, OutCols,
};
use std::borrow::Cow;

/// One decoder layer's weights (checkpoint names `model.layers.{i}.*`). Linear layers that share an
/// input are fused into one weight when their formats agree (always, for real checkpoints), so one
/// dispatch computes them all; otherwise each is its own weight writing its own output columns.
pub struct Layer {
    /// `input_layernorm.weight` (C)
    pub input_layernorm: Weight,
    /// `self_attn.{q,k,v}_proj.weight`: rows `[q; k; v]` ((H + 2 Hkv) D, C) as one weight, or the
    /// three projections in that order.
    pub qkv: Vec<Weight>,
    /// `self_attn.o_proj.weight` (C, H*D)
    pub o_proj: Weight,
    /// `post_attention_layernorm.weight` (C)
    pub post_attention_layernorm: Weight,
    /// `mlp.{gate,up}_proj.weight`: one weight (2I, C) with rows alternating gate, up (so each
    /// packed output word is a (gate, up) pair), or `[gate, up]` as two weights.
    pub gate_up: Vec<Weight>,
    /// `mlp.down_proj.weight` (C, I)
    pub down_proj: Weight,
}

/// Every kernel op, made once per context.
pub struct Ops {
    /// Matmul (GEMV/GEMM).
    pub matmul: Matmul,
    /// RMSNorm.
    pub rms_norm: RmsNorm,
    /// RoPE with the KV append.
    pub rope: Rope,
    /// Attention.
    pub attention: Attention,
    /// SwiGLU.
    pub swiglu: Swiglu,
    /// Embedding gather.
    pub embedding: Embedding,
    /// Argmax.
    pub argmax: Argmax,
    /// Row gather (the rows that get logits).
    pub gather: Gather,
    /// Decode GEMV with the RMSNorm fused in.
    pub matmul_norm: MatmulNorm,
    /// INT8 W8A8 linear layers, and the int8 quantization of activations.
    pub w8a8: W8a8,
    /// Decode GEMV of GGUF 4- and 6-bit block weights on int8 activations.
    pub gemv_q8: GemvQ8,
}

impl Ops {
    /// Whether a step of `t` tokens multiplies `w` in the int8-activation GEMV (ops::gemv_q8).
    pub fn q8(&self, w: &Weight, t: usize) -> bool {
        self.gemv_q8.takes(w, self.matmul.takes_gemv(t, w.dtype, w.cols))
    }
}

impl Ops {
    /// All ops on a context.
    pub fn new(ctx: &GpuContext) -> Self {
        Ops {
            matmul: Matmul::new(ctx),
            rms_norm: RmsNorm::new(ctx),
            rope: Rope::new(ctx),
            attention: Attention::new(ctx),
            swiglu: Swiglu::new(ctx),
            embedding: Embedding::new(ctx),
            gather: Gather::new(ctx),
            argmax: Argmax::new(ctx),
            matmul_norm: MatmulNorm::new(ctx),
            w8a8: W8a8::new(ctx),
            gemv_q8: GemvQ8::new(ctx),
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
    /// Of `weights`, the i-quant lookup grids beside their blocks (a few KB per weight buffer).
    pub weights_tables: u64,
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

    /// Two ledgers added (devices together).
    pub fn plus(&self, o: &MemoryLedger) -> MemoryLedger {
        MemoryLedger {
            weights: self.weights + o.weights,
            weights_expanded: self.weights_expanded + o.weights_expanded,
            weights_in_file: self.weights_in_file + o.weights_in_file,
            weights_tables: self.weights_tables + o.weights_tables,
            kv_cache: self.kv_cache + o.kv_cache,
            scratch: self.scratch + o.scratch,
        }
    }
}

/// A Llama model resident on one GPU, or split by layers over several (llama.cpp's
/// `--split-mode layer`): each device holds a [`Stage`], a run of consecutive layers with their
/// weights and KV cache; the hidden state passes from stage to stage through the host.
pub struct Llama {
    /// Its shape.
    pub config: LlamaConfig,
    /// The stages in layer order (one for a model on one device).
    pub stages: Vec<Stage>,
}

/// The layers one device holds.
pub struct Stage {
    /// The device.
    pub ctx: GpuContext,
    /// Index of its first layer in the model.
    pub first_layer: usize,
    /// `model.embed_tokens.weight` (V, C): on the first stage.
    pub embed_tokens: Option<Weight>,
    /// Its decoder layers.
    pub layers: Vec<Layer>,
    /// `model.norm.weight` (C): on the last stage.
    pub norm: Option<Weight>,
    /// `lm_head.weight` (V, C) on the last stage; None when tied to the embedding on the same
    /// stage (a split model whose embedding is tied holds a copy of it here).
    pub lm_head: Option<Weight>,
    /// The kernels, on this device.
    pub ops: Ops,
    ledger: MemoryLedger,
}

impl Stage {
    /// The output projection, on the last stage only (the one with the final norm): lm_head, or
    /// the embedding when tied.
    pub fn lm_head(&self) -> Option<&Weight> {
        self.norm.as_ref()?;
        self.lm_head.as_ref().or(self.embed_tokens.as_ref())
    }

    /// This device's weight memory.
    pub fn ledger(&self) -> MemoryLedger {
        self.ledger
    }
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
    /// (T, (H + 2 Hkv) D) q, k, v projections side by side
    pub qkv: wgpu::Buffer,
    /// (T, H*D) q after RoPE
    pub qr: wgpu::Buffer,
    /// (T, H*D) attention output
    pub attn: wgpu::Buffer,
    /// split-K attention partials (see `ops::attention::part_bytes`)
    pub attn_part: wgpu::Buffer,
    /// (T, 2I) gate and up projections (layout as [`Layer::gate_up`])
    pub gu: wgpu::Buffer,
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
        Self::load_split(std::slice::from_ref(ctx), &[ckpt.config.num_hidden_layers], ckpt, progress)
    }

    /// Uploads a checkpoint split by layers: `layers[d]` consecutive layers on device `ctxs[d]`
    /// (the first also takes the embedding, the last the final norm and lm_head).
    pub fn load_split(
        ctxs: &[GpuContext],
        layers: &[usize],
        ckpt: &Checkpoint,
        progress: impl FnMut(u64, u64),
    ) -> Result<Self> {
        let cfg = ckpt.config.clone();
        let n = cfg.num_hidden_layers;
        if ctxs.is_empty() || ctxs.len() != layers.len() || layers.iter().sum::<usize>() != n || layers.contains(&0) {
            return Err(Error::Invalid(format!(
                "a split of {n} layers over {} devices must give each device at least one layer and all {n} in \
                 all (got {layers:?})",
                ctxs.len()
            )));
        }
        if cfg.w8a8.as_ref().is_some_and(|q| q.quantizes("lm_head")) && !cfg.tie_word_embeddings {
            return Err(Error::Config {
                field: "quantization_config.ignore".into(),
                reason: "a quantized lm_head is not supported".into(),
            });
        }
        let mut ld = Loader {
            ctx: &ctxs[0],
            ckpt,
            total: ckpt.tensor_bytes(),
            done: 0,
            ledger: MemoryLedger::default(),
            progress,
            unflushed: 0,
        };
        let mut stages = Vec::with_capacity(ctxs.len());
        let mut first = 0;
        let bytes = split_bytes(ckpt, layers);
        for (d, (ctx, &count)) in ctxs.iter().zip(layers).enumerate() {
            ld.ctx = ctx;
            let range = first..first + count;
            let what =
                if ctxs.len() == 1 { "model weights".to_string() } else { format!("model weights on device {d}") };
            stages.push(ctx.guard_oom(&what, bytes[d], || ld.stage(range, d == 0, d + 1 == ctxs.len()))?);
            first += count;
        }
        Ok(Llama { config: cfg, stages })
    }

    /// Weight memory, all devices together (KV cache and scratch belong to sessions).
    pub fn ledger(&self) -> MemoryLedger {
        self.stages.iter().fold(MemoryLedger::default(), |a, s| a.plus(&s.ledger))
    }

    /// The stage of the last layers (final norm, lm_head).
    pub fn last(&self) -> &Stage {
        &self.stages[self.stages.len() - 1] // load_split makes at least one
    }

    /// Records Linear layers that share an input: `out (t, sum of rows) = x (t, C) @ [W_0; W_1 ...]^T`,
    /// each weight in its own format writing its own columns. W8A8 weights and the int8-activation
    /// GEMV quantize x into `s.quant` once for each grain, or use it as it is where `quantized`
    /// says it already holds x at that grain.
    #[allow(clippy::too_many_arguments)]
    fn linears(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        x: &wgpu::Buffer,
        parts: &[Weight],
        out: &wgpu::Buffer,
        t: usize,
        mut quantized: Option<QuantGrain>,
    ) -> Result<()> {
        let total = parts.iter().map(|w| w.rows).sum();
        let mut first = 0;
        for w in parts {
            let cols = OutCols { first, total };
            let grain = if w.dtype == WeightDtype::I8 {
                Some(QuantGrain::Token)
            } else {
                st.ops.q8(w, t).then_some(QuantGrain::Block)
            };
            if let Some(grain) = grain.filter(|&gr| quantized != Some(gr)) {
                st.ops.w8a8.quantize_from(g, x, QuantInput::Act, grain, &s.quant, w.cols, t)?;
                quantized = Some(grain);
            }
            if w.dtype == WeightDtype::I8 {
                st.ops.w8a8.matmul(g, &s.quant, w, out, cols, MatmulOut::Act, t)?;
            } else if grain.is_some() {
                st.ops.gemv_q8.record_cols(g, &s.quant, w, out, cols, MatmulOut::Act, t)?;
            } else {
                st.ops.matmul.record_cols(g, x, w, out, cols, MatmulOut::Act, t)?;
            }
            first += w.rows;
        }
        Ok(())
    }

    /// Records `out = rms_norm(x) @ [W_0; W_1 ...]^T` for Linear layers after the same norm: for
    /// W8A8 weights, and for block weights in the int8-activation decode GEMV, the norm writes the
    /// int8 activations directly; otherwise for decode the norm is fused into each GEMV
    /// (ops::matmul_norm) where that pays, else it is written to h once.
    fn normed_linears(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        norm: &Weight,
        parts: &[Weight],
        out: &wgpu::Buffer,
        t: usize,
    ) -> Result<()> {
        let eps = self.config.rms_norm_eps;
        if parts.iter().all(|w| st.ops.q8(w, t)) {
            st.ops.rms_norm.record_quant(g, &s.x, norm, QuantGrain::Block, &s.quant, t, eps)?;
            return self.linears(st, g, s, &s.h, parts, out, t, Some(QuantGrain::Block));
        }
        if t <= crate::ops::matmul_norm::MAX_TOKENS && parts.iter().all(|w| st.ops.matmul_norm.fuses(norm, w)) {
            return self.normed_gemvs(st, g, s, norm, parts, out, t, NormEpilogue::Cols);
        }
        if parts.iter().all(|w| w.dtype == WeightDtype::I8) && norm.cols.is_multiple_of(4) {
            st.ops.rms_norm.record_quant(g, &s.x, norm, QuantGrain::Token, &s.quant, t, eps)?;
            return self.linears(st, g, s, &s.h, parts, out, t, Some(QuantGrain::Token));
        }
        st.ops.rms_norm.record(g, &s.x, norm, &s.h, t, eps)?;
        self.linears(st, g, s, &s.h, parts, out, t, None)
    }

    /// Records q/k/v of `rms_norm(x)` with RoPE and the KV-cache append as the fused norm-GEMV's
    /// epilogue (q into `dst.q`, k and v into the caches) where this step can: decode, the
    /// subgroup kernel, every part a fused-norm weight. Returns whether it did.
    fn qkv_rope(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        w: &Layer,
        dst: RopeDst,
        table: &RopeTable,
        t: usize,
    ) -> Result<bool> {
        let norm = &w.input_layernorm;
        let fits = w.qkv.iter().all(|p| st.ops.matmul_norm.fuses(norm, p) && !st.ops.q8(p, t));
        if t > crate::ops::matmul_norm::MAX_TOKENS || !st.ops.matmul_norm.fuses_rope() || !fits {
            return Ok(false);
        }
        let cfg = &self.config;
        let rope =
            RopeEpilogue { dst, tok: &s.tok, table, heads: cfg.num_attention_heads, kv_heads: cfg.num_key_value_heads };
        self.normed_gemvs(st, g, s, norm, &w.qkv, &s.qkv, t, |cols| NormEpilogue::Rope(cols, rope))?;
        Ok(true)
    }

    /// Records the fused norm-GEMV of each of `parts` (weights after the same norm, side by side
    /// in the output), each writing its own columns as `epilogue(cols)` says.
    #[allow(clippy::too_many_arguments)]
    fn normed_gemvs<'a>(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        norm: &Weight,
        parts: &[Weight],
        out: &wgpu::Buffer,
        t: usize,
        epilogue: impl Fn(OutCols) -> NormEpilogue<'a>,
    ) -> Result<()> {
        let total = parts.iter().map(|w| w.rows).sum();
        let mut first = 0;
        for w in parts {
            let e = epilogue(OutCols { first, total });
            st.ops.matmul_norm.record(g, &s.x, norm, w, out, e, t, self.config.rms_norm_eps)?;
            first += w.rows;
        }
        Ok(())
    }

    /// Records `x (t, C) f32 += down_proj(silu(gate) * up)` of `h = rms_norm(x)`: for decode with
    /// a fused gate/up weight, one GEMV with the norm and the SwiGLU fused in, into `s.act`;
    /// otherwise the gate/up output `s.gu`, then the SwiGLU into `s.act` or, for a W8A8
    /// down_proj, straight into its int8 input.
    fn mlp(&self, st: &Stage, g: &mut Graph, s: &Scratch, w: &Layer, t: usize) -> Result<()> {
        let i = self.config.intermediate_size;
        let norm = &w.post_attention_layernorm;
        if let [gu] = &w.gate_up[..] {
            if t <= crate::ops::matmul_norm::MAX_TOKENS && st.ops.matmul_norm.fuses(norm, gu) && !st.ops.q8(gu, t) {
                let eps = self.config.rms_norm_eps;
                st.ops.matmul_norm.record(g, &s.x, norm, gu, &s.act, NormEpilogue::Swiglu, t, eps)?;
                return self.residual(st, g, s, &s.act, &w.down_proj, t);
            }
        }
        self.normed_linears(st, g, s, norm, &w.gate_up, &s.gu, t)?; // gu (T, 2I)
        let interleaved = w.gate_up.len() == 1;
        let (down, input, cols) = (&w.down_proj, QuantInput::Swiglu { interleaved }, OutCols::all(w.down_proj.rows));
        if down.dtype == crate::WeightDtype::I8 {
            st.ops.w8a8.quantize_from(g, &s.gu, input, QuantGrain::Token, &s.quant, i, t)?;
            return st.ops.w8a8.matmul(g, &s.quant, down, &s.x, cols, MatmulOut::AddF32, t);
        }
        if st.ops.q8(down, t) {
            st.ops.w8a8.quantize_from(g, &s.gu, input, QuantGrain::Block, &s.quant, i, t)?;
            return st.ops.gemv_q8.record_cols(g, &s.quant, down, &s.x, cols, MatmulOut::AddF32, t);
        }
        st.ops.swiglu.record(g, &s.gu, &s.act, i, t, interleaved)?; // act (T, I)
        self.residual(st, g, s, &s.act, &w.down_proj, t)
    }

    /// Records `x (t, C) f32 += input @ W^T`: the add is the matmul's epilogue.
    fn residual(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        input: &wgpu::Buffer,
        w: &Weight,
        t: usize,
    ) -> Result<()> {
        if w.dtype == crate::WeightDtype::I8 {
            return st.ops.w8a8.record(g, input, &s.quant, w, &s.x, MatmulOut::AddF32, t);
        }
        if st.ops.q8(w, t) {
            st.ops.w8a8.quantize_from(g, input, QuantInput::Act, QuantGrain::Block, &s.quant, w.cols, t)?;
            return st.ops.gemv_q8.record_cols(g, &s.quant, w, &s.x, OutCols::all(w.rows), MatmulOut::AddF32, t);
        }
        st.ops.matmul.record(g, input, w, &s.x, MatmulOut::AddF32, t)
    }

    /// Records stage `st`'s part of the forward of `t` tokens: the embedding (first stage), its
    /// layers, the final norm into `s.h` (last stage); `s.x` holds the residual stream between
    /// stages. `one_seq`: the tokens are one sequence at ascending positions (a prompt chunk),
    /// so the attention may run on matrix cores.
    #[allow(clippy::too_many_arguments)]
    pub fn record_stage(
        &self,
        st: &Stage,
        g: &mut Graph,
        s: &Scratch,
        kv: &KvCache,
        rope: &RopeTable,
        t: usize,
        one_seq: bool,
    ) -> Result<()> {
        let cfg = &self.config;
        let ops = &st.ops;
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let shape = AttentionShape { heads, kv_heads, head_dim: cfg.head_dim, ctx: kv.ctx_len };
        if let Some(embed) = &st.embed_tokens {
            ops.embedding.record(g, &s.ids, embed, &s.x, t)?; // x = embed_tokens[ids]
        }
        for (l, w) in st.layers.iter().enumerate() {
            // x = x + o_proj(attention(rope(rms_norm(x) @ [Wq; Wk; Wv]^T)))
            let dst = RopeDst { q: &s.qr, k_cache: &kv.k[l], v_cache: &kv.v[l], ctx_len: kv.ctx_len };
            if !self.qkv_rope(st, g, s, w, dst, rope, t)? {
                self.normed_linears(st, g, s, &w.input_layernorm, &w.qkv, &s.qkv, t)?; // qkv (T, (H + 2 Hkv) D)
                ops.rope.record(g, &s.qkv, &s.tok, rope, dst, heads, kv_heads, t)?;
            }
            let io = AttentionIo {
                q: &s.qr,
                tok: &s.tok,
                kcache: &kv.k[l],
                vcache: &kv.v[l],
                out: &s.attn, // (T, H*D)
                part: Some(&s.attn_part),
            };
            if one_seq {
                ops.attention.record_prompt(g, io, shape, t)?;
            } else {
                ops.attention.record(g, io, shape, t)?;
            }
            self.residual(st, g, s, &s.attn, &w.o_proj, t)?;
            // x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = rms_norm(x)
            self.mlp(st, g, s, w, t)?;
        }
        match &st.norm {
            Some(norm) => ops.rms_norm.record(g, &s.x, norm, &s.h, t, cfg.rms_norm_eps), // h = norm(x)
            None => Ok(()),
        }
    }
}

/// Layers per device for `n` layers over `devices` devices in the proportions `shares` (as
/// llama.cpp's `--tensor-split`: `[3, 1]` gives the first device three quarters; empty: even),
/// rounded at the cumulative boundaries so the counts add up to `n`.
pub fn layer_split(n: usize, devices: usize, shares: &[f64]) -> Result<Vec<usize>> {
    let shares = if shares.is_empty() { vec![1.0; devices] } else { shares.to_vec() };
    let total: f64 = shares.iter().sum();
    if shares.len() != devices || shares.iter().any(|s| !s.is_finite() || *s < 0.0) || total <= 0.0 {
        return Err(Error::Invalid(format!(
            "--split needs one non-negative share per device ({devices} devices, got {shares:?})"
        )));
    }
    let mut cum = 0.0;
    let mut prev = 0;
    let mut out = Vec::with_capacity(devices);
    for s in &shares {
        cum += s;
        let end = ((n as f64 * cum / total).round() as usize).min(n);
        out.push(end - prev);
        prev = end;
    }
    if out.contains(&0) {
        return Err(Error::Invalid(format!(
            "--split {shares:?} leaves a device without layers ({out:?} of {n}): give each a larger share or use fewer devices"
        )));
    }
    Ok(out)
}

/// A checkpoint tensor read for upload, in its stored format.
struct Fetched<'a> {
    name: String,
    dtype: WeightDtype,
    rows: usize,
    cols: usize,
    bytes: Cow<'a, [u8]>,
    /// W8A8: the per-row weight scales (`{module}.weight_scale`).
    scales: Option<Vec<f32>>,
    /// Checkpoint names read (the tensor and its scales).
    sources: Vec<String>,
    expanded: bool,
    /// Some(D): a q/k projection whose rows are read in [`rotary_source_row`] order.
    pairs: Option<usize>,
}

/// The stored row of fused-layout row `r` of a q/k projection with head dimension `d` stored as
/// Hugging Face does (each head's rotary pairs are rows (i, i + D/2)): the engine puts each pair
/// side by side, rows (2i, 2i + 1), as Meta and GGUF store them, so RoPE can rotate the two outputs
/// one GEMV lane computes (q . k within a head does not change).
fn rotary_source_row(r: usize, d: usize) -> usize {
    let (head, j) = (r / d, r % d);
    head * d + j / 2 + (j % 2) * (d / 2)
}

/// Checkpoint bytes of the tensors each device of a split holds (`layers[d]` consecutive layers
/// on device d): the first also the embedding, the last the final norm and lm_head — the
/// embedding again when it is tied and the devices are several.
pub fn split_bytes(ckpt: &Checkpoint, layers: &[usize]) -> Vec<u64> {
    let mut out = vec![0; layers.len()];
    let last = layers.len().saturating_sub(1);
    let stage_of = |l: usize| {
        let mut end = 0;
        layers.iter().position(|&n| {
            end += n;
            l < end
        })
    };
    for (name, t) in &ckpt.tensors {
        let bytes = t.range.len() as u64;
        let layer = name.strip_prefix("model.layers.").and_then(|r| r.split('.').next()?.parse().ok());
        match layer {
            Some(l) => {
                if let Some(d) = stage_of(l) {
                    out[d] += bytes;
                }
            }
            None if name.starts_with("model.embed_tokens") => {
                out[0] += bytes;
                if ckpt.config.tie_word_embeddings && last > 0 {
                    out[last] += bytes;
                }
            }
            None if name.starts_with("model.norm") => out[last] += bytes,
            None if name.starts_with("lm_head") && !ckpt.config.tie_word_embeddings => out[last] += bytes,
            // not uploaded: a tied checkpoint's copy of lm_head, GGUF's rope_freqs (read into
            // the config) ...
            None => {}
        }
    }
    out
}

impl Fetched<'_> {
    /// Stored row of row `r` (the [`rotary_source_row`] order for q/k).
    fn source_row(&self, r: usize) -> usize {
        self.pairs.map_or(r, |d| rotary_source_row(r, d))
    }

    /// Row `r` in its final order (empty where the tensor is shorter than its shape: the upload
    /// reports that row's size).
    fn row(&self, r: usize) -> &[u8] {
        let rb = self.dtype.row_bytes(self.cols);
        let i = self.source_row(r);
        self.bytes.get(i * rb..(i + 1) * rb).unwrap_or(&[])
    }

    /// The W8A8 scale of row `r` in its final order (0 without scales).
    fn scale(&self, r: usize) -> f32 {
        self.scales.as_ref().and_then(|s| s.get(self.source_row(r)).copied()).unwrap_or(0.0)
    }
}

/// Uploads a checkpoint tensor by tensor, keeping the memory ledger and the progress.
struct Loader<'a, P> {
    ctx: &'a GpuContext,
    ckpt: &'a Checkpoint,
    total: u64,
    done: u64,
    ledger: MemoryLedger,
    progress: P,
    /// GPU bytes uploaded since the last [`GpuContext::flush_uploads`].
    unflushed: u64,
}

impl<'a, P: FnMut(u64, u64)> Loader<'a, P> {
    /// Uploads the layers `range` to `self.ctx`, with the embedding when `first` and the final
    /// norm and lm_head when `last`; the stage's ledger is the loader's since the last stage.
    fn stage(&mut self, range: std::ops::Range<usize>, first: bool, last: bool) -> Result<Stage> {
        let cfg = &self.ckpt.config;
        let (c, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let qd = cfg.num_attention_heads * cfg.head_dim;
        let kvd = cfg.num_key_value_heads * cfg.head_dim;
        let (tied, head_dim, first_layer) = (cfg.tie_word_embeddings, cfg.head_dim, range.start);
        let embed_tokens = first.then(|| self.one("model.embed_tokens.weight", &[v, c])).transpose()?;
        // q/k rows with each rotary pair side by side: GGUF stores them so, HF's are reordered
        let pairs = (self.ckpt.format != super::Format::Gguf).then_some((2, head_dim));
        let mut layers = Vec::with_capacity(range.len());
        for l in range {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            let attn = |s: &str| (p(&format!("self_attn.{s}_proj.weight")), if s == "q" { qd } else { kvd });
            let mlp = |s: &str| (p(&format!("mlp.{s}_proj.weight")), i);
            layers.push(Layer {
                input_layernorm: self.one(&p("input_layernorm.weight"), &[c])?,
                qkv: self.fused(
                    &p("self_attn.{q,k,v}_proj.weight"),
                    &[attn("q"), attn("k"), attn("v")],
                    c,
                    false,
                    pairs,
                )?,
                o_proj: self.one(&p("self_attn.o_proj.weight"), &[c, qd])?,
                post_attention_layernorm: self.one(&p("post_attention_layernorm.weight"), &[c])?,
                gate_up: self.fused(&p("mlp.{gate,up}_proj.weight"), &[mlp("gate"), mlp("up")], c, true, None)?,
                down_proj: self.one(&p("mlp.down_proj.weight"), &[c, i])?,
            });
        }
        let norm = last.then(|| self.one("model.norm.weight", &[c])).transpose()?;
        // A checkpoint may carry lm_head even when tied; use it only when untied. A tied
        // embedding on another device is uploaded again here.
        let lm_head = match (last, tied) {
            (true, false) => Some(self.one("lm_head.weight", &[v, c])?),
            (true, true) if !first => Some(self.one("model.embed_tokens.weight", &[v, c])?),
            _ => None,
        };
        self.ctx.flush_uploads();
        self.unflushed = 0;
        Ok(Stage {
            ctx: self.ctx.clone(),
            first_layer,
            embed_tokens,
            layers,
            norm,
            lm_head,
            ops: Ops::new(self.ctx),
            ledger: std::mem::take(&mut self.ledger),
        })
    }

    /// Reads `name` (with its scales when W8A8 quantizes the module).
    fn fetch(&self, name: &str, shape: &[usize]) -> Result<Fetched<'a>> {
        let module = name.trim_end_matches(".weight");
        let (rows, cols) = if shape.len() == 1 { (1, shape[0]) } else { (shape[0], shape[1]) };
        let raw = self.ckpt.tensor(name, shape)?;
        let mut f = Fetched {
            name: name.to_string(),
            dtype: raw.dtype,
            rows,
            cols,
            bytes: raw.bytes,
            scales: None,
            sources: vec![name.to_string()],
            expanded: raw.expanded_from.is_some(),
            pairs: None,
        };
        // compressed-tensors W8A8: `{module}.weight` I8 (rows, cols) + `{module}.weight_scale` (rows, 1)
        if self.ckpt.config.w8a8.as_ref().is_some_and(|q| module.ends_with("_proj") && q.quantizes(module)) {
            if f.dtype != WeightDtype::I8 {
                return Err(Error::UnsupportedDtype {
                    what: format!("{name} in a W8A8 checkpoint (expected I8)"),
                    dtype: f.dtype.name().into(),
                });
            }
            let scale_name = format!("{module}.weight_scale");
            let scales = self.ckpt.tensor(&scale_name, &[rows, 1])?;
            f.scales = Some(scales.dtype.decode(&scales.bytes));
            f.sources.push(scale_name);
        }
        Ok(f)
    }

    /// Uploads one tensor.
    fn one(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        let f = self.fetch(name, shape)?;
        self.upload(f)
    }

    /// Uploads Linear weights of `rows_i x cols` that share an input as one weight `name` with
    /// their rows concatenated (or alternating, one row of each in turn, when `interleave`),
    /// if their formats agree; else one weight each. `pairs`: the first parts are q/k projections
    /// stored Hugging Face style with this head dimension, whose rows are reordered
    /// ([`rotary_source_row`]).
    fn fused(
        &mut self,
        name: &str,
        parts: &[(String, usize)],
        cols: usize,
        interleave: bool,
        pairs: Option<(usize, usize)>,
    ) -> Result<Vec<Weight>> {
        let mut parts: Vec<Fetched> =
            parts.iter().map(|(n, rows)| self.fetch(n, &[*rows, cols])).collect::<Result<_>>()?;
        if let Some((n, d)) = pairs {
            parts.iter_mut().take(n).for_each(|f| f.pairs = Some(d));
        }
        let first = &parts[0];
        let same = parts.iter().all(|f| {
            f.dtype == first.dtype && f.scales.is_some() == first.scales.is_some() && f.expanded == first.expanded
        });
        if !same || (interleave && parts.iter().any(|f| f.rows != first.rows)) {
            return parts.into_iter().map(|f| self.upload(f)).collect();
        }
        // rows gathered straight into the GPU buffers (block formats repacked on the way): no
        // host copy of the fused weight
        let (n, dtype, w8a8) = (parts.len(), first.dtype, first.scales.is_some());
        let rows: usize = parts.iter().map(|f| f.rows).sum();
        let starts: Vec<usize> = parts.iter().scan(0, |acc, f| Some(std::mem::replace(acc, *acc + f.rows))).collect();
        let part_row = |r: usize| -> (&Fetched, usize) {
            if interleave {
                (&parts[r % n], r / n)
            } else {
                let p = starts.partition_point(|&s| s <= r) - 1;
                (&parts[p], r - starts[p])
            }
        };
        let w = if w8a8 {
            Weight::upload_w8a8_rows(self.ctx, name, rows, cols, |r| {
                let (f, i) = part_row(r);
                (f.row(i), f.scale(i))
            })?
        } else {
            Weight::upload_rows(self.ctx, name, dtype, rows, cols, |r| {
                let (f, i) = part_row(r);
                f.row(i)
            })?
        };
        let file_bytes = parts.iter().flat_map(|f| &f.sources).map(|n| self.ckpt.tensors[n].range.len() as u64).sum();
        let expanded = parts.iter().any(|f| f.expanded);
        let sources: Vec<String> = parts.iter().flat_map(|f| f.sources.clone()).collect();
        drop(parts);
        Ok(vec![self.account(w, &sources, file_bytes, expanded)])
    }

    fn upload(&mut self, f: Fetched) -> Result<Weight> {
        let w = match &f.scales {
            Some(_) => Weight::upload_w8a8_rows(self.ctx, &f.name, f.rows, f.cols, |r| (f.row(r), f.scale(r)))?,
            None => Weight::upload_rows(self.ctx, &f.name, f.dtype, f.rows, f.cols, |r| f.row(r))?,
        };
        let file_bytes: u64 = f.sources.iter().map(|n| self.ckpt.tensors[n].range.len() as u64).sum();
        drop(f.bytes);
        Ok(self.account(w, &f.sources, file_bytes, f.expanded))
    }

    /// Books an uploaded weight in the ledger and the progress, and releases its host pages.
    fn account(&mut self, w: Weight, sources: &[String], file_bytes: u64, expanded: bool) -> Weight {
        self.ledger.weights += w.gpu_bytes();
        self.ledger.weights_in_file += file_bytes;
        self.ledger.weights_tables += w.table_bytes();
        if expanded {
            self.ledger.weights_expanded += w.gpu_bytes();
        }
        for n in sources {
            self.ckpt.release(n);
        }
        self.done += file_bytes;
        self.unflushed += w.gpu_bytes();
        if self.unflushed >= 1 << 30 {
            self.ctx.flush_uploads();
            self.unflushed = 0;
        }
        (self.progress)(self.done, self.total);
        w
    }
}
