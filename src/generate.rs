//! Text generation: the engine (model + KV cache + tokenizer + chat template), streaming with
//! stop conditions and UTF-8-safe incremental detokenization.

use crate::chat::{ChatTemplate, Message};
use crate::error::{Error, Result};
use crate::model::{SeqChunk, Session};
use crate::sampling::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;

/// Settings of one generation.
#[derive(Clone, Debug)]
pub struct GenerateParams {
    /// Most new tokens.
    pub max_tokens: usize,
    /// Token choice.
    pub sampling: SamplingParams,
    /// Generation stops when the text contains any of these (not included in the output).
    pub stop: Vec<String>,
}

impl GenerateParams {
    /// Checks the sampling values (see [`SamplingParams::validate`]).
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()
    }
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams { max_tokens: 256, sampling: SamplingParams::default(), stop: vec![] }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token.
    Eos,
    /// A stop string.
    Stop,
    /// `max_tokens` or the context length.
    Length,
}

/// A finished generation with its timings.
#[derive(Clone, Debug)]
pub struct Generation {
    /// The text produced.
    pub text: String,
    /// Its tokens (EOS excluded).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt tokens actually run (after reusing the cached prefix).
    pub prompt_tokens: usize,
    /// Seconds spent on the prompt.
    pub prompt_secs: f64,
    /// Seconds spent generating.
    pub gen_secs: f64,
}

/// Incremental detokenizer: turns a growing token list into text deltas, never emitting a
/// partial UTF-8 character, and holds back text that may be the start of a stop string.
pub struct TextStream {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
    stop: Vec<String>,
    pending: String,
    /// All text released so far.
    pub text: String,
}

impl TextStream {
    /// A stream watching for `stop` strings.
    pub fn new(stop: Vec<String>) -> Self {
        TextStream { ids: vec![], prefix_offset: 0, read_offset: 0, stop, pending: String::new(), text: String::new() }
    }

    /// Adds a token; returns (text now safe to show, whether a stop string was hit).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<(String, bool)> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset], false)?;
        let full = tok.decode(&self.ids[self.prefix_offset..], false)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.is_char_boundary(prefix.len()) {
            self.pending.push_str(&full[prefix.len()..]);
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(self.release(false))
    }

    /// Releases what is held back (at the end of generation).
    pub fn finish(&mut self) -> String {
        self.release(true).0
    }

    fn release(&mut self, all: bool) -> (String, bool) {
        if let Some((at, _)) =
            self.stop.iter().filter_map(|s| self.pending.find(s.as_str()).map(|i| (i, s))).min_by_key(|x| x.0)
        {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            self.text.push_str(&out);
            return (out, true);
        }
        // keep the longest tail that could still grow into a stop string
        let hold = if all {
            0
        } else {
            self.stop
                .iter()
                .flat_map(|s| (1..s.len()).filter(move |&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
                .filter(|p| self.pending.ends_with(p))
                .map(str::len)
                .max()
                .unwrap_or(0)
        };
        let cut = self.pending.len() - hold;
        let out: String = self.pending.drain(..cut).collect();
        self.text.push_str(&out);
        (out, false)
    }
}

/// A generation in progress (see [`InfernoLlamaEngine::start`] and [`InfernoLlamaEngine::step`]).
pub struct GenState {
    params: GenerateParams,
    sampler: Sampler,
    stream: TextStream,
    pending: Vec<u32>,
    tokens: Vec<u32>,
    prompt_tokens: usize,
    done: Option<FinishReason>,
    started: bool,
    /// Seconds spent on the prompt so far.
    pub prompt_secs: f64,
    /// Seconds spent generating so far.
    pub gen_secs: f64,
}

impl GenState {
    /// Why it finished, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.done
    }
}

fn now() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        0.0
    }
}

/// The engine: one model session (slot 0 holds the conversation), its tokenizer and template.
pub struct InfernoLlamaEngine {
    /// Model + KV cache.
    pub session: Session,
    /// Tokenizer.
    pub tokenizer: Tokenizer,
    /// The model's chat template, if it has one.
    pub template: Option<ChatTemplate>,
    /// End-of-sequence ids (config and tokenizer together).
    pub eos_ids: Vec<u32>,
    /// Tokens currently in the KV cache of slot 0.
    pub cached: Vec<u32>,
    /// Clock for timings (seconds); wasm hosts may install their own.
    pub clock: fn() -> f64,
}

impl InfernoLlamaEngine {
    /// An engine over a session and tokenizer.
    pub fn new(session: Session, tokenizer: Tokenizer, template: Option<ChatTemplate>) -> Self {
        let mut eos_ids = session.model.config.eos_token_ids.clone();
        for &e in &tokenizer.eos_ids {
            if !eos_ids.contains(&e) {
                eos_ids.push(e);
            }
        }
        InfernoLlamaEngine { session, tokenizer, template, eos_ids, cached: vec![], clock: now }
    }

    /// Renders a conversation with the model's template (ending where the answer starts).
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let t = self.template.as_ref().ok_or_else(|| Error::Config {
            field: "chat_template".into(),
            reason: "this model has no chat template; use plain generation".into(),
        })?;
        t.render(messages, true)
    }

    /// Starts generating after `prompt` (raw text, special tokens allowed). The KV cache keeps
    /// the longest common prefix with the previous call, so a chat only runs its new turn.
    pub fn start(&mut self, prompt: &str, params: GenerateParams) -> Result<GenState> {
        params.validate()?;
        let ids = self.tokenizer.encode(prompt, true)?;
        if ids.is_empty() {
            return Err(Error::Invalid("empty prompt".into()));
        }
        if ids.len() >= self.session.ctx_len() {
            return Err(Error::Invalid(format!(
                "prompt of {} tokens does not fit the context length {}",
                ids.len(),
                self.session.ctx_len()
            )));
        }
        // reuse the cached prefix, but always run at least the last prompt token
        let keep = self.cached.iter().zip(&ids).take_while(|(a, b)| a == b).count().min(ids.len() - 1);
        self.cached.truncate(keep);
        let mut st = self.start_state(params, ids.len() - keep);
        st.pending = ids[keep..].to_vec();
        if st.params.max_tokens == 0 {
            st.done = Some(FinishReason::Length); // nothing to generate (the prompt is not run)
        }
        Ok(st)
    }

    /// Runs one forward (the prompt, or one new token); returns the text it released, or None
    /// when generation has finished.
    pub async fn step(&mut self, st: &mut GenState) -> Result<Option<String>> {
        if st.done.is_some() {
            return Ok(None);
        }
        let t0 = (self.clock)();
        let pos = self.cached.len();
        let input = std::mem::take(&mut st.pending);
        let greedy = st.params.sampling.is_greedy();
        let s = &mut self.session;
        let next = if input.len() > s.max_tokens {
            // long prompt: all but the last piece only fill the cache
            let split = input.len() - 1;
            s.prefill(0, pos, &input[..split]).await?;
            self.cached.extend_from_slice(&input[..split]);
            let chunk = [SeqChunk::prompt(0, pos + split, &input[split..])];
            if greedy {
                s.forward_greedy(&chunk).await?[0]
            } else {
                st.sampler.sample(&s.forward_last(&chunk).await?, &self.cached)
            }
        } else {
            let chunk = [SeqChunk { slot: 0, pos, tokens: &input, generated: st.started }];
            if greedy {
                s.forward_greedy(&chunk).await?[0]
            } else {
                let logits = s.forward_last(&chunk).await?;
                let recent: Vec<u32> = self.cached.iter().chain(&input).copied().collect();
                st.sampler.sample(&logits, &recent)
            }
        };
        self.cached.extend_from_slice(if input.len() > s.max_tokens { &input[input.len() - 1..] } else { &input });
        let dt = (self.clock)() - t0;
        if st.started {
            st.gen_secs += dt;
        } else {
            st.prompt_secs += dt;
            st.started = true;
        }
        if self.eos_ids.contains(&next) {
            st.done = Some(FinishReason::Eos);
            return Ok(Some(st.stream.finish()));
        }
        st.tokens.push(next);
        let (text, stopped) = st.stream.push(&self.tokenizer, next)?;
        if stopped {
            st.done = Some(FinishReason::Stop);
        } else if st.tokens.len() >= st.params.max_tokens || self.cached.len() + 1 >= self.session.ctx_len() {
            st.done = Some(FinishReason::Length);
            let rest = st.stream.finish();
            return Ok(Some(text + &rest));
        } else {
            st.pending = vec![next];
        }
        Ok(Some(text))
    }

    /// The finished generation's summary.
    pub fn summary(&self, st: &GenState) -> Generation {
        Generation {
            text: st.stream.text.clone(),
            tokens: st.tokens.clone(),
            finish: st.done.unwrap_or(FinishReason::Length),
            prompt_tokens: st.prompt_tokens,
            prompt_secs: st.prompt_secs,
            gen_secs: st.gen_secs,
        }
    }

    /// Generates after `prompt`, calling `on_text` with each piece of text as it is released.
    pub async fn generate_async(
        &mut self,
        prompt: &str,
        params: GenerateParams,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        let mut st = self.start(prompt, params)?;
        while let Some(piece) = self.step(&mut st).await? {
            if !piece.is_empty() {
                on_text(&piece);
            }
        }
        Ok(self.summary(&st))
    }

    /// The generation as an async stream of text pieces.
    pub fn stream<'a>(
        &'a mut self,
        prompt: &str,
        params: GenerateParams,
    ) -> Result<impl futures::Stream<Item = Result<String>> + 'a> {
        let st = self.start(prompt, params)?;
        Ok(futures::stream::unfold((self, st), |(eng, mut st)| async move {
            match eng.step(&mut st).await {
                Ok(Some(piece)) => Some((Ok(piece), (eng, st))),
                Ok(None) => None,
                Err(e) => {
                    st.done = Some(FinishReason::Length);
                    Some((Err(e), (eng, st)))
                }
            }
        }))
    }

    /// Generates after several prompts at once, one sequence per KV-cache slot: the prompts are
    /// prefilled (together when they fit one forward), then every unfinished sequence advances by
    /// one token per forward. Each has its own sampling, stops and length. Slot 0's cached
    /// conversation is dropped.
    pub async fn generate_batch_async(
        &mut self,
        prompts: &[&str],
        params: &[GenerateParams],
    ) -> Result<Vec<Generation>> {
        let n = prompts.len();
        if params.len() != n {
            return Err(Error::Invalid(format!("{n} prompts but {} parameter sets", params.len())));
        }
        if n > self.session.slots() || n > self.session.max_logit_rows {
            return Err(Error::Invalid(format!(
                "{n} prompts exceed the session's {} sequence slots",
                self.session.slots()
            )));
        }
        self.cached.clear();
        let mut seqs = Vec::with_capacity(n);
        for (p, par) in prompts.iter().zip(params) {
            par.validate()?;
            let ids = self.tokenizer.encode(p, true)?;
            if ids.is_empty() || ids.len() >= self.session.ctx_len() {
                return Err(Error::Invalid(format!(
                    "prompt of {} tokens does not fit the context length {}",
                    ids.len(),
                    self.session.ctx_len()
                )));
            }
            let mut st = self.start_state(par.clone(), ids.len());
            st.pending = ids;
            if par.max_tokens == 0 {
                st.done = Some(FinishReason::Length);
            }
            seqs.push(st);
        }
        // prefill: one forward for all prompts when they fit, else one per prompt
        let t0 = (self.clock)();
        let total: usize = seqs.iter().map(|s| s.pending.len()).sum();
        let mut logits = Vec::new();
        if total <= self.session.max_tokens {
            let chunks: Vec<SeqChunk> =
                seqs.iter().enumerate().map(|(i, s)| SeqChunk::prompt(i, 0, &s.pending)).collect();
            logits = self.session.forward_last(&chunks).await?;
        } else {
            for (i, s) in seqs.iter().enumerate() {
                logits.extend(self.session.prefill(i, 0, &s.pending).await?);
            }
        }
        let v = self.session.model.config.vocab_size;
        let prompt_secs = (self.clock)() - t0;
        let mut pos: Vec<usize> = seqs.iter().map(|s| s.pending.len()).collect();
        let mut history: Vec<Vec<u32>> = seqs.iter_mut().map(|s| std::mem::take(&mut s.pending)).collect();
        let mut rows: Vec<usize> = (0..n).collect(); // logits row of each active sequence
        loop {
            // sample, stream and check stops for every sequence that got logits
            for (r, &i) in rows.iter().enumerate() {
                let st = &mut seqs[i];
                if st.done.is_some() {
                    continue; // max_tokens 0
                }
                let next = st.sampler.sample(&logits[r * v..(r + 1) * v], &history[i]);
                if self.eos_ids.contains(&next) {
                    st.done = Some(FinishReason::Eos);
                    st.stream.finish();
                    continue;
                }
                st.tokens.push(next);
                history[i].push(next);
                let (_, stopped) = st.stream.push(&self.tokenizer, next)?;
                if stopped {
                    st.done = Some(FinishReason::Stop);
                } else if st.tokens.len() >= st.params.max_tokens || pos[i] + 1 >= self.session.ctx_len() {
                    st.done = Some(FinishReason::Length);
                    st.stream.finish();
                }
            }
            rows = (0..n).filter(|&i| seqs[i].done.is_none()).collect();
            if rows.is_empty() {
                break;
            }
            let last: Vec<[u32; 1]> = rows.iter().map(|&i| [*history[i].last().unwrap_or(&0)]).collect();
            let chunks: Vec<SeqChunk> =
                rows.iter().zip(&last).map(|(&i, t)| SeqChunk::generated(i, pos[i], t)).collect();
            logits = self.session.forward_last(&chunks).await?;
            for &i in &rows {
                pos[i] += 1;
            }
        }
        let gen_secs = (self.clock)() - t0 - prompt_secs;
        Ok(seqs.iter().map(|st| Generation { prompt_secs, gen_secs, ..self.summary(st) }).collect())
    }

    fn start_state(&self, params: GenerateParams, prompt_tokens: usize) -> GenState {
        GenState {
            sampler: Sampler::new(params.sampling.clone()),
            stream: TextStream::new(params.stop.clone()),
            prompt_tokens,
            pending: vec![],
            tokens: vec![],
            params,
            done: None,
            started: false,
            prompt_secs: 0.0,
            gen_secs: 0.0,
        }
    }

    /// Blocking [`InfernoLlamaEngine::generate_batch_async`] (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate_batch(&mut self, prompts: &[&str], params: &[GenerateParams]) -> Result<Vec<Generation>> {
        pollster::block_on(self.generate_batch_async(prompts, params))
    }

    /// Blocking generation with a callback per text piece (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(&mut self, prompt: &str, params: GenerateParams, on_text: impl FnMut(&str)) -> Result<Generation> {
        pollster::block_on(self.generate_async(prompt, params, on_text))
    }

    /// Blocking chat turn: renders `messages` with the template and generates the answer.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn chat(
        &mut self,
        messages: &[Message],
        params: GenerateParams,
        on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        let prompt = self.render_chat(messages)?;
        self.generate(&prompt, params, on_text)
    }
}

/// Tokenizer and chat template that belong to a checkpoint: `tokenizer.json`,
/// `tokenizer_config.json` / `chat_template.jinja` beside it, else the ones embedded in GGUF.
#[cfg(not(target_arch = "wasm32"))]
pub fn tokenizer_for(ckpt: &crate::model::Checkpoint) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let dir = ckpt.dir.clone().unwrap_or_default();
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let json = read("tokenizer.json");
    if json.is_none() && ckpt.gguf.is_none() {
        return Err(Error::loader(dir.display(), "no tokenizer.json beside the model"));
    }
    let config = read("tokenizer_config.json").map(|b| String::from_utf8_lossy(&b).into_owned());
    let jinja = read("chat_template.jinja").map(|b| String::from_utf8_lossy(&b).into_owned());
    tokenizer_from_parts(ckpt, json.as_deref(), config.as_deref(), jinja.as_deref())
}

/// Tokenizer and chat template from a checkpoint and the bytes of its companion files (any may
/// be missing): a GGUF uses its embedded vocabulary and template; otherwise `tokenizer.json` is
/// required. `tokenizer_config.json` supplies BOS/EOS and the template; `chat_template.jinja`
/// overrides the template.
pub fn tokenizer_from_parts(
    ckpt: &crate::model::Checkpoint,
    tokenizer_json: Option<&[u8]>,
    tokenizer_config: Option<&str>,
    chat_template_jinja: Option<&str>,
) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    use crate::model::gguf::Value;
    let mut template_src = None;
    let mut tokenizer = match (&ckpt.gguf, tokenizer_json) {
        (Some(g), _) => {
            template_src = g.get("tokenizer.chat_template").and_then(Value::as_str).map(String::from);
            Tokenizer::from_gguf(g, &ckpt.file_names[0])?
        }
        (None, Some(bytes)) => Tokenizer::from_json(bytes, "tokenizer.json")?,
        (None, None) => return Err(Error::loader(ckpt.file_names.join(", "), "no tokenizer.json for this model")),
    };
    let cfg = tokenizer_config.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    let token_str = |v: Option<&serde_json::Value>| -> Option<String> {
        match v? {
            serde_json::Value::String(s) => Some(s.clone()),
            o => o.get("content").and_then(|c| c.as_str()).map(String::from),
        }
    };
    if let Some(c) = &cfg {
        if let Some(t) = c.get("chat_template").and_then(|t| t.as_str()) {
            template_src = Some(t.to_string());
        }
        if tokenizer.bos_id.is_none() {
            tokenizer.bos_id = token_str(c.get("bos_token")).and_then(|s| tokenizer.token_id(&s));
            tokenizer.add_bos = c.get("add_bos_token").and_then(|b| b.as_bool()).unwrap_or(false);
        }
        if let Some(e) = token_str(c.get("eos_token")).and_then(|s| tokenizer.token_id(&s)) {
            if !tokenizer.eos_ids.contains(&e) {
                tokenizer.eos_ids.push(e);
            }
        }
    }
    if let Some(t) = chat_template_jinja {
        template_src = Some(t.to_string());
    }
    let name_of = |id: Option<u32>| id.and_then(|i| tokenizer.decode(&[i], false).ok()).unwrap_or_default();
    let template = match template_src {
        Some(src) => {
            Some(ChatTemplate::new(&src, &name_of(tokenizer.bos_id), &name_of(tokenizer.eos_ids.first().copied()))?)
        }
        None => None,
    };
    Ok((tokenizer, template))
}

/// Options for [`InfernoLlamaEngine::load`].
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// KV cache positions (default: min(model's max, 4096)).
    pub ctx_len: Option<usize>,
    /// Most tokens per forward (prompt pieces); default 512 (llama.cpp's batch).
    pub max_tokens: usize,
    /// Sequences that can be generated together ([`InfernoLlamaEngine::generate_batch`]); default 1.
    pub slots: usize,
    /// Check every weight for NaN/Inf before the upload ([`crate::model::Checkpoint::check_tensors`]):
    /// one extra pass over the file.
    pub check_tensors: bool,
    /// A model split over several devices ([`InfernoLlamaEngine::load_split`]): the share of
    /// the layers each takes, in proportion (`[1.0, 1.0]`: half each; empty: even).
    pub split: Vec<f64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { ctx_len: None, max_tokens: 512, slots: 1, check_tensors: false, split: Vec::new() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl InfernoLlamaEngine {
    /// Opens a checkpoint (directory, .safetensors or .gguf), uploads it and builds the engine.
    pub fn load(
        path: &std::path::Path,
        gpu: &crate::gpu::GpuContext,
        opts: &EngineOptions,
        progress: impl FnMut(u64, u64),
    ) -> Result<Self> {
        Self::load_split(path, std::slice::from_ref(gpu), opts, progress)
    }

    /// [`InfernoLlamaEngine::load`] with the layers split over `gpus` in the proportions of
    /// `opts.split` (see [`crate::model::layer_split`]).
    pub fn load_split(
        path: &std::path::Path,
        gpus: &[crate::gpu::GpuContext],
        opts: &EngineOptions,
        progress: impl FnMut(u64, u64),
    ) -> Result<Self> {
        let ckpt = crate::model::Checkpoint::open(path)?;
        if opts.check_tensors {
            ckpt.check_tensors()?;
        }
        let (tokenizer, template) = tokenizer_for(&ckpt)?;
        let layers = crate::model::layer_split(ckpt.config.num_hidden_layers, gpus.len(), &opts.split)?;
        let model = std::sync::Arc::new(crate::model::Llama::load_split(gpus, &layers, &ckpt, progress)?);
        let ctx_len = opts.ctx_len.unwrap_or(model.config.max_position_embeddings.min(4096));
        let session = Session::new(model, opts.slots.max(1), ctx_len, opts.max_tokens)?;
        Ok(Self::new(session, tokenizer, template))
    }
}
