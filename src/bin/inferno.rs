//! The `inferno` command line: run, chat, bench, info, perplexity.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use inferno_llama::chat::Message;
use inferno_llama::generate::{EngineOptions, GenerateParams, InfernoLlamaEngine};
use inferno_llama::model::{Checkpoint, Llama, SeqChunk, Session};
use inferno_llama::sampling::SamplingParams;
use inferno_llama::{GpuContext, GpuOptions};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "inferno",
    version,
    about = "Llama-family LLM inference on any GPU (WGSL compute shaders through wgpu)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate text from a prompt, streamed to stdout.
    Run {
        #[command(flatten)]
        m: ModelArgs,
        /// The prompt; repeat -p to generate several answers together (batched).
        #[arg(short, long, required = true)]
        prompt: Vec<String>,
        /// Use the prompt as raw text (no chat template).
        #[arg(long)]
        raw: bool,
        /// System message (chat template only).
        #[arg(short, long)]
        system: Option<String>,
        #[command(flatten)]
        s: SampleArgs,
    },
    /// Interactive chat; the conversation stays in the KV cache between turns.
    Chat {
        #[command(flatten)]
        m: ModelArgs,
        /// System message.
        #[arg(short, long)]
        system: Option<String>,
        #[command(flatten)]
        s: SampleArgs,
    },
    /// Measure prompt (pp) and generation (tg) speed, like llama-bench.
    Bench {
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt tokens.
        #[arg(short = 'p', long, default_value_t = 512)]
        n_prompt: usize,
        /// Generated tokens.
        #[arg(short = 'n', long, default_value_t = 128)]
        n_gen: usize,
        /// Repetitions.
        #[arg(short, long, default_value_t = 3)]
        reps: usize,
        /// Sequences decoded together (batched decode, as a server with this many concurrent
        /// streams runs it): tg is then the aggregate of all of them. A list (`1,8,32`) gives a
        /// tg row per value.
        #[arg(long, default_value = "1", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
        parallel: Vec<u32>,
        /// Measure a model shape with seeded random weights generated as they load, no file
        /// (a preset: llama-3.1-70b, llama-3.1-8b, llama-3.2-1b ...).
        #[arg(long, conflicts_with = "model", value_parser = clap::builder::PossibleValuesParser::new(inferno_llama::model::config::PRESETS))]
        shape: Option<String>,
        /// Weight format of `--shape`: a GGUF type for every matrix (bf16, f16, q8_0, q4_k ...)
        /// or a llama.cpp-like mix (q4_k_m, q5_k_m ...).
        #[arg(long, default_value = "bf16", requires = "shape", value_parser = clap::builder::PossibleValuesParser::new(inferno_llama::model::synthetic::MIXES))]
        dtype: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also print a per-op GPU profile of one decode step and of one prompt batch (timestamp
        /// queries).
        #[arg(long)]
        profile: bool,
    },
    /// Serve the model over an OpenAI-compatible HTTP API (chat completions, completions, models)
    /// with continuous batching; a chat page at /.
    Serve {
        #[command(flatten)]
        m: ModelArgs,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Sequences generated at once (KV-cache slots).
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Requests that may wait for a slot; beyond, 503 with Retry-After.
        #[arg(long, default_value_t = 64)]
        max_queue: usize,
        /// Require this API key (`Authorization: Bearer KEY`); also INFERNO_API_KEY.
        #[arg(long, env = "INFERNO_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Allow cross-origin requests from any origin (CORS).
        #[arg(long)]
        cors: bool,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        body_limit: usize,
        /// Model name reported by /v1/models (default: the file name).
        #[arg(long)]
        alias: Option<String>,
        /// Greedy answers equal to each request run alone, with int8 decode too: one request's
        /// prompt per step, cached prefixes reused in whole prompt pieces (slower first tokens
        /// when many requests arrive together).
        #[arg(long)]
        deterministic: bool,
    },
    /// GPU adapters, features and limits (and a model's shape with -m).
    Info {
        /// A model to describe.
        #[arg(short, long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        g: GpuArgs,
    },
    /// Write a GGUF model as SafeTensors + config.json + tokenizer.json.
    Convert {
        /// The .gguf file.
        #[arg(short, long)]
        model: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
        /// Weight dtype of the output: bf16, f16 or f32.
        #[arg(long, default_value = "bf16")]
        dtype: String,
    },
    /// Perplexity of a text file, in windows of --ctx tokens (as llama-perplexity).
    Perplexity {
        #[command(flatten)]
        m: ModelArgs,
        /// The text file.
        #[arg(short, long)]
        file: PathBuf,
    },
}

#[derive(Args, Clone)]
struct GpuArgs {
    /// Pick the adapter whose name contains this.
    #[arg(long)]
    adapter: Option<String>,
    /// Backends to consider (vulkan, metal, dx12, gl).
    #[arg(long)]
    backend: Option<String>,
    /// Store activations as packed bf16 even where shader-f16 exists.
    #[arg(long)]
    force_bf16: bool,
    /// Split the model's layers over these adapters (numbers as `inferno info` lists them, e.g.
    /// `0,1`); a number given twice opens two devices on one adapter.
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<usize>,
    /// With --gpus: each device's share of the layers, in proportion (`3,1`: three quarters on
    /// the first). Default: even.
    #[arg(long, value_delimiter = ',', requires = "gpus")]
    split: Vec<f64>,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model: a directory (config.json + safetensors), a .safetensors file, or a .gguf file.
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Context length (KV cache positions).
    #[arg(short, long)]
    ctx: Option<usize>,
    /// Most tokens per forward pass (prompt batch).
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Check every weight for NaN/Inf (and block scales) before loading (one pass over the file).
    #[arg(long)]
    check_tensors: bool,
    #[command(flatten)]
    g: GpuArgs,
}

impl ModelArgs {
    /// The model path (required by every command but `bench --shape`).
    fn path(&self) -> Result<&std::path::Path> {
        self.model.as_deref().context("no model given: -m/--model PATH")
    }
}

#[derive(Args, Clone)]
struct SampleArgs {
    /// Most new tokens.
    #[arg(short = 'n', long, default_value_t = 256)]
    max_tokens: usize,
    /// Temperature (0 = greedy; >= 0).
    #[arg(long, default_value_t = 0.0, value_parser = in_range("temperature", |v| v >= 0.0, ">= 0"))]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Top-p (1 = off; in (0, 1]).
    #[arg(long, default_value_t = 1.0, value_parser = in_range("top-p", |v| v > 0.0 && v <= 1.0, "in (0, 1]"))]
    top_p: f32,
    /// Min-p (0 = off; in [0, 1]).
    #[arg(long, default_value_t = 0.0, value_parser = in_range("min-p", |v| (0.0..=1.0).contains(&v), "in [0, 1]"))]
    min_p: f32,
    /// Repetition penalty (1 = off; > 0).
    #[arg(long, default_value_t = 1.0, value_parser = in_range("repeat-penalty", |v| v > 0.0, "> 0"))]
    repeat_penalty: f32,
    /// RNG seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

/// A clap parser of a finite f32 that `ok` accepts (the ranges of `SamplingParams::validate`).
fn in_range(
    name: &'static str,
    ok: fn(f32) -> bool,
    range: &'static str,
) -> impl Fn(&str) -> std::result::Result<f32, String> + Clone + Send + Sync + 'static {
    move |s| match s.parse::<f32>() {
        Ok(v) if v.is_finite() && ok(v) => Ok(v),
        Ok(v) => Err(format!("{name} {v} is out of range: must be {range}")),
        Err(e) => Err(format!("{s:?} is not a number: {e}")),
    }
}

impl SampleArgs {
    fn params(&self) -> GenerateParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        GenerateParams {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temp,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repetition_penalty: self.repeat_penalty,
                seed,
                ..Default::default()
            },
            stop: self.stop.clone(),
        }
    }
}

fn gpu_options(g: &GpuArgs) -> GpuOptions {
    let mut opts = GpuOptions::from_env();
    if let Some(a) = &g.adapter {
        opts.adapter_name = Some(a.clone());
    }
    if let Some(b) = &g.backend {
        opts.backends = Some(wgpu::Backends::from_comma_list(b));
    }
    opts.force_bf16 |= g.force_bf16;
    opts
}

fn gpu(g: &GpuArgs) -> Result<GpuContext> {
    let ctx = GpuContext::new_blocking(&gpu_options(g))?;
    announce(&ctx, "adapter");
    Ok(ctx)
}

/// The devices of `--gpus` (one per number), or the one chosen adapter.
fn gpus(g: &GpuArgs) -> Result<Vec<GpuContext>> {
    if g.gpus.is_empty() {
        return Ok(vec![gpu(g)?]);
    }
    let ctxs = pollster::block_on(GpuContext::open_indices(&gpu_options(g), &g.gpus))?;
    for (d, ctx) in ctxs.iter().enumerate() {
        announce(ctx, &format!("device {d}: adapter {}", g.gpus[d]));
    }
    Ok(ctxs)
}

fn announce(ctx: &GpuContext, what: &str) {
    let note = if ctx.is_software() { " — no GPU found, running on the CPU through lavapipe (slow)" } else { "" };
    eprintln!("{what}: {} ({:?}), activations {}{note}", ctx.info.name, ctx.info.backend, ctx.act.name());
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "loading {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

fn load_engine(m: &ModelArgs, slots: usize) -> Result<InfernoLlamaEngine> {
    let ctxs = gpus(&m.g)?;
    let pb = progress_bar(0);
    let opts = EngineOptions {
        ctx_len: m.ctx,
        max_tokens: m.batch,
        slots,
        check_tensors: m.check_tensors,
        split: m.g.split.clone(),
    };
    let path = m.path()?;
    let eng = InfernoLlamaEngine::load_split(path, &ctxs, &opts, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
    .with_context(|| format!("loading {}", path.display()))?;
    pb.finish_and_clear();
    let l = eng.session.ledger();
    eprintln!(
        "model: {} layers, hidden {}, vocab {}; GPU memory: weights {:.1} MB, KV cache {:.1} MB, scratch {:.1} MB{}",
        eng.session.model.config.num_hidden_layers,
        eng.session.model.config.hidden_size,
        eng.session.model.config.vocab_size,
        l.weights as f64 / 1e6,
        l.kv_cache as f64 / 1e6,
        l.scratch as f64 / 1e6,
        if l.weights_expanded > 0 {
            format!(" ({:.1} MB of weights expanded from GGUF blocks to f16)", l.weights_expanded as f64 / 1e6)
        } else {
            String::new()
        }
    );
    print_devices(&eng.session);
    Ok(eng)
}

/// Each device's layers and memory, for a model split over several.
fn print_devices(s: &Session) {
    if s.model.stages.len() < 2 {
        return;
    }
    for (d, (st, l)) in s.model.stages.iter().zip(s.device_ledgers()).enumerate() {
        eprintln!(
            "device {d} ({}): layers {}..{}; weights {:.1} MB, KV cache {:.1} MB, scratch {:.1} MB",
            st.ctx.info.name,
            st.first_layer,
            st.first_layer + st.layers.len(),
            l.weights as f64 / 1e6,
            l.kv_cache as f64 / 1e6,
            l.scratch as f64 / 1e6
        );
    }
}

/// Streams a piece of generated text to stdout as it arrives.
fn print_piece(piece: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(piece.as_bytes());
    let _ = o.flush();
}

fn print_stats(g: &inferno_llama::generate::Generation) {
    let pp = g.prompt_tokens as f64 / g.prompt_secs.max(1e-9);
    let tg = g.tokens.len().saturating_sub(1) as f64 / g.gen_secs.max(1e-9);
    eprintln!(
        "\nprompt: {} tokens, {:.1} tok/s | generation: {} tokens, {:.1} tok/s | finish: {:?}",
        g.prompt_tokens,
        pp,
        g.tokens.len(),
        tg,
        g.finish
    );
}

fn main() {
    private_runtime_dir();
    if let Err(e) = real_main() {
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

/// Mesa's lavapipe (through libwayland) prints "error: XDG_RUNTIME_DIR is invalid or not set" on
/// every run where that variable does not name a directory (containers, CI, ssh without a login
/// session): to a newcomer the first line of output is then an error. Where it is unset or not a
/// directory, point it at a private one (mode 0700, as the XDG spec asks) before any thread or
/// driver starts; a valid value is left alone, and real driver errors still reach stderr.
fn private_runtime_dir() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
            return;
        }
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return };
        let dir = std::env::temp_dir().join(format!("inferno-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // only a directory of our own that nobody else can enter (not one another user planted)
        let ours = std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
        if ours {
            // Single-threaded here: main's first statement, before clap, tokio or any driver thread.
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { m, prompt, raw, system, s } => {
            let mut eng = load_engine(&m, prompt.len())?;
            let mut texts = vec![];
            for p in prompt {
                texts.push(if raw || eng.template.is_none() {
                    p
                } else {
                    let mut msgs = vec![];
                    if let Some(sys) = &system {
                        msgs.push(Message::new("system", sys));
                    }
                    msgs.push(Message::new("user", &p));
                    eng.render_chat(&msgs)?
                });
            }
            if texts.len() > 1 {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let params = vec![s.params(); refs.len()];
                for (i, g) in eng.generate_batch(&refs, &params)?.iter().enumerate() {
                    println!("[{i}] {}", g.text);
                    print_stats(g);
                }
                return Ok(());
            }
            let text = texts.remove(0);
            let g = eng.generate(&text, s.params(), print_piece)?;
            println!();
            print_stats(&g);
        }
        Cmd::Chat { m, system, s } => {
            let mut eng = load_engine(&m, 1)?;
            if eng.template.is_none() {
                bail!("{} has no chat template; use `inferno run --raw`", m.path()?.display());
            }
            let mut msgs = vec![];
            if let Some(sys) = system {
                msgs.push(Message::new("system", &sys));
            }
            eprintln!("chat: type a message, empty line or Ctrl-D to quit");
            let stdin = std::io::stdin();
            loop {
                eprint!("> ");
                let mut line = String::new();
                if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
                    break;
                }
                msgs.push(Message::new("user", line.trim_end()));
                let g = eng.chat(&msgs, s.params(), print_piece)?;
                println!();
                print_stats(&g);
                msgs.push(Message::new("assistant", &g.text));
            }
        }
        Cmd::Bench { m, n_prompt, n_gen, reps, parallel, shape, dtype, json, profile } => {
            let parallel: Vec<usize> = parallel.iter().map(|&p| p as usize).collect();
            let ck = match &shape {
                Some(s) => {
                    let cfg = inferno_llama::model::config::preset(s).context("unknown shape")?;
                    let mut ck = Checkpoint::generated(cfg, &dtype, 0)?;
                    ck.file_names = vec![format!("{s} {dtype} (generated weights)")];
                    ck
                }
                None => Checkpoint::open(m.path()?)?,
            };
            bench(&m, ck, n_prompt, n_gen, reps, &parallel, json, profile)?
        }
        Cmd::Serve { m, host, port, parallel, max_queue, api_key, cors, body_limit, alias, deterministic } => {
            let ctxs = gpus(&m.g)?;
            let engine = EngineOptions {
                ctx_len: m.ctx,
                max_tokens: m.batch,
                slots: parallel.max(1),
                check_tensors: m.check_tensors,
                split: m.g.split.clone(),
            };
            let name = alias.unwrap_or_else(|| {
                m.path()
                    .ok()
                    .and_then(|p| p.file_name())
                    .map_or("model".into(), |n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
            });
            let opts = inferno_llama::serve::ServeOptions {
                host,
                port,
                parallel,
                max_queue,
                api_key: api_key.filter(|k| !k.is_empty()),
                cors,
                body_limit,
                model_name: name,
                deterministic,
            };
            inferno_llama::serve::serve(m.path()?.to_path_buf(), ctxs, engine, opts)?;
        }
        Cmd::Info { model, g } => {
            let opts = GpuOptions { adapter_name: None, ..gpu_options(&g) };
            for (n, a) in pollster::block_on(GpuContext::adapters(&opts)).iter().enumerate() {
                let i = a.get_info();
                println!("adapter {n}: {} ({:?}, {:?}, driver {})", i.name, i.backend, i.device_type, i.driver);
            }
            let ctx = gpu(&g)?;
            println!("chosen:\n{}", ctx.report());
            if let Some(p) = model {
                let ck = Checkpoint::open(&p)?;
                println!(
                    "model: {}\nformat: {:?}\n{:#?}\ntensor bytes in files: {}",
                    p.display(),
                    ck.format,
                    ck.config,
                    ck.tensor_bytes()
                );
                if !g.gpus.is_empty() {
                    // the split --gpus would make (weights only: the KV cache and scratch come on top)
                    let layers =
                        inferno_llama::model::layer_split(ck.config.num_hidden_layers, g.gpus.len(), &g.split)?;
                    let bytes = inferno_llama::model::split_bytes(&ck, &layers);
                    let mut first = 0;
                    for (d, (n, b)) in layers.iter().zip(bytes).enumerate() {
                        println!(
                            "device {d} (adapter {}): layers {first}..{}, weights {b} bytes",
                            g.gpus[d],
                            first + n
                        );
                        first += n;
                    }
                }
            }
        }
        Cmd::Convert { model, out, dtype } => {
            let dtype = match dtype.as_str() {
                "bf16" => inferno_llama::WeightDtype::Bf16,
                "f16" => inferno_llama::WeightDtype::F16,
                "f32" => inferno_llama::WeightDtype::F32,
                other => bail!("--dtype {other}: expected bf16, f16 or f32"),
            };
            let ck = Checkpoint::open(&model)?;
            inferno_llama::model::convert::gguf_to_safetensors(&ck, &out, dtype)?;
            eprintln!("wrote {}", out.display());
        }
        Cmd::Perplexity { m, file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut eng = load_engine(&m, 1)?;
            let ids = eng.tokenizer.encode(&text, true)?;
            let n_ctx = m.ctx.unwrap_or(512).min(eng.session.ctx_len());
            if ids.len() < 2 {
                bail!("{} has fewer than two tokens", file.display());
            }
            let v = eng.session.model.config.vocab_size;
            let (mut nll, mut count) = (0.0f64, 0usize);
            let t0 = Instant::now();
            // windows of n_ctx tokens; as llama-perplexity, only the second half of each window is scored
            for window in ids.chunks(n_ctx).filter(|w| w.len() >= 2) {
                let logits = eng.session.logits_all_blocking(0, 0, window)?;
                let first = window.len() / 2;
                for i in first.max(1)..window.len() {
                    let row = &logits[(i - 1) * v..i * v];
                    let max = row.iter().cloned().fold(f32::MIN, f32::max);
                    let lse = max as f64 + row.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln();
                    nll += lse - row[window[i] as usize] as f64;
                    count += 1;
                }
                eprint!("\r[{count} tokens scored] ppl {:.4}", (nll / count as f64).exp());
            }
            eprintln!();
            println!(
                "perplexity: {:.4} over {count} tokens ({} tokens, windows of {n_ctx}) in {:.1} s",
                (nll / count as f64).exp(),
                ids.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

#[allow(clippy::too_many_arguments)]
fn bench(
    m: &ModelArgs,
    ck: Checkpoint,
    n_prompt: usize,
    n_gen: usize,
    reps: usize,
    pars: &[usize],
    json: bool,
    profile: bool,
) -> Result<()> {
    let ctxs = gpus(&m.g)?;
    let ctx = ctxs[0].clone();
    if m.check_tensors {
        ck.check_tensors()?;
    }
    let pb = progress_bar(ck.tensor_bytes());
    let t_load = Instant::now();
    let layers = inferno_llama::model::layer_split(ck.config.num_hidden_layers, ctxs.len(), &m.g.split)?;
    let model = Arc::new(Llama::load_split(&ctxs, &layers, &ck, |d, _| pb.set_position(d))?);
    pb.finish_and_clear();
    let load_s = t_load.elapsed().as_secs_f64();
    let cfg = model.config.clone();
    let ctx_len = m.ctx.unwrap_or(n_prompt + n_gen + 1);
    let most = pars.iter().copied().max().unwrap_or(1);
    let mut s = Session::new(model.clone(), most, ctx_len, m.batch.max(1).min(n_prompt.max(1)).max(most))?;
    let prompt: Vec<u32> = (0..n_prompt).map(|i| (i * 7919 % cfg.vocab_size) as u32).collect();
    // the other sequences of a batched decode get the same prompt (not timed)
    for slot in 1..most {
        s.prefill_blocking(slot, 0, &prompt)?;
    }
    let (mut pp, mut tg, mut ttft) = (vec![], vec![vec![]; pars.len()], vec![]);
    for r in 0..reps + 1 {
        // first repetition warms up pipelines and graphs and is not counted
        let t = Instant::now();
        let next = if n_prompt > 0 {
            s.prefill_blocking(0, 0, &prompt).map(|l| inferno_llama::sampling::argmax(&l))?
        } else {
            0
        };
        let prefill = t.elapsed().as_secs_f64();
        // the GPU idled (and may have clocked down) while the weights loaded: the warm-up runs
        // the prompt for a second (H200, 2026-12-04: about one prompt bench process in four had its
        // timed 10-50 ms prompts 3-4x slow after a single warm-up prompt)
        while r == 0 && n_prompt > 0 && t.elapsed().as_secs_f64() < 1.0 {
            s.prefill_blocking(0, 0, &prompt)?;
        }
        if r > 0 && n_prompt > 0 {
            pp.push(n_prompt as f64 / prefill);
            ttft.push(prefill * 1e3);
        }
        for (j, &par) in pars.iter().enumerate() {
            let mut ids = vec![next; par];
            let t = Instant::now();
            for k in 0..n_gen {
                let chunks: Vec<SeqChunk> = (0..par)
                    .map(|slot| SeqChunk::generated(slot, n_prompt + k, std::slice::from_ref(&ids[slot])))
                    .collect();
                ids = s.forward_greedy_blocking(&chunks)?;
            }
            let gen = t.elapsed().as_secs_f64();
            if r > 0 && n_gen > 0 {
                tg[j].push((n_gen * par) as f64 / gen);
            }
        }
    }
    if profile {
        for &par in pars {
            let decode = s.decode_graph(par).context("no decode step was run (use -n > 0)")?;
            let what = if par > 1 { format!("decode step of {par} sequences") } else { "decode step".into() };
            print_profile(&ctx, &what, decode)?;
        }
        if let Some(prefill) = s.prefill_graph() {
            print_profile(&ctx, &format!("prompt batch of {}", s.max_tokens.min(n_prompt)), prefill)?;
        }
    }
    let ledger = s.ledger();
    let dtype = model.stages[0].layers[0].qkv[0].dtype.name();
    let name = match &m.model {
        _ if ck.is_generated() => ck.file_names[0].clone(),
        Some(p) => p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        None => String::new(),
    };
    let (pp_m, pp_sd) = if pp.is_empty() { (0.0, 0.0) } else { mean_sd(&pp) };
    let tg_stats: Vec<(f64, f64)> = tg.iter().map(|v| if v.is_empty() { (0.0, 0.0) } else { mean_sd(v) }).collect();
    let (tg_m, tg_sd) = tg_stats.first().copied().unwrap_or((0.0, 0.0));
    let (ttft_m, _) = if ttft.is_empty() { (0.0, 0.0) } else { mean_sd(&ttft) };
    if json {
        let j = serde_json::json!({
            "model": name, "params": cfg.n_params(), "weights_dtype": dtype, "adapter": ctx.info.name,
            "backend": format!("{:?}", ctx.info.backend), "activations": ctx.act.name(),
            "n_prompt": n_prompt, "n_gen": n_gen, "reps": reps, "parallel": pars,
            "pp_tok_s": pp_m, "pp_tok_s_sd": pp_sd, "tg_tok_s": tg_m, "tg_tok_s_sd": tg_sd, "ttft_ms": ttft_m,
            "load_s": load_s, "gpu_bytes": {"weights": ledger.weights, "kv_cache": ledger.kv_cache, "scratch": ledger.scratch},
            "weights_file_bytes": ledger.weights_in_file, "pp": pp, "tg": tg[0],
            "devices": s.model.stages.iter().zip(s.device_ledgers()).map(|(st, l)| serde_json::json!({
                "adapter": st.ctx.info.name, "layers": [st.first_layer, st.first_layer + st.layers.len()],
                "gpu_bytes": {"weights": l.weights, "kv_cache": l.kv_cache, "scratch": l.scratch}})).collect::<Vec<_>>(),
            "tg_by_parallel": pars.iter().zip(&tg_stats).zip(&tg).map(|((p, (m, sd)), v)| serde_json::json!({
                "parallel": p, "tg_tok_s": m, "tg_tok_s_sd": sd, "tg": v})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("| model | size | dtype | adapter | test | t/s |");
        println!("|---|---|---|---|---|---|");
        let size = format!("{:.2} GiB", ledger.weights as f64 / (1u64 << 30) as f64);
        if n_prompt > 0 {
            println!("| {name} | {size} | {dtype} | {} | pp{n_prompt} | {pp_m:.2} ± {pp_sd:.2} |", ctx.info.name);
        }
        for (&par, &(tg_m, tg_sd)) in pars.iter().zip(&tg_stats).filter(|_| n_gen > 0) {
            let test = if par > 1 { format!("tg{n_gen} x{par}") } else { format!("tg{n_gen}") };
            println!("| {name} | {size} | {dtype} | {} | {test} | {tg_m:.2} ± {tg_sd:.2} |", ctx.info.name);
        }
        eprintln!(
            "load {load_s:.2} s; time to first token {ttft_m:.1} ms; GPU memory: weights {} B, KV {} B, scratch {} B",
            ledger.weights, ledger.kv_cache, ledger.scratch
        );
        print_devices(&s);
    }
    Ok(())
}

/// Per-op GPU time of one recorded graph: op, calls, total ms, % of step, GB/s of weights.
fn print_profile(ctx: &GpuContext, what: &str, g: &inferno_llama::graph::Graph) -> Result<()> {
    let entries = pollster::block_on(g.profile(ctx))?;
    let total: f64 = entries.iter().map(|e| e.ns).sum();
    // one row per kernel and weight size: the same kernel over differently shaped weights (a
    // layer's q/k/v, o, gate/up and down matmuls) shows each shape's own GB/s
    let mut ops: Vec<(String, usize, f64, u64)> = vec![];
    for e in &entries {
        let label =
            if e.bytes > 0 { format!("{} ({:.1} MB)", e.label, e.bytes as f64 / 1e6) } else { e.label.to_string() };
        match ops.iter_mut().find(|o| o.0 == label) {
            Some(o) => {
                o.1 += 1;
                o.2 += e.ns;
                o.3 += e.bytes;
            }
            None => ops.push((label, 1, e.ns, e.bytes)),
        }
    }
    ops.sort_by(|a, b| b.2.total_cmp(&a.2));
    eprintln!(
        "{what} profile ({} dispatches, {:.3} ms of GPU time, one pass per dispatch)",
        entries.len(),
        total / 1e6
    );
    eprintln!("| op | calls | total ms | % of step | GB/s (weights) |");
    eprintln!("|---|---|---|---|---|");
    for (label, calls, ns, bytes) in ops {
        let gbs = if bytes > 0 { format!("{:.0}", bytes as f64 / ns) } else { "-".into() };
        eprintln!("| {label} | {calls} | {:.3} | {:.1} | {gbs} |", ns / 1e6, 100.0 * ns / total);
    }
    Ok(())
}
