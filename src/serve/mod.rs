//! `inferno serve`: an OpenAI-compatible HTTP server over the engine, with continuous batching.
//!
//! The HTTP side (axum on tokio) authenticates, parses and validates requests, renders the chat
//! template, tokenizes and admits them; the engine thread ([`scheduler::Scheduler`]) owns the
//! session and its sequence slots and streams tokens back over channels. Endpoints:
//! `POST /v1/chat/completions`, `POST /v1/completions` (both with `stream: true` as server-sent
//! events ending in `data: [DONE]`), `GET /v1/models`, `GET /health`, `GET /metrics`, and a chat
//! page at `/`.

pub mod metrics;
pub mod openai;
pub mod scheduler;

use crate::chat::{ChatTemplate, Message};
use crate::generate::{EngineOptions, FinishReason, InfernoLlamaEngine};
use crate::sampling::SamplingParams;
use crate::tokenizer::Tokenizer;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics::Metrics;
use openai::{ApiError, ChatRequest, CompletionRequest, PromptOne, Sampling};
use scheduler::{Event, Job, Scheduler, TokenInfo};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to bind (default 127.0.0.1).
    pub host: String,
    /// Port (default 8080).
    pub port: u16,
    /// Sequence slots generating at once (default 4).
    pub parallel: usize,
    /// Requests that may wait for a slot before new ones get 503 (default 64).
    pub max_queue: usize,
    /// Require `Authorization: Bearer KEY` on /v1 endpoints.
    pub api_key: Option<String>,
    /// Send CORS headers allowing any origin.
    pub cors: bool,
    /// Largest request body in bytes (default 4 MiB).
    pub body_limit: usize,
    /// The name /v1/models reports (default: the model file's name).
    pub model_name: String,
    /// Greedy answers equal to each request's single run also where the model decodes with int8
    /// activations: the scheduler prefills one request's prompt per step and reuses cached
    /// prefixes in whole prompt pieces only (see `scheduler::Scheduler::step`).
    pub deterministic: bool,
}

/// What the handlers need once the model is loaded.
struct Ready {
    tx: Mutex<std::sync::mpsc::Sender<Job>>,
    tokenizer: Arc<Tokenizer>,
    template: Option<ChatTemplate>,
    ctx_len: usize,
}

struct AppState {
    opts: ServeOptions,
    ready: OnceLock<Ready>,
    metrics: Arc<Metrics>,
    waiting: Arc<AtomicU64>,
    created: u64,
}

type Shared = Arc<AppState>;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body())).into_response();
        if self.status == 503 || self.status == 429 {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// Loads the model on the engine thread, then serves until SIGINT/SIGTERM: the listener stops
/// accepting, in-flight requests finish, and the function returns.
pub fn serve(
    model: std::path::PathBuf,
    gpus: Vec<crate::GpuContext>,
    engine: EngineOptions,
    opts: ServeOptions,
) -> crate::Result<()> {
    let io = |e: std::io::Error| crate::Error::Invalid(format!("server: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(io)?;
    let state = Arc::new(AppState {
        opts: opts.clone(),
        ready: OnceLock::new(),
        metrics: Arc::new(Metrics::default()),
        waiting: Arc::new(AtomicU64::new(0)),
        created: unix_now(),
    });
    let addr = format!("{}:{}", opts.host, opts.port);
    let listener = rt.block_on(tokio::net::TcpListener::bind(&addr)).map_err(io)?;
    eprintln!("listening on http://{addr}/ (loading {})", model.display());

    // the engine thread: load, then schedule until the last sender is dropped
    let (load_tx, load_rx) = std::sync::mpsc::channel::<crate::Result<()>>();
    let engine_state = state.clone();
    let engine_thread = std::thread::Builder::new()
        .name("inferno-engine".into())
        .spawn(move || {
            let eng = match InfernoLlamaEngine::load_split(&model, &gpus, &engine, |_, _| {}) {
                Ok(e) => e,
                Err(e) => {
                    let _ = load_tx.send(Err(e));
                    return;
                }
            };
            let (tx, rx) = std::sync::mpsc::channel();
            let tokenizer = Arc::new(eng.tokenizer);
            let mut session = eng.session;
            let ctx_len = session.ctx_len();
            // compile the pipelines of the step kinds now, not in the first requests' time to
            // first token (the scheduler's slots start empty: what these write is never read)
            if let Err(e) = warm_up(&mut session) {
                let _ = load_tx.send(Err(e));
                return;
            }
            let sched = Scheduler::new(
                session,
                tokenizer.clone(),
                eng.eos_ids,
                engine_state.metrics.clone(),
                engine_state.waiting.clone(),
                engine_state.opts.deterministic,
            );
            let ready = Ready { tx: Mutex::new(tx), tokenizer, template: eng.template, ctx_len };
            if engine_state.ready.set(ready).is_err() {
                return;
            }
            let _ = load_tx.send(Ok(()));
            drop(engine_state);
            sched.run(rx);
        })
        .map_err(io)?;

    let app = router(state.clone(), &opts);
    let served = rt.block_on(async move {
        let shutdown = async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} },
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
            eprintln!("shutting down: finishing in-flight requests");
        };
        // a load failure ends the server with that error
        let load_failed = async move {
            let r = tokio::task::spawn_blocking(move || load_rx.recv()).await;
            match r {
                Ok(Ok(Err(e))) => e,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = axum::serve(listener, app).with_graceful_shutdown(shutdown) => r.map_err(io),
            e = load_failed => Err(e),
        }
    });
    // no more senders: the engine thread finishes what it has and returns
    if let Some(r) = Arc::try_unwrap(state).ok().and_then(|s| s.ready.into_inner()) {
        drop(r.tx);
    }
    let _ = engine_thread.join();
    served
}

fn router(state: Shared, opts: &ServeOptions) -> Router {
    let mut app = Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .with_state(state);
    if opts.cors {
        app = app.layer(tower_http::cors::CorsLayer::permissive());
    }
    app
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], include_str!("chat.html")).into_response()
}

/// Runs one step of each kind the scheduler makes, so that their pipelines compile now and not
/// in the first requests' time to first token (H200, 8B bf16: 1.5 s for the first ~80-token
/// prompt when only a 40-token piece had been warmed): prompt pieces of the sizes that take
/// different kernels (up to 64 tokens the skinny GEMM or the GEMV, more the prompt GEMM, in
/// 128-token tiles from 256) — on software adapters, where a piece takes seconds, one; logits of
/// one sequence; greedy ids of 1, 2, 4 ... 64 sequences (the GEMV's token groups, the skinny
/// GEMM's tile sizes).
fn warm_up(s: &mut crate::model::Session) -> crate::Result<()> {
    use crate::model::SeqChunk;
    let software = s.model.stages.iter().any(|st| st.ctx.is_software());
    let pieces: &[usize] = if software { &[40] } else { &[40, 100, 300] };
    for &n in pieces {
        let piece = vec![0u32; n.min(s.max_tokens).min(s.ctx_len() - 1)];
        s.forward_last_blocking(&[SeqChunk::prompt(0, 0, &piece)])?;
    }
    s.forward_last_blocking(&[SeqChunk::generated(0, 0, &[0])])?;
    let most = s.slots().min(s.max_logit_rows);
    for n in [1, 2, 4, 8, 16, 32, 64].into_iter().filter(|&n| n <= most) {
        let chunks: Vec<SeqChunk> = (0..n).map(|slot| SeqChunk::generated(slot, 0, &[0])).collect();
        s.forward_greedy_blocking(&chunks)?;
    }
    Ok(())
}

async fn health(State(s): State<Shared>) -> Response {
    match s.ready.get() {
        Some(_) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "loading"}))).into_response(),
    }
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

async fn not_found(State(s): State<Shared>) -> Response {
    s.metrics.finished(404);
    ApiError::new(404, "invalid_request_error", None, "no such endpoint").into_response()
}

fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &s.opts.api_key else { return Ok(()) };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(401, "authentication_error", Some("invalid_api_key"), "missing or wrong API key"))
    }
}

fn ready(s: &AppState) -> Result<&Ready, ApiError> {
    s.ready.get().ok_or_else(|| ApiError::new(503, "server_error", None, "the model is still loading"))
}

/// The served model's `/v1/models` entry.
fn model_object(s: &AppState) -> Value {
    json!({"id": s.opts.model_name, "object": "model", "created": s.created, "owned_by": "inferno"})
}

async fn models(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let r = authorize(&s, &headers)
        .map(|()| axum::Json(json!({"object": "list", "data": [model_object(&s)]})).into_response());
    respond(&s, r)
}

/// `GET /v1/models/{id}` (the clients' `models.retrieve`): the served model, or 404.
async fn model(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let r = authorize(&s, &headers).and_then(|()| {
        if id != s.opts.model_name {
            return Err(ApiError {
                param: Some("model".into()),
                ..ApiError::new(
                    404,
                    "invalid_request_error",
                    Some("model_not_found"),
                    format!("the model {id:?} does not exist (this server has {:?})", s.opts.model_name),
                )
            });
        }
        Ok(axum::Json(model_object(&s)).into_response())
    });
    respond(&s, r)
}

/// Reads the body up to the limit (413 beyond).
async fn body_bytes(s: &AppState, headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_big =
        || ApiError::new(413, "invalid_request_error", None, format!("the body exceeds {} bytes", s.opts.body_limit));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > s.opts.body_limit) {
        return Err(too_big());
    }
    axum::body::to_bytes(body, s.opts.body_limit).await.map_err(|_| too_big())
}

/// A request's generation settings, checked.
struct Gen {
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<String>,
    presence: f32,
    frequency: f32,
    logit_bias: Vec<(u32, f32)>,
    stream: bool,
    include_usage: bool,
}

fn generation(p: &Sampling, ctx_len: usize, prompt_len: usize, vocab: usize) -> Result<Gen, ApiError> {
    if p.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported", Some("n")));
    }
    let room = ctx_len.saturating_sub(prompt_len);
    let max_tokens = match p.max_completion_tokens.or(p.max_tokens) {
        Some(0) => return Err(ApiError::bad_request("max_tokens must be at least 1", Some("max_tokens"))),
        Some(n) => (n as usize).min(room),
        None => room,
    };
    let sampling = SamplingParams {
        temperature: p.temperature.unwrap_or(1.0),
        top_k: p.top_k.unwrap_or(0) as usize,
        top_p: p.top_p.unwrap_or(1.0),
        min_p: p.min_p.unwrap_or(0.0),
        repetition_penalty: p.repetition_penalty.unwrap_or(1.0),
        seed: p.seed.unwrap_or_else(random_u64),
        ..Default::default()
    };
    sampling.validate().map_err(|e| {
        let param = e.to_string().split(' ').next().map(String::from);
        ApiError { param, ..ApiError::bad_request(e.to_string(), None) }
    })?;
    for (name, v) in [("presence_penalty", p.presence_penalty), ("frequency_penalty", p.frequency_penalty)] {
        if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
            return Err(ApiError::bad_request(format!("{name} must be in [-2, 2]"), Some(name)));
        }
    }
    let mut logit_bias = Vec::new();
    for (k, &v) in p.logit_bias.iter().flatten() {
        let bad = |what: String| ApiError::bad_request(format!("logit_bias: {what}"), Some("logit_bias"));
        let id: u32 = k.parse().map_err(|_| bad(format!("{k:?} is not a token id")))?;
        if id as usize >= vocab {
            return Err(bad(format!("token id {id} is not in this model's vocabulary of {vocab}")));
        }
        if !(-100.0..=100.0).contains(&v) {
            return Err(bad(format!("the bias of token {id} must be in [-100, 100]")));
        }
        logit_bias.push((id, v));
    }
    let stop = p.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("stop takes up to 4 non-empty strings", Some("stop")));
    }
    Ok(Gen {
        max_tokens,
        sampling,
        stop,
        presence: p.presence_penalty.unwrap_or(0.0),
        frequency: p.frequency_penalty.unwrap_or(0.0),
        logit_bias,
        stream: p.stream,
        include_usage: p.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// The token ids of a prompt (text tokenized with the model's BOS; given ids checked against
/// the vocabulary); `param` names the request field in errors.
fn prompt_tokens(r: &Ready, prompt: &PromptOne, param: &str) -> Result<Vec<u32>, ApiError> {
    let ids = match prompt {
        PromptOne::Text(text) => {
            r.tokenizer.encode(text, true).map_err(|e| ApiError::bad_request(e.to_string(), Some(param)))?
        }
        PromptOne::Tokens(ids) => {
            let vocab = r.tokenizer.vocab_size();
            if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::bad_request(
                    format!("token id {id} is not in this model's vocabulary of {vocab}"),
                    Some(param),
                ));
            }
            ids.clone()
        }
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty", Some(param)));
    }
    Ok(ids)
}

/// Checks the context and admits the job (`param`: the request field holding the prompt);
/// returns the event receiver.
fn submit(
    s: &AppState,
    r: &Ready,
    prompt: Vec<u32>,
    param: &str,
    sampling: &Sampling,
    logprobs: Option<usize>,
) -> Result<(tokio::sync::mpsc::UnboundedReceiver<Event>, Gen, usize), ApiError> {
    if prompt.len() >= r.ctx_len {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::bad_request(
                format!(
                    "this model's context is {} tokens; the prompt has {} (no room to generate)",
                    r.ctx_len,
                    prompt.len()
                ),
                Some(param),
            )
        });
    }
    let g = generation(sampling, r.ctx_len, prompt.len(), r.tokenizer.vocab_size())?;
    if s.waiting.load(Ordering::Relaxed) >= s.opts.max_queue as u64 {
        return Err(ApiError::new(503, "server_error", Some("queue_full"), "too many requests waiting; retry shortly"));
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let prompt_len = prompt.len();
    let job = Job {
        prompt,
        max_tokens: g.max_tokens,
        sampling: g.sampling.clone(),
        stop: g.stop.clone(),
        presence_penalty: g.presence,
        frequency_penalty: g.frequency,
        logit_bias: g.logit_bias.clone(),
        logprobs,
        arrived: Instant::now(),
        tx,
    };
    s.waiting.fetch_add(1, Ordering::Relaxed);
    let sent = r.tx.lock().map_err(|_| ApiError::new(500, "server_error", None, "engine lock"))?.send(job);
    if sent.is_err() {
        s.waiting.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::new(503, "server_error", None, "the engine has stopped"));
    }
    Ok((rx, g, prompt_len))
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Eos | FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Chat logprobs content entries for tokens.
fn chat_logprobs(infos: &[TokenInfo]) -> Value {
    let entry = |t: &str, lp: f32| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()});
    json!({"content": infos.iter().map(|i| {
        let mut e = entry(&i.text, i.logprob);
        e["top_logprobs"] = Value::Array(i.top.iter().map(|(t, lp)| entry(t, *lp)).collect());
        e
    }).collect::<Vec<_>>()})
}

/// Legacy completion logprobs; `start`: the offset (in characters) of the first token's text in
/// the choice's text (after an echoed prompt, or the text streamed before).
fn completion_logprobs(infos: &[TokenInfo], start: usize) -> Value {
    let offsets: Vec<usize> = infos
        .iter()
        .scan(start, |at, i| {
            let o = *at;
            *at += i.text.chars().count();
            Some(o)
        })
        .collect();
    json!({
        "tokens": infos.iter().map(|i| i.text.clone()).collect::<Vec<_>>(),
        "token_logprobs": infos.iter().map(|i| i.logprob).collect::<Vec<_>>(),
        "top_logprobs": infos.iter().map(|i| i.top.iter().map(|(t, lp)| (t.clone(), json!(lp))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

async fn chat(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let r = chat_inner(&s, &headers, body).await;
    respond(&s, r)
}

async fn completions(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let r = completions_inner(&s, &headers, body).await;
    respond(&s, r)
}

fn respond(s: &AppState, r: Result<Response, ApiError>) -> Response {
    let status = match &r {
        Ok(resp) => resp.status().as_u16(),
        Err(e) => e.status,
    };
    s.metrics.finished(status);
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn chat_inner(s: &Shared, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(s, headers)?;
    let bytes = body_bytes(s, headers, body).await?;
    let req: ChatRequest = openai::parse(&bytes)?;
    req.check_unsupported()?;
    let r = ready(s)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty", Some("messages")));
    }
    let mut msgs = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = if m.role == "developer" { "system" } else { m.role.as_str() };
        msgs.push(Message::new(role, &m.text()?));
    }
    let template = r.template.as_ref().ok_or_else(|| {
        ApiError::bad_request("this model has no chat template; use /v1/completions", Some("messages"))
    })?;
    let text = template.render(&msgs, true).map_err(|e| ApiError::bad_request(e.to_string(), Some("messages")))?;
    let top = req.top_logprobs.unwrap_or(0) as usize;
    if top > 20 {
        return Err(ApiError::bad_request("top_logprobs must be in [0, 20]", Some("top_logprobs")));
    }
    let logprobs = req.logprobs.then_some(top);
    let prompt = prompt_tokens(r, &PromptOne::Text(text), "messages")?;
    let (rx, g, prompt_len) = submit(s, r, prompt, "messages", &req.sampling, logprobs)?;
    let id = format!("chatcmpl-{:x}", random_u64());
    let model = s.opts.model_name.clone();
    let created = unix_now();
    if g.stream {
        let chunk = move |delta: Value, finish: Option<&str>, lp: Option<Value>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": lp}]})
        };
        let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
        let usage_chunk = chunk(json!({}), None, None);
        return Ok(stream_events(rx, first, g.include_usage, usage_chunk, move |ev| match ev {
            StreamItem::Text(t, info) => {
                let lp = info.map(|i| chat_logprobs(std::slice::from_ref(&i)));
                chunk(json!({"content": t}), None, lp)
            }
            StreamItem::Done(f) => chunk(json!({}), Some(finish_reason(f)), None),
        }));
    }
    let (text, infos, finish, completion) = collect(rx).await?;
    let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text},
                            "finish_reason": finish_reason(finish), "logprobs": null});
    if logprobs.is_some() {
        choice["logprobs"] = chat_logprobs(&infos);
    }
    Ok(axum::Json(json!({"id": id, "object": "chat.completion", "created": created, "model": s.opts.model_name,
        "choices": [choice], "usage": usage(prompt_len, completion)}))
    .into_response())
}

async fn completions_inner(s: &Shared, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(s, headers)?;
    let bytes = body_bytes(s, headers, body).await?;
    let req: CompletionRequest = openai::parse(&bytes)?;
    let r = ready(s)?;
    let prompt = req.prompt.clone().one()?;
    let top = req.logprobs.map(|k| k as usize);
    if top.is_some_and(|k| k > 20) {
        return Err(ApiError::bad_request("logprobs must be in [0, 20]", Some("logprobs")));
    }
    let ids = prompt_tokens(r, &prompt, "prompt")?;
    let echo = match (&prompt, req.echo) {
        (_, false) => String::new(),
        (PromptOne::Text(t), true) => t.clone(),
        (PromptOne::Tokens(ids), true) => {
            r.tokenizer.decode(ids, false).map_err(|e| ApiError::bad_request(e.to_string(), Some("prompt")))?
        }
    };
    let (rx, g, prompt_len) = submit(s, r, ids, "prompt", &req.sampling, top)?;
    let id = format!("cmpl-{:x}", random_u64());
    let model = s.opts.model_name.clone();
    let created = unix_now();
    if g.stream {
        let chunk = move |text: String, finish: Option<&str>, lp: Option<Value>| {
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                   "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": lp}]})
        };
        let mut streamed = echo.chars().count(); // characters of the choice's text so far
        let first = chunk(echo, None, None);
        let usage_chunk = chunk(String::new(), None, None);
        return Ok(stream_events(rx, first, g.include_usage, usage_chunk, move |ev| match ev {
            StreamItem::Text(t, info) => {
                let lp = info.map(|i| completion_logprobs(std::slice::from_ref(&i), streamed));
                streamed += t.chars().count();
                chunk(t, None, lp)
            }
            StreamItem::Done(f) => chunk(String::new(), Some(finish_reason(f)), None),
        }));
    }
    let (text, infos, finish, completion) = collect(rx).await?;
    let lp = if top.is_some() { completion_logprobs(&infos, echo.chars().count()) } else { Value::Null };
    Ok(axum::Json(json!({"id": id, "object": "text_completion", "created": created, "model": s.opts.model_name,
        "choices": [{"index": 0, "text": echo + &text, "finish_reason": finish_reason(finish), "logprobs": lp}],
        "usage": usage(prompt_len, completion)}))
    .into_response())
}

/// A fresh random number (request ids, the seed of a request without one): the standard library's
/// randomly keyed hasher over a process-wide counter, so two requests never share one.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Waits for a whole generation.
async fn collect(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> Result<(String, Vec<TokenInfo>, FinishReason, usize), ApiError> {
    let mut text = String::new();
    let mut infos = vec![];
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token { text: t, info } => {
                text.push_str(&t);
                infos.extend(info);
            }
            Event::Done { finish, completion_tokens, .. } => return Ok((text, infos, finish, completion_tokens)),
            Event::Error(e) => return Err(ApiError::new(500, "server_error", None, e)),
        }
    }
    Err(ApiError::new(500, "server_error", None, "the engine dropped the request"))
}

enum StreamItem {
    Text(String, Option<TokenInfo>),
    Done(FinishReason),
}

/// Server-sent events: `first`, one chunk per event, the usage chunk if asked, then `[DONE]`.
/// Dropping the stream (client gone) drops the receiver, which frees the slot.
fn stream_events(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    first: Value,
    include_usage: bool,
    mut usage_chunk: Value,
    mut to_chunk: impl FnMut(StreamItem) -> Value + Send + 'static,
) -> Response {
    let (tx, out) = tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let send = |v: &Value| SseEvent::default().data(v.to_string());
        if tx.send(Ok(send(&first))).await.is_err() {
            return;
        }
        while let Some(ev) = rx.recv().await {
            let item = match ev {
                Event::Token { text, info } if text.is_empty() && info.is_none() => continue,
                Event::Token { text, info } => to_chunk(StreamItem::Text(text, info)),
                Event::Done { finish, prompt_tokens, completion_tokens } => {
                    let _ = tx.send(Ok(send(&to_chunk(StreamItem::Done(finish))))).await;
                    if include_usage {
                        usage_chunk["choices"] = json!([]);
                        usage_chunk["usage"] = usage(prompt_tokens, completion_tokens);
                        let _ = tx.send(Ok(send(&usage_chunk))).await;
                    }
                    break;
                }
                Event::Error(e) => {
                    json!({"error": {"message": e, "type": "server_error", "param": null, "code": null}})
                }
            };
            if tx.send(Ok(send(&item))).await.is_err() {
                return; // client gone: rx drops here and the engine frees the slot
            }
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(out)).keep_alive(KeepAlive::default()).into_response()
}
