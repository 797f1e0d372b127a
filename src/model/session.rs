//! A session runs a model: it owns the KV cache (several sequence slots), scratch activations and
//! recorded graphs, and turns token chunks into logits or greedy next tokens.

use super::llama::{KvCache, Llama, MemoryLedger, Scratch, Step};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::ops::attention::{part_bytes, splits_for, AttentionShape, PROMPT_PAD};
use crate::ops::w8a8::{QuantGrain, QuantInput, QuantScratch};
use crate::ops::{act_bytes, argmax::NON_FINITE, matmul::MatmulOut, rope::RopeTable, MatmulDst};
use std::collections::HashMap;
use std::sync::Arc;

/// Tokens of one sequence to append at `pos` in cache slot `slot`.
#[derive(Clone, Copy, Debug)]
pub struct SeqChunk<'a> {
    /// KV cache slot (one per independent sequence).
    pub slot: usize,
    /// Position of the first token.
    pub pos: usize,
    /// Token ids.
    pub tokens: &'a [u32],
    /// Whether the tokens are the model's own output (decode steps), which may meet 4/6/8-bit
    /// block weights as int8 activations; prompt tokens (false) always keep 16-bit activations.
    /// A step runs int8 only when all its chunks are generated.
    pub generated: bool,
}

impl<'a> SeqChunk<'a> {
    /// Prompt tokens `tokens` at `pos` of `slot`.
    pub fn prompt(slot: usize, pos: usize, tokens: &'a [u32]) -> Self {
        SeqChunk { slot, pos, tokens, generated: false }
    }

    /// Generated tokens (usually one) at `pos` of `slot`.
    pub fn generated(slot: usize, pos: usize, tokens: &'a [u32]) -> Self {
        SeqChunk { slot, pos, tokens, generated: true }
    }
}

/// Which rows of the forward get logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rows {
    /// This many rows picked by the row index buffer (each chunk's last token; the indices are
    /// written per step, so one graph serves every step with the same counts).
    Last(usize),
    /// Rows `first..first + n` (a block of [`Session::logits_all`]).
    Range(usize, usize),
}

/// What a recorded graph does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct GraphKey {
    /// The tokens through the model's body.
    step: Step,
    /// The rows that get logits.
    rows: Rows,
    /// Whether it ends in the argmax of each row (greedy ids) rather than logits.
    argmax: bool,
    /// Whether it runs the model's body (false: only the logits of rows the previous graph's
    /// body left in `h`).
    body: bool,
}

impl GraphKey {
    /// The graph of a greedy step of `step`: the argmax of each chunk's last token (one token per
    /// chunk in a decode step).
    fn greedy(step: Step, chunks: usize) -> GraphKey {
        GraphKey { step, rows: Rows::Last(chunks), argmax: true, body: true }
    }
}

/// The cache positions a step of `t` tokens whose last position is below `end` lets its attention
/// read ([`Step::keys`]), out of a cache of `ctx` positions, for `heads` heads: the smallest power
/// of two from 64 that holds `end`, or the whole cache where that splits the keys
/// ([`splits_for`]) into as many ranges as the whole cache does (so that steps record fewer
/// graphs). A short sequence in a long cache then runs a few split-K workgroups instead of one per
/// 64 positions of the cache (lavapipe, SmolLM2 decode at a 4,096-position cache: 2.8 -> 5.4-5.6
/// tok/s, what a 64-position cache gives).
fn attention_keys(end: usize, t: usize, heads: usize, ctx: usize) -> usize {
    let b = end.next_power_of_two().max(64).min(ctx);
    if splits_for(t, heads, b) == splits_for(t, heads, ctx) {
        ctx
    } else {
        b
    }
}

/// The chunks whose result is not `known` (the session's memo of rerun prompt tokens).
fn not_known<'a, T>(chunks: &[SeqChunk<'a>], known: &[Option<T>]) -> Vec<SeqChunk<'a>> {
    chunks.iter().zip(known).filter(|(_, k)| k.is_none()).map(|(c, _)| *c).collect()
}

/// One result per chunk: the known ones, and those `ran` computed for the rest, in order.
fn merge_known<T>(known: Vec<Option<T>>, ran: impl IntoIterator<Item = T>) -> Result<Vec<T>> {
    let mut ran = ran.into_iter();
    let merged: Option<Vec<T>> = known.into_iter().map(|k| k.or_else(|| ran.next())).collect();
    match (merged, ran.next()) {
        (Some(m), None) => Ok(m),
        _ => Err(Error::Invalid("a step's results do not match its chunks (internal error)".into())),
    }
}

/// Recorded graphs a session keeps; the least recently used goes first (a server's steps mix
/// decodes with prompt pieces, so their token counts vary).
const GRAPH_CACHE: usize = 64;

/// Rows of logits a session holds at once (more when it has more sequence slots):
/// [`Session::logits_all`] reads longer pieces block by block. (The logits take rows x vocabulary
/// x 4 bytes: 8 MiB for 16 rows of a 128,256 vocabulary; their host-readable copy holds one row
/// and grows to the most a read has asked for.)
pub const LOGIT_ROWS: usize = 16;

/// A greedy decode step submitted before the host read its input: its token is the one the
/// previous step's argmax left on the GPU (`input`, read back meanwhile), placed at `pos` of
/// `slot`; its ids come back in `id_staging[staging]` once submission `done` has run.
struct Ahead {
    slot: usize,
    pos: usize,
    input: u32,
    staging: usize,
    done: wgpu::SubmissionIndex,
}

/// One device's buffers: its layers' KV cache, scratch activations and RoPE table, and (every
/// device but the last) a host-readable copy of the residual stream it hands to the next.
struct StageBufs {
    scratch: Scratch,
    kv: KvCache,
    rope: RopeTable,
    handoff: Option<wgpu::Buffer>, // (T, C) f32
    bytes: u64,                    // scratch, RoPE table, handoff
}

/// What the last token of a slot's latest prompt chunk (at `pos`, id `token`) gave: its logits
/// (a logits step) or its greedy id (a greedy step). Kept while the slot's cache up to `pos` is
/// unchanged: a request that repeats a cached prompt reruns its last token (to have something to
/// sample from) and gets this back as it was, whatever kernels a one-token step would take — with
/// int8 decode steps after it, a last token recomputed by the GEMV instead of the prompt's GEMM
/// changed SmolLM2's seeded sample.
struct LastPrompt {
    pos: usize,
    token: u32,
    logits: Option<Vec<f32>>,
    id: Option<u32>,
}

/// A model with its KV cache and scratch buffers (on each device of a split model).
///
/// Greedy decoding runs one step ahead: [`Session::forward_greedy`] on one sequence also submits
/// the next step, fed on the GPU with this step's argmax, before it reads this step's id back, so
/// the GPU does not wait for the host between tokens. When the caller then asks for exactly that
/// step (the same slot, the next position, the id it got), it is already running; any other call
/// leaves it be — it only wrote the KV cache at a position the caller has not committed, which
/// the next forward to reach that position overwrites first. (A split model's steps pass the
/// hidden state through the host, so they do not run ahead.)
pub struct Session {
    /// The model.
    pub model: Arc<Llama>,
    stages: Vec<StageBufs>,
    // on the last device:
    hsel: wgpu::Buffer,     // (R, C) rows that need logits
    hsel_idx: wgpu::Buffer, // (R) u32 their rows in h
    logits: wgpu::Buffer,   // (R, V) f32
    next: wgpu::Buffer,     // (R, V/4096) argmax partials
    next_ids: wgpu::Buffer, // (R) u32 argmax ids
    staging: wgpu::Buffer,  // host-readable copy of logits: one row, grown to what a read needs
    // host-readable ids, two so that one step's copy can be in flight while the other is read
    id_staging: [wgpu::Buffer; 2],
    flip: usize,
    ahead: Option<Ahead>,
    last_prompt: Vec<Option<LastPrompt>>, // per slot
    /// Most tokens in one forward.
    pub max_tokens: usize,
    /// Most rows of logits in one forward.
    pub max_logit_rows: usize,
    head_bytes: u64,                                  // the buffers above
    graphs: HashMap<(usize, GraphKey), (Graph, u64)>, // per stage, with the step that last used it
    steps: u64,
}

impl StageBufs {
    /// Buffers on `ctx` for `layers` layers; `handoff`: a stage before the last.
    fn new(
        ctx: &GpuContext,
        cfg: &super::config::LlamaConfig,
        layers: usize,
        slots: usize,
        ctx_len: usize,
        max_tokens: usize,
        handoff: bool,
    ) -> Result<Self> {
        let (c, i) = (cfg.hidden_size, cfg.intermediate_size);
        let qd = cfg.num_attention_heads * cfg.head_dim;
        let kvd = cfg.num_key_value_heads * cfg.head_dim;
        // + the positions the matrix-core prompt attention may read past the last slot
        let kv_bytes = act_bytes((slots * ctx_len + PROMPT_PAD) * kvd);
        if kv_bytes > ctx.max_binding {
            return Err(Error::Invalid(format!(
                "a KV cache of {slots} x {ctx_len} positions takes {kv_bytes} bytes per layer, over this adapter's \
                 binding limit of {} bytes: lower the context length",
                ctx.max_binding
            )));
        }
        let t = max_tokens;
        let shape = AttentionShape {
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            ctx: ctx_len,
        };
        let mut bytes = 0;
        // int8 activations: W8A8 for every step; the block-weight GEMV (ops::gemv_q8) for decode
        // steps, which never exceed the GEMV's tokens (should the matrix cores be turned off
        // later, the GEMV takes fewer tokens, never more)
        let gemv_max = crate::ops::matmul::Matmul::new(ctx).max_gemv_tokens();
        let tq = if cfg.w8a8.is_some() { t } else { t.min(gemv_max) };
        let quant = QuantScratch::new(ctx, tq, c.max(i).max(qd))?;
        bytes += quant.bytes();
        let mut buf = |label: &str, size: u64| {
            bytes += size.div_ceil(4) * 4;
            ctx.storage(label, size)
        };
        let scratch = Scratch {
            ids: buf("ids", (t * 4) as u64)?,
            tok: buf("tok", (t * 8) as u64)?,
            x: buf("x", (t * c * 4) as u64)?,
            h: buf("h", act_bytes(t * c))?,
            qkv: buf("qkv", act_bytes(t * (qd + 2 * kvd)))?,
            qr: buf("qr", act_bytes(t.div_ceil(64) * 64 * qd))?, // rows to a multiple of 64 (PROMPT_PAD)
            attn: buf("attn", act_bytes(t * qd))?,
            attn_part: buf("attention split-K partials", (1..=t).map(|n| part_bytes(n, shape)).max().unwrap_or(16))?,
            gu: buf("gate/up", act_bytes(t * 2 * i))?,
            act: buf("act", act_bytes(t * i))?,
            quant,
        };
        let handoff = handoff.then(|| ctx.staging("hidden state handoff", (t * c * 4) as u64));
        bytes += handoff.as_ref().map_or(0, |b| b.size());
        let mut kv = KvCache { k: vec![], v: vec![], ctx_len, slots };
        for l in 0..layers {
            kv.k.push(ctx.storage(&format!("k cache {l}"), kv_bytes)?);
            kv.v.push(ctx.storage(&format!("v cache {l}"), kv_bytes)?);
        }
        let rope = RopeTable::new(ctx, cfg.head_dim, cfg.rope_theta, &cfg.rope_scaling, ctx_len)?;
        bytes += rope.buf.size();
        Ok(StageBufs { scratch, kv, rope, handoff, bytes })
    }
}

impl Session {
    /// A session with `slots` sequences of up to `ctx_len` positions, forwarding at most
    /// `max_tokens` tokens at once.
    pub fn new(model: Arc<Llama>, slots: usize, ctx_len: usize, max_tokens: usize) -> Result<Self> {
        if slots == 0 || ctx_len == 0 || max_tokens == 0 {
            return Err(Error::Invalid("slots, context length and batch size must be positive".into()));
        }
        let cfg = &model.config;
        let per_layer = slots
            .saturating_mul(ctx_len)
            .saturating_add(PROMPT_PAD)
            .saturating_mul(cfg.num_key_value_heads * cfg.head_dim);
        let mut stages = Vec::with_capacity(model.stages.len());
        for (d, st) in model.stages.iter().enumerate() {
            let kv = act_bytes(per_layer).saturating_mul(2 * st.layers.len() as u64);
            let what = match model.stages.len() {
                1 => "KV cache and scratch buffers".to_string(),
                _ => format!("KV cache and scratch buffers on device {d}"),
            };
            let handoff = d + 1 < model.stages.len();
            let bufs = st.ctx.guard_oom(&what, kv, || {
                StageBufs::new(&st.ctx, cfg, st.layers.len(), slots, ctx_len, max_tokens, handoff)
            })?;
            stages.push(bufs);
        }
        let ctx = &model.last().ctx;
        let v = cfg.vocab_size;
        let max_logit_rows =
            LOGIT_ROWS.max(slots).min(max_tokens).min((ctx.max_binding / (v as u64 * 4)) as usize).max(1);
        let logits = (max_logit_rows * v * 4) as u64;
        let mut s = ctx.guard_oom("logit buffers", logits, || {
            Self::with_head(model.clone(), stages, max_tokens, max_logit_rows)
        })?;
        s.last_prompt = (0..slots).map(|_| None).collect();
        Ok(s)
    }

    /// The session around its stages' buffers: the logits buffers (`max_logit_rows` rows) on
    /// the last device.
    fn with_head(model: Arc<Llama>, stages: Vec<StageBufs>, max_tokens: usize, max_logit_rows: usize) -> Result<Self> {
        let ctx = model.last().ctx.clone();
        let (c, v) = (model.config.hidden_size, model.config.vocab_size);
        let mut head_bytes = 0;
        let mut buf = |label: &str, bytes: u64| {
            head_bytes += bytes.div_ceil(4) * 4;
            ctx.storage(label, bytes)
        };
        let hsel = buf("hsel", act_bytes(max_logit_rows * c))?;
        let hsel_idx = buf("hsel rows", (max_logit_rows * 4) as u64)?;
        let logits = buf("logits", (max_logit_rows * v * 4) as u64)?;
        let next = buf("argmax partials", crate::ops::argmax::partial_bytes(v, max_logit_rows))?;
        let next_ids = buf("argmax ids", (max_logit_rows * 4) as u64)?;
        let staging = ctx.staging("logits readback", (v * 4) as u64);
        let id_staging = [0, 1].map(|_| ctx.staging("ids readback", (max_logit_rows * 4) as u64));
        head_bytes += 2 * id_staging[0].size();
        Ok(Session {
            model,
            stages,
            hsel,
            hsel_idx,
            logits,
            next,
            next_ids,
            staging,
            id_staging,
            flip: 0,
            ahead: None,
            last_prompt: Vec::new(),
            max_tokens,
            max_logit_rows,
            head_bytes,
            graphs: HashMap::new(),
            steps: 0,
        })
    }

    /// GPU memory of the model plus this session, on each device in stage order.
    pub fn device_ledgers(&self) -> Vec<MemoryLedger> {
        let last = self.stages.len() - 1;
        let stages = self.model.stages.iter().zip(&self.stages).enumerate();
        stages
            .map(|(d, (st, b))| {
                let uniforms: u64 =
                    self.graphs.iter().filter(|(k, _)| k.0 == d).map(|(_, (g, _))| g.uniform_bytes).sum();
                let head = if d == last { self.head_bytes + self.staging.size() } else { 0 };
                MemoryLedger {
                    kv_cache: b.kv.k.iter().chain(&b.kv.v).map(|b| b.size()).sum(),
                    scratch: b.bytes + head + uniforms + st.ctx.scratch_bytes(),
                    ..st.ledger()
                }
            })
            .collect()
    }

    /// GPU memory of the model plus this session, all devices together.
    pub fn ledger(&self) -> MemoryLedger {
        self.device_ledgers().iter().fold(MemoryLedger::default(), |a, l| a.plus(l))
    }

    /// Context length per slot.
    pub fn ctx_len(&self) -> usize {
        self.stages[0].kv.ctx_len
    }

    /// The step of `chunks` (`t` tokens in all).
    fn step_of(&self, chunks: &[SeqChunk], t: usize) -> Step {
        let end = chunks.iter().map(|c| c.pos + c.tokens.len()).max().unwrap_or(1);
        let keys = attention_keys(end, t, self.model.config.num_attention_heads, self.ctx_len());
        Step { t, one_seq: chunks.len() == 1, int8: chunks.iter().all(|c| c.generated), keys }
    }

    /// Sequence slots.
    pub fn slots(&self) -> usize {
        self.stages[0].kv.slots
    }

    /// Validates chunks and writes ids and (slot, pos) for every token; returns the token count
    /// and the row index of each chunk's last token. (A step submitted ahead is left be.)
    fn prepare(&mut self, chunks: &[SeqChunk]) -> Result<(usize, Vec<usize>)> {
        self.ahead = None;
        // a lost device fails here, before any buffer or pipeline is made on it
        for st in &self.model.stages {
            st.ctx.check_fault()?;
        }
        let (slots, ctx_len) = (self.slots(), self.ctx_len());
        let cfg = &self.model.config;
        let mut ids = Vec::new();
        let mut tok = Vec::new();
        let mut last = Vec::new();
        for ch in chunks {
            if ch.tokens.is_empty() {
                return Err(Error::Invalid("empty token chunk".into()));
            }
            if ch.slot >= slots {
                return Err(Error::Invalid(format!("sequence slot {} out of range (session has {slots})", ch.slot)));
            }
            if self.last_prompt[ch.slot].as_ref().is_some_and(|m| ch.pos <= m.pos) {
                self.last_prompt[ch.slot] = None; // its cache up to there is rewritten
            }
            if ch.pos + ch.tokens.len() > ctx_len {
                return Err(Error::Invalid(format!(
                    "context full: positions {}..{} exceed the context length {ctx_len}",
                    ch.pos,
                    ch.pos + ch.tokens.len(),
                )));
            }
            for (j, &id) in ch.tokens.iter().enumerate() {
                if id as usize >= cfg.vocab_size {
                    return Err(Error::Invalid(format!(
                        "token id {id} is outside the vocabulary ({})",
                        cfg.vocab_size
                    )));
                }
                ids.push(id);
                tok.extend([ch.slot as u32, (ch.pos + j) as u32]);
            }
            last.push(ids.len() - 1);
        }
        if ids.len() > self.max_tokens {
            return Err(Error::Invalid(format!(
                "{} tokens in one forward exceed the session's {}",
                ids.len(),
                self.max_tokens
            )));
        }
        let first = &self.model.stages[0].ctx.queue;
        first.write_buffer(&self.stages[0].scratch.ids, 0, bytemuck::cast_slice(&ids));
        for (st, b) in self.model.stages.iter().zip(&self.stages) {
            st.ctx.queue.write_buffer(&b.scratch.tok, 0, bytemuck::cast_slice(&tok));
        }
        Ok((ids.len(), last))
    }

    /// Records stage `d`'s graph of `key` unless it is recorded: `t` tokens through its layers
    /// (when `body`); on the last stage then logits for `rows`, argmax ids into `next_ids` when
    /// `argmax`.
    fn ensure_graph(&mut self, d: usize, key: &GraphKey) -> Result<()> {
        self.steps += 1;
        if let Some(e) = self.graphs.get_mut(&(d, *key)) {
            e.1 = self.steps;
            return Ok(());
        }
        if self.graphs.len() >= GRAPH_CACHE * self.stages.len() {
            if let Some(old) = self.graphs.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| *k) {
                self.graphs.remove(&old);
            }
        }
        let GraphKey { step, rows, argmax, body } = *key;
        let (m, b) = (&self.model, &self.stages[d]);
        let st = &m.stages[d];
        let (c, v) = (m.config.hidden_size, m.config.vocab_size);
        let mut g = Graph::new();
        if body {
            m.record_stage(st, &mut g, &b.scratch, &b.kv, &b.rope, step)?;
        }
        if let Some(lm_head) = st.lm_head() {
            let row = act_bytes(c);
            let r = match rows {
                Rows::Last(n) => {
                    st.ops.gather.record(&mut g, &self.hsel_idx, &b.scratch.h, &self.hsel, c / 2, n)?;
                    n
                }
                Rows::Range(first, n) => {
                    g.copy(&b.scratch.h, first as u64 * row, &self.hsel, 0, n as u64 * row);
                    n
                }
            };
            if st.ops.q8(lm_head, Step { t: r, ..step }) {
                let (q, input) = (&b.scratch.quant, QuantInput::Act);
                st.ops.w8a8.quantize_from(&mut g, &self.hsel, input, QuantGrain::Block, q, c, r)?;
                st.ops.gemv_q8.record_cols(&mut g, q, lm_head, MatmulDst::all(&self.logits, v, MatmulOut::F32), r)?;
            } else {
                st.ops.matmul.record(&mut g, &self.hsel, lm_head, &self.logits, MatmulOut::F32, r)?;
                // (R, V)
            }
            if argmax {
                st.ops.argmax.record(&mut g, &self.logits, &self.next, &self.next_ids, v, r)?;
                // (R)
            }
        }
        self.graphs.insert((d, *key), (g, self.steps));
        Ok(())
    }

    /// Runs the stages before the last of `key`'s step (a split model): each one's graph, then
    /// its residual stream `x` through the host into the next one's.
    async fn run_early_stages(&mut self, key: &GraphKey) -> Result<()> {
        if !key.body {
            return Ok(());
        }
        let bytes = (key.step.t * self.model.config.hidden_size * 4) as u64;
        for d in 0..self.stages.len() - 1 {
            self.ensure_graph(d, key)?;
            let (ctx, b) = (&self.model.stages[d].ctx, &self.stages[d]);
            // every stage before the last has one (StageBufs::new)
            let handoff =
                b.handoff.as_ref().ok_or_else(|| Error::Invalid(format!("stage {d} has no handoff buffer")))?;
            let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("stage") });
            self.graphs[&(d, *key)].0.encode(&mut enc);
            enc.copy_buffer_to_buffer(&b.scratch.x, 0, handoff, 0, bytes);
            let done = ctx.queue.submit([enc.finish()]);
            let x = ctx.map_read(handoff, bytes, Some(done)).await?;
            self.model.stages[d + 1].ctx.queue.write_buffer(&self.stages[d + 1].scratch.x, 0, &x);
        }
        Ok(())
    }

    /// Submits the last stage's graph of `key` (recording it on first use; the stages before
    /// it have run) and a copy of `bytes` of its result — the argmax ids into the next id
    /// readback buffer, whose index it returns with the submission, or the logits into
    /// `staging`; with `feed` (one stage), the token ids are first taken from the previous
    /// step's argmax.
    fn submit(&mut self, key: &GraphKey, feed: bool, bytes: u64) -> Result<(usize, wgpu::SubmissionIndex)> {
        let d = self.stages.len() - 1;
        self.ensure_graph(d, key)?;
        let argmax = key.argmax;
        let k = if argmax { self.next_id_staging() } else { 0 };
        let (src, staging) = if argmax { (&self.next_ids, &self.id_staging[k]) } else { (&self.logits, &self.staging) };
        let ctx = &self.model.stages[d].ctx;
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        if feed {
            enc.copy_buffer_to_buffer(&self.next_ids, 0, &self.stages[d].scratch.ids, 0, 4);
        }
        self.graphs[&(d, *key)].0.encode(&mut enc);
        enc.copy_buffer_to_buffer(src, 0, staging, 0, bytes.div_ceil(4) * 4);
        Ok((k, ctx.queue.submit([enc.finish()])))
    }

    /// Runs the graph of `step` with logits for `rows` (recording it on first use) and reads
    /// back `bytes` of the logits in the same submit.
    async fn run_logits(&mut self, step: Step, rows: Rows, body: bool, bytes: u64) -> Result<Vec<u8>> {
        let ctx = self.model.last().ctx.clone();
        if self.staging.size() < bytes {
            self.staging = ctx.staging("logits readback", bytes);
        }
        let key = GraphKey { step, rows, argmax: false, body };
        self.run_early_stages(&key).await?;
        let (_, done) = self.submit(&key, false, bytes)?;
        ctx.map_read(&self.staging, bytes, Some(done)).await
    }

    /// The next of the two id readback buffers.
    fn next_id_staging(&mut self) -> usize {
        self.flip ^= 1;
        self.flip
    }

    /// Submits a one-token greedy step at `pos` of `slot` whose token is the previous step's
    /// argmax (row 0), still on the GPU; returns its id readback buffer and submission.
    fn submit_ahead(&mut self, slot: usize, pos: usize) -> Result<(usize, wgpu::SubmissionIndex)> {
        let q = &self.model.last().ctx.queue; // the only stage (a split model does not run ahead)
        q.write_buffer(&self.stages[0].scratch.tok, 0, bytemuck::cast_slice(&[slot as u32, pos as u32]));
        q.write_buffer(&self.hsel_idx, 0, bytemuck::bytes_of(&0u32));
        // the step forward_greedy records for this token (the token itself is on the GPU)
        let step = self.step_of(&[SeqChunk::generated(slot, pos, &[0])], 1);
        self.submit(&GraphKey::greedy(step, 1), true, 4)
    }

    /// Reads the ids of the sequences at `at` (slot, position of the row's token) from id
    /// readback buffer `k` once submission `done` has run; a row whose logits held a NaN or an
    /// infinity is an error, never a token.
    async fn read_ids(&self, k: usize, at: &[(usize, usize)], done: wgpu::SubmissionIndex) -> Result<Vec<u32>> {
        let bytes = self.model.last().ctx.map_read(&self.id_staging[k], (at.len() * 4) as u64, Some(done)).await?;
        let ids: Vec<u32> = bytemuck::cast_slice(&bytes).to_vec();
        match ids.iter().position(|id| id & NON_FINITE != 0) {
            Some(i) => Err(non_finite(at[i])),
            None => Ok(ids),
        }
    }

    /// The recorded greedy decode graph of `n` sequences, one token each (for profiling; a
    /// split model's first stage).
    pub fn decode_graph(&self, n: usize) -> Option<&Graph> {
        let decode = |k: &GraphKey| k.step.int8 && k.step.t == n && *k == GraphKey::greedy(k.step, n);
        let steps = self.graphs.iter().filter(|((d, k), _)| *d == 0 && decode(k));
        steps.max_by_key(|(_, (_, used))| *used).map(|(_, (g, _))| g)
    }

    /// The recorded forward with the most tokens (a prompt batch; for profiling; a split
    /// model's first stage).
    pub fn prefill_graph(&self) -> Option<&Graph> {
        let prompts = self.graphs.iter().filter(|((d, k), _)| *d == 0 && k.step.t > 1 && k.step.one_seq && k.body);
        prompts.max_by_key(|((_, k), _)| k.step.t).map(|(_, (g, _))| g)
    }

    /// The remembered result of a chunk that reruns the last token of its slot's latest prompt
    /// chunk on an unchanged cache (the session remembers it while the cache up to it is unchanged).
    fn remembered(&self, ch: &SeqChunk) -> Option<&LastPrompt> {
        let m = self.last_prompt.get(ch.slot)?.as_ref()?;
        (!ch.generated && ch.tokens == [m.token] && ch.pos == m.pos).then_some(m)
    }

    /// Remembers what the last token of each prompt chunk of a step gave.
    fn remember(&mut self, chunks: &[SeqChunk], logits: Option<&[f32]>, ids: Option<&[u32]>) {
        let v = self.model.config.vocab_size;
        for (i, ch) in chunks.iter().enumerate().filter(|(_, c)| !c.generated) {
            let (pos, token) = (ch.pos + ch.tokens.len() - 1, ch.tokens[ch.tokens.len() - 1]);
            let logits = logits.map(|l| l[i * v..(i + 1) * v].to_vec());
            self.last_prompt[ch.slot] = Some(LastPrompt { pos, token, logits, id: ids.map(|d| d[i]) });
        }
    }

    /// Runs the chunks and returns the logits of each chunk's last token, (chunks, V) f32.
    /// A chunk that reruns a cached prompt's last token gets the logits it had (the session
    /// remembers them while the cache up to it is unchanged).
    pub async fn forward_last(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<f32>> {
        let known: Vec<Option<Vec<f32>>> =
            chunks.iter().map(|c| self.remembered(c).and_then(|m| m.logits.clone())).collect();
        if known.iter().all(Option::is_none) {
            let logits = self.run_last(chunks).await?;
            self.remember(chunks, Some(&logits), None);
            return Ok(logits);
        }
        self.ahead = None;
        let rest = not_known(chunks, &known);
        let ran = if rest.is_empty() { vec![] } else { self.run_last(&rest).await? };
        self.remember(&rest, Some(&ran), None);
        let v = self.model.config.vocab_size;
        Ok(merge_known(known, ran.chunks(v).map(<[f32]>::to_vec))?.concat())
    }

    /// [`Session::forward_last`] on the GPU.
    async fn run_last(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<f32>> {
        let (t, last) = self.prepare(chunks)?;
        self.check_rows(last.len())?;
        let n = last.len() * self.model.config.vocab_size;
        self.write_rows(&last);
        let bytes = self.run_logits(self.step_of(chunks, t), Rows::Last(last.len()), true, (n * 4) as u64).await?;
        let logits: Vec<f32> = bytemuck::cast_slice(&bytes).to_vec();
        match first_non_finite_row(&logits, self.model.config.vocab_size) {
            Some(r) => Err(non_finite((chunks[r].slot, chunks[r].pos + chunks[r].tokens.len() - 1))),
            None => Ok(logits),
        }
    }

    /// Runs the chunks and returns the greedy next token of each chunk (argmax on the GPU;
    /// only the ids come back). For one sequence the next step runs ahead (see [`Session`]). A
    /// chunk that reruns a cached prompt's last token gets the id it had (the session remembers it while the cache up to it is unchanged).
    pub async fn forward_greedy(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<u32>> {
        let known: Vec<Option<u32>> = chunks
            .iter()
            .map(|c| self.remembered(c).and_then(|m| m.id.or_else(|| m.logits.as_deref().map(crate::sampling::argmax))))
            .collect();
        if known.iter().all(Option::is_none) {
            let ids = self.run_greedy(chunks).await?;
            self.remember(chunks, None, Some(&ids));
            return Ok(ids);
        }
        self.ahead = None;
        let rest = not_known(chunks, &known);
        let ran = if rest.is_empty() { vec![] } else { self.run_greedy(&rest).await? };
        self.remember(&rest, None, Some(&ran));
        merge_known(known, ran)
    }

    /// [`Session::forward_greedy`] on the GPU.
    async fn run_greedy(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<u32>> {
        if let ([ch], Some(a)) = (chunks, self.ahead.take()) {
            if (ch.slot, ch.pos, ch.tokens, ch.generated) == (a.slot, a.pos, &[a.input][..], true) {
                // this step is on the GPU already: queue the one after it, then read it
                let next = (a.pos + 1 < self.ctx_len()).then(|| self.submit_ahead(a.slot, a.pos + 1)).transpose()?;
                let id = self.read_ids(a.staging, &[(a.slot, a.pos)], a.done).await?[0];
                self.ahead =
                    next.map(|(staging, done)| Ahead { slot: a.slot, pos: a.pos + 1, input: id, staging, done });
                return Ok(vec![id]);
            }
        }
        let (t, last) = self.prepare(chunks)?;
        self.check_rows(last.len())?;
        let n = last.len();
        self.write_rows(&last);
        let key = GraphKey::greedy(self.step_of(chunks, t), n);
        self.run_early_stages(&key).await?;
        let (k, done) = self.submit(&key, false, (n * 4) as u64)?;
        let ahead = match chunks {
            [ch] if ch.pos + t < self.ctx_len() && self.stages.len() == 1 => {
                Some((ch.slot, ch.pos + t, self.submit_ahead(ch.slot, ch.pos + t)?))
            }
            _ => None,
        };
        let at: Vec<(usize, usize)> = chunks.iter().map(|c| (c.slot, c.pos + c.tokens.len() - 1)).collect();
        let ids = self.read_ids(k, &at, done).await?;
        self.ahead = ahead.map(|(slot, pos, (staging, done))| Ahead { slot, pos, input: ids[0], staging, done });
        Ok(ids)
    }

    /// Logits (T, V) of every token of `tokens` placed at `pos0..` in `slot`: forwarded in
    /// pieces of at most `max_tokens` tokens, each piece's logits computed and read back in blocks
    /// of `max_logit_rows` rows.
    pub async fn logits_all(&mut self, slot: usize, pos0: usize, tokens: &[u32]) -> Result<Vec<f32>> {
        let v = self.model.config.vocab_size;
        let mut out = Vec::with_capacity(tokens.len() * v);
        for (k, piece) in tokens.chunks(self.max_tokens).enumerate() {
            let chunk = SeqChunk::prompt(slot, pos0 + k * self.max_tokens, piece);
            let (t, _) = self.prepare(&[chunk])?;
            for first in (0..t).step_by(self.max_logit_rows) {
                let n = self.max_logit_rows.min(t - first);
                // the body runs with the first block; later blocks read its h
                let step = self.step_of(&[chunk], t);
                let bytes = self.run_logits(step, Rows::Range(first, n), first == 0, (n * v * 4) as u64).await?;
                let block: &[f32] = bytemuck::cast_slice(&bytes);
                if let Some(r) = first_non_finite_row(block, v) {
                    return Err(non_finite((slot, chunk.pos + first + r)));
                }
                out.extend_from_slice(block);
            }
        }
        Ok(out)
    }

    /// Feeds a long prompt in pieces of `max_tokens`; returns the last token's logits (V).
    pub async fn prefill(&mut self, slot: usize, pos0: usize, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut logits = Vec::new();
        for (k, piece) in tokens.chunks(self.max_tokens).enumerate() {
            logits = self.forward_last(&[SeqChunk::prompt(slot, pos0 + k * self.max_tokens, piece)]).await?;
        }
        Ok(logits)
    }

    /// Writes the rows of `h` whose logits the next step computes.
    fn write_rows(&self, rows: &[usize]) {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        self.model.last().ctx.queue.write_buffer(&self.hsel_idx, 0, bytemuck::cast_slice(&idx));
    }

    fn check_rows(&self, r: usize) -> Result<()> {
        if r > self.max_logit_rows {
            return Err(Error::Invalid(format!(
                "{r} sequences in one forward exceed the session's {}",
                self.max_logit_rows
            )));
        }
        Ok(())
    }
}

/// The first row of `logits` (rows of `v`) holding a NaN or an infinity.
fn first_non_finite_row(logits: &[f32], v: usize) -> Option<usize> {
    logits.chunks(v).position(|row| row.iter().any(|x| !x.is_finite()))
}

/// The error for logits that are not numbers at (slot, position): never a token from them.
fn non_finite((slot, pos): (usize, usize)) -> Error {
    Error::Invalid(format!(
        "the logits of position {pos} (sequence slot {slot}) hold NaN or infinity: the model's weights \
         or activations are not finite (check the weights with --check-tensors)"
    ))
}

/// Blocking forms for native callers.
#[cfg(not(target_arch = "wasm32"))]
impl Session {
    /// Blocking [`Session::forward_last`].
    pub fn forward_last_blocking(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<f32>> {
        pollster::block_on(self.forward_last(chunks))
    }
    /// Blocking [`Session::forward_greedy`].
    pub fn forward_greedy_blocking(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<u32>> {
        pollster::block_on(self.forward_greedy(chunks))
    }
    /// Blocking [`Session::logits_all`].
    pub fn logits_all_blocking(&mut self, slot: usize, pos0: usize, tokens: &[u32]) -> Result<Vec<f32>> {
        pollster::block_on(self.logits_all(slot, pos0, tokens))
    }
    /// Blocking [`Session::prefill`].
    pub fn prefill_blocking(&mut self, slot: usize, pos0: usize, tokens: &[u32]) -> Result<Vec<f32>> {
        pollster::block_on(self.prefill(slot, pos0, tokens))
    }
}
