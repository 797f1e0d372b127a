//! Continuous batching on the engine thread: the thread owns the [`Session`] and its sequence
//! slots; requests join the running batch at the next step and leave when done. Every step is one
//! forward over all active sequences: each decoding sequence's next token, then pieces of new
//! prompts within the step's token budget, so a long prompt costs the running streams at most one
//! piece's time per step. Each slot has its own sampler; a slot keeps its cached tokens when its
//! request ends, and a new request takes the free slot whose cache shares the longest prefix with
//! its prompt (a chat's next turn runs only its new tokens).

use super::metrics::Metrics;
use crate::generate::{FinishReason, TextStream};
use crate::model::{SeqChunk, Session};
use crate::sampling::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// One generation request, tokenized and checked by the HTTP side.
pub struct Job {
    /// Prompt token ids (at least one; shorter than the context).
    pub prompt: Vec<u32>,
    /// Most new tokens (at least one).
    pub max_tokens: usize,
    /// Sampling (validated).
    pub sampling: SamplingParams,
    /// Stop strings.
    pub stop: Vec<String>,
    /// OpenAI presence penalty: subtracted once from every token generated so far.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty: subtracted per occurrence of a token generated so far.
    pub frequency_penalty: f32,
    /// OpenAI logit bias: (token id, added to its logit), ids in the vocabulary.
    pub logit_bias: Vec<(u32, f32)>,
    /// Log-probabilities: None, or Some(k) for the chosen token's and the k most likely ones.
    pub logprobs: Option<usize>,
    /// When the request arrived (time to first token).
    pub arrived: Instant,
    /// Where the events go; a closed receiver (client gone) cancels the request.
    pub tx: UnboundedSender<Event>,
}

/// A generated token with its log-probabilities.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// Token id.
    pub id: u32,
    /// Its text (lossy where it is part of a UTF-8 character).
    pub text: String,
    /// log p(token).
    pub logprob: f32,
    /// The most likely tokens at this position: (text, log p).
    pub top: Vec<(String, f32)>,
}

/// What the engine sends back for a request.
#[derive(Debug)]
pub enum Event {
    /// Text released (possibly empty while a stop string may be forming) and the token behind it.
    Token {
        /// New text.
        text: String,
        /// The token, with log-probabilities when asked.
        info: Option<TokenInfo>,
    },
    /// The end: why, and the usage counts.
    Done {
        /// Why generation stopped.
        finish: FinishReason,
        /// Prompt tokens (all of them, also those reused from the cache).
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// The request failed in the engine.
    Error(String),
}

struct Active {
    job: Job,
    /// Tokens to feed: the rest of the prompt, or the last sampled token.
    pending: Vec<u32>,
    generated: Vec<u32>,
    counts: HashMap<u32, u32>,
    sampler: Sampler,
    stream: TextStream,
    last_token: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    /// Token ids in this slot's KV cache, in order.
    cached: Vec<u32>,
    active: Option<Active>,
}

/// The engine thread's state.
pub struct Scheduler {
    session: Session,
    tokenizer: Arc<Tokenizer>,
    eos: Vec<u32>,
    slots: Vec<Slot>,
    metrics: Arc<Metrics>,
    /// Requests sent but not yet in a slot (the HTTP side's admission count).
    waiting: Arc<AtomicU64>,
    /// The model decodes with int8 activations (`Llama::decodes_int8`, asked once): steps then
    /// hold decode tokens or prompt pieces, not both (see [`Scheduler::step`]).
    decodes_int8: bool,
    /// Where `decodes_int8`: whether the last step ran prompt pieces.
    prompt_turn: bool,
    /// `ServeOptions::deterministic`: a step's prompt piece comes from one sequence, and a cached
    /// prefix is reused in whole pieces of the step budget only, so a prompt is cut into the
    /// same pieces as when its request runs alone.
    deterministic: bool,
}

impl Scheduler {
    /// A scheduler over a session with one slot per parallel sequence.
    pub fn new(
        session: Session,
        tokenizer: Arc<Tokenizer>,
        eos: Vec<u32>,
        metrics: Arc<Metrics>,
        waiting: Arc<AtomicU64>,
        deterministic: bool,
    ) -> Self {
        let slots = (0..session.slots()).map(|_| Slot::default()).collect();
        metrics.slots.store(session.slots() as u64, Ordering::Relaxed);
        metrics.gpu_bytes.store(session.ledger().total(), Ordering::Relaxed);
        let decodes_int8 = session.model.decodes_int8();
        Scheduler { session, tokenizer, eos, slots, metrics, waiting, decodes_int8, prompt_turn: false, deterministic }
    }

    /// Serves jobs from `rx` until every sender is gone and the last request has finished.
    pub fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
        let mut queue: VecDeque<Job> = VecDeque::new();
        let mut open = true;
        loop {
            let idle = self.slots.iter().all(|s| s.active.is_none());
            if idle && queue.is_empty() {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(j) => queue.push_back(j),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(j) => queue.push_back(j),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.admit(&mut queue);
            self.cancel_gone();
            if self.slots.iter().any(|s| s.active.is_some()) {
                self.step();
            }
            self.publish();
        }
    }

    /// Puts queued jobs into free slots, each into the one sharing the longest cached prefix.
    fn admit(&mut self, queue: &mut VecDeque<Job>) {
        while let Some(free) = self.slots.iter().position(|s| s.active.is_none()) {
            let Some(job) = queue.pop_front() else { break };
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if job.tx.is_closed() {
                continue;
            }
            let lcp = |s: &Slot| s.cached.iter().zip(&job.prompt).take_while(|(a, b)| a == b).count();
            let best = (0..self.slots.len())
                .filter(|&i| self.slots[i].active.is_none())
                .max_by_key(|&i| (lcp(&self.slots[i]), i == free))
                .unwrap_or(free);
            let slot = &mut self.slots[best];
            // keep the shared prefix, but always run the last prompt token (its logits are needed);
            // deterministic: only whole pieces of the step budget, which a fresh run cuts alike
            let keep = lcp(slot).min(job.prompt.len() - 1);
            let piece = self.session.max_tokens;
            let keep = if self.deterministic { keep / piece * piece } else { keep };
            slot.cached.truncate(keep);
            self.metrics.prompt_tokens.fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
            slot.active = Some(Active {
                pending: job.prompt[keep..].to_vec(),
                generated: vec![],
                counts: HashMap::new(),
                sampler: Sampler::new(job.sampling.clone()),
                stream: TextStream::new(job.stop.clone()),
                last_token: None,
                job,
            });
        }
    }

    /// Updates the queue and slot gauges.
    fn publish(&self) {
        self.metrics.queue_depth.store(self.waiting.load(Ordering::Relaxed), Ordering::Relaxed);
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.metrics.busy_slots.store(busy as u64, Ordering::Relaxed);
    }

    /// Frees the slots whose client went away (the cache keeps what it computed).
    fn cancel_gone(&mut self) {
        for s in &mut self.slots {
            if s.active.as_ref().is_some_and(|a| a.job.tx.is_closed()) {
                s.active = None;
            }
        }
    }

    /// One forward over every active sequence, then sampling for those that reached a new token.
    fn step(&mut self) {
        let budget = self.session.max_tokens;
        // (slot, tokens fed, whether the row's logits give the next token)
        let mut plan: Vec<(usize, usize, bool)> = vec![];
        let mut used = 0;
        // decoding sequences first (one token each), then prompt pieces in the remaining budget;
        // where the model decodes with int8 activations, which a step with prompt pieces does
        // not (or `deterministic`), a step holds one kind, the two taking turns while both wait,
        // so that a sequence's tokens are those it gets alone
        let mut kinds = [true, false].to_vec();
        if self.decodes_int8 || self.deterministic {
            let has = |decode: bool| {
                self.slots.iter().filter_map(|s| s.active.as_ref()).any(|a| a.generated.is_empty() != decode)
            };
            if has(true) && has(false) {
                self.prompt_turn = !self.prompt_turn;
                kinds = vec![!self.prompt_turn];
            }
        }
        for decode in kinds {
            for (i, s) in self.slots.iter().enumerate() {
                let Some(a) = &s.active else { continue };
                let decoding = !a.generated.is_empty();
                if decoding != decode || used >= budget {
                    continue;
                }
                let n = a.pending.len().min(budget - used);
                used += n;
                plan.push((i, n, n == a.pending.len()));
                if !decode && self.deterministic {
                    break; // one sequence's prompt piece: rows cut as when it runs alone
                }
            }
        }
        let chunks: Vec<SeqChunk> = plan
            .iter()
            .map(|&(i, n, _)| {
                let s = &self.slots[i];
                let (tokens, generated) =
                    s.active.as_ref().map(|a| (&a.pending[..n], !a.generated.is_empty())).unwrap_or((&[], false));
                SeqChunk { slot: i, pos: s.cached.len(), tokens, generated }
            })
            .collect();
        // when every row's next token is a plain argmax, the GPU picks it and only ids come back
        // (one sequence alone also gets its next step run ahead); otherwise the logits rows
        let greedy =
            plan.iter().all(|&(i, _, emits)| !emits || self.slots[i].active.as_ref().is_some_and(Active::greedy));
        let result = if greedy {
            self.session.forward_greedy_blocking(&chunks).map(Picked::Ids)
        } else {
            self.session.forward_last_blocking(&chunks).map(Picked::Logits)
        };
        let picked = match result {
            Ok(l) => l,
            Err(e) => {
                for &(i, _, _) in &plan {
                    if let Some(a) = self.slots[i].active.take() {
                        let _ = a.job.tx.send(Event::Error(e.to_string()));
                    }
                    self.slots[i].cached.clear();
                }
                return;
            }
        };
        let v = self.session.model.config.vocab_size;
        let ctx_len = self.session.ctx_len();
        for (r, &(i, n, emits)) in plan.iter().enumerate() {
            let slot = &mut self.slots[i];
            let Some(a) = slot.active.as_mut() else { continue };
            slot.cached.extend(a.pending.drain(..n));
            if !emits {
                continue;
            }
            let row = match &picked {
                Picked::Ids(ids) => Next::Id(ids[r]),
                Picked::Logits(l) => Next::Logits(&l[r * v..(r + 1) * v]),
            };
            let done = emit(a, row, &slot.cached, &self.tokenizer, &self.eos, &self.metrics, ctx_len);
            if done {
                slot.active = None;
            }
        }
    }
}

/// What a step gave back: the argmax of every row, or every row's logits.
enum Picked {
    Ids(Vec<u32>),
    Logits(Vec<f32>),
}

/// One row's share of a step's result.
enum Next<'a> {
    /// The token, picked on the GPU (greedy).
    Id(u32),
    /// The logits to sample from.
    Logits(&'a [f32]),
}

impl Active {
    /// Whether this request's next token is the argmax of the raw logits (no penalties, no
    /// logit bias, no log-probabilities), so the GPU can pick it.
    fn greedy(&self) -> bool {
        let j = &self.job;
        j.sampling.is_greedy()
            && j.presence_penalty == 0.0
            && j.frequency_penalty == 0.0
            && j.logit_bias.is_empty()
            && j.logprobs.is_none()
    }
}

/// Samples the next token of `a` from `row`, streams it, and says whether the request is done.
fn emit(
    a: &mut Active,
    row: Next,
    cached: &[u32],
    tok: &Tokenizer,
    eos: &[u32],
    metrics: &Metrics,
    ctx_len: usize,
) -> bool {
    let (next, row) = match row {
        Next::Id(id) => (id, None),
        Next::Logits(row) => {
            // the logits are copied only when OpenAI's penalties or logit bias change them
            let mut logits = std::borrow::Cow::Borrowed(row);
            for &(id, bias) in &a.job.logit_bias {
                if let Some(x) = logits.to_mut().get_mut(id as usize) {
                    *x += bias;
                }
            }
            if a.job.presence_penalty != 0.0 || a.job.frequency_penalty != 0.0 {
                let l = logits.to_mut();
                for (&id, &c) in &a.counts {
                    if let Some(x) = l.get_mut(id as usize) {
                        *x -= a.job.presence_penalty + a.job.frequency_penalty * c as f32;
                    }
                }
            }
            (a.sampler.sample(&logits, cached), Some(row))
        }
    };
    let now = Instant::now();
    match a.last_token {
        None => metrics.ttft.observe(now.duration_since(a.job.arrived).as_secs_f64()),
        Some(t) => metrics.itl.observe(now.duration_since(t).as_secs_f64()),
    }
    a.last_token = Some(now);
    let finish = |a: &mut Active, reason: FinishReason, text: String, info: Option<TokenInfo>| {
        let rest = a.stream.finish();
        let _ = a.job.tx.send(Event::Token { text: text + &rest, info });
        let _ = a.job.tx.send(Event::Done {
            finish: reason,
            prompt_tokens: a.job.prompt.len(),
            completion_tokens: a.generated.len(),
        });
        true
    };
    if eos.contains(&next) {
        return finish(a, FinishReason::Eos, String::new(), None);
    }
    metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
    a.generated.push(next);
    *a.counts.entry(next).or_default() += 1;
    let info = a.job.logprobs.zip(row).map(|(k, row)| token_info(row, next, k, tok));
    let (text, stopped) = match a.stream.push(tok, next) {
        Ok(x) => x,
        Err(e) => {
            let _ = a.job.tx.send(Event::Error(e.to_string()));
            return true;
        }
    };
    if stopped {
        return finish(a, FinishReason::Stop, text, info);
    }
    if a.generated.len() >= a.job.max_tokens || cached.len() + 1 >= ctx_len {
        return finish(a, FinishReason::Length, text, info);
    }
    let _ = a.job.tx.send(Event::Token { text, info });
    a.pending = vec![next];
    false
}

/// log-softmax of the model's logits at the chosen token and the `k` most likely tokens.
fn token_info(row: &[f32], id: u32, k: usize, tok: &Tokenizer) -> TokenInfo {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
    let text = |i: u32| tok.decode(&[i], false).unwrap_or_default();
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let k = k.min(row.len());
    if k > 0 {
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b as usize].total_cmp(&row[a as usize]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
    } else {
        idx.clear();
    }
    TokenInfo {
        id,
        text: text(id),
        logprob: row.get(id as usize).map_or(f32::NEG_INFINITY, |x| x - lse),
        top: idx.iter().map(|&i| (text(i), row[i as usize] - lse)).collect(),
    }
}
