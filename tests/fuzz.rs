//! Fuzzing of everything that parses untrusted input: the GGUF reader (header, config, vocabulary),
//! the SafeTensors header, config.json / params.json, tokenizer.json with tokenizer_config.json,
//! and chat templates. A stable harness: seeded random mutations (bit flips, interesting integers
//! at random offsets, truncations, splices, inserted syntax tokens) of the corpus — the test
//! fixtures plus tests/fuzz/corpus. Every input must give Ok or an error; a panic, an input that
//! takes more than 1 s of CPU, or one allocation larger than 64 MiB + 64 x the input fails the test and
//! leaves the input in target/fuzz-failures/.
//!
//!     INFERNO_FUZZ_SECS=600 cargo test --release --test fuzz -- --nocapture   # a campaign
//!     INFERNO_FUZZ_SEED=N replays one run; INFERNO_FUZZ_ONLY=gguf runs one target;
//!     INFERNO_FUZZ_ONLY=gguf INFERNO_FUZZ_REPLAY=target/fuzz-failures/FILE runs one saved input.
//! CI runs every target for 15 s (the default; longer campaigns as above).

use inferno_llama::chat::{ChatTemplate, Message};
use inferno_llama::generate::tokenizer_from_parts;
use inferno_llama::model::checkpoint::FileData;
use inferno_llama::model::gguf::Gguf;
use inferno_llama::model::{Checkpoint, LlamaConfig};
use inferno_llama::tokenizer::Tokenizer;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, remembering the largest single request since the last reset.
struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time of this thread (Linux: /proc/thread-self/stat, 10 ms ticks), so that a busy machine
/// does not make a fast input look like a hang; wall time elsewhere.
fn thread_time(wall0: Instant) -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok();
    let ticks = stat.and_then(|s| {
        let rest = s.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    });
    ticks.map_or_else(|| wall0.elapsed(), |t| Duration::from_millis(t * 10))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_all(paths: &[&str]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| std::fs::read(root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))).collect()
}

fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> =
        std::fs::read_dir(root().join("tests/fuzz/corpus").join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Integers that break size arithmetic.
const INTERESTING: [u64; 12] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, 1 << 60, u64::MAX];

/// Syntax worth inserting into text formats (JSON, Jinja).
const TOKENS: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "-1",
    "1e309",
    "18446744073709551616",
    "\\u0000",
    "{%",
    "%}",
    "{{",
    "}}",
    "for x in range(100000)",
    "loop",
    "messages",
    "*",
    "~",
    "|",
    "\u{10ffff}",
    "\u{0}",
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=6) {
        let len = b.len();
        let at = if len == 0 { 0 } else { rng.random_range(0..len) };
        match rng.random_range(0..8) {
            0 if len > 0 => b[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => b[at] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{'][rng.random_range(0..6)],
            2 if len >= 8 => {
                // an integer field near the start (headers) or anywhere
                let at = if rng.random_bool(0.7) { rng.random_range(0..len.min(4096) - 7) } else { at.min(len - 8) };
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                if rng.random_bool(0.5) {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
                }
            }
            3 => b.truncate(at),
            4 if len > 1 => {
                let end = rng.random_range(at..len.min(at + 64) + 1);
                b.drain(at..end);
            }
            5 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let s = rng.random_range(0..other.len());
                    let e = rng.random_range(s..other.len().min(s + 256) + 1);
                    let piece = other[s..e].to_vec();
                    b.splice(at..at, piece);
                }
            }
            _ => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
        }
    }
    b
}

/// Runs `f` on mutated inputs for the configured time.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, f: impl Fn(&[u8])) {
    if std::env::var("INFERNO_FUZZ_ONLY").is_ok_and(|only| only != name) {
        return;
    }
    let secs: u64 = std::env::var("INFERNO_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let seed: u64 = std::env::var("INFERNO_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    // INFERNO_FUZZ_REPLAY=FILE runs one saved input through this target and reports its cost
    if let Ok(file) = std::env::var("INFERNO_FUZZ_REPLAY") {
        let input = std::fs::read(&file).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input)));
        eprintln!(
            "replay {name} {file}: {:?}, panicked {}, largest allocation {}",
            t0.elapsed(),
            r.is_err(),
            LARGEST.load(Ordering::Relaxed)
        );
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut n, mut slowest) = (0u64, Duration::ZERO);
    let mut largest = 0usize;
    // the seeds themselves first, then mutations
    let mut pending: Vec<Vec<u8>> = seeds.clone();
    while Instant::now() < deadline || !pending.is_empty() {
        let input = pending.pop().unwrap_or_else(|| mutate(&mut rng, &seeds));
        LARGEST.store(0, Ordering::Relaxed);
        let wall0 = Instant::now();
        let cpu0 = thread_time(wall0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input)));
        let dt = thread_time(wall0).saturating_sub(cpu0);
        let big = LARGEST.load(Ordering::Relaxed);
        let limit = (64 << 20) + 64 * input.len();
        let failure = if outcome.is_err() {
            Some("panicked".to_string())
        } else if dt > Duration::from_secs(1) {
            Some(format!("took {dt:?}"))
        } else if big > limit {
            Some(format!("allocated {big} bytes at once (limit {limit})"))
        } else {
            None
        };
        if let Some(why) = failure {
            let dir = root().join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{n}.bin"));
            std::fs::write(&file, &input).unwrap();
            panic!("fuzz {name}: input {n} {why} (seed {seed}); saved as {}", file.display());
        }
        slowest = slowest.max(dt);
        largest = largest.max(big);
        n += 1;
    }
    eprintln!(
        "fuzz {name}: {n} inputs in {secs} s, seed {seed}: no panic, slowest {slowest:?}, largest allocation {largest} B"
    );
}

fn tiny_config() -> LlamaConfig {
    let text = std::fs::read_to_string(root().join("tests/data/tiny-gqa-bf16/config.json")).unwrap();
    LlamaConfig::from_hf_json(&text, "config.json").unwrap()
}

/// Uses what a checkpoint offers as the loader would: every tensor's bytes, the value check.
fn exercise(ck: &Checkpoint) {
    let mut names: Vec<&String> = ck.tensors.keys().collect();
    names.sort();
    for n in names {
        let shape = ck.tensors[n].shape.clone();
        let _ = ck.tensor(n, &shape);
    }
    let _ = ck.check_tensors();
}

fn use_tokenizer(t: &Tokenizer) {
    if let Ok(ids) = t.encode("Hello world 123 <s> ▁Hi\n\t é 🦀", true) {
        let _ = t.decode(&ids, false);
    }
}

#[test]
fn fuzz_parsers() {
    fuzz(
        "gguf",
        read_all(&[
            "tests/data/tiny-q4-k-m/model.gguf",
            "tests/data/tiny-iq-all/model.gguf",
            "tests/data/tiny-rope-freqs/model.gguf",
            "tests/data/vocab/ggml-vocab-llama-spm.gguf",
        ]),
        |b| {
            if let Ok(g) = Gguf::parse(b, "fuzz.gguf") {
                if let Ok(t) = Tokenizer::from_gguf(&g, "fuzz.gguf") {
                    use_tokenizer(&t);
                }
            }
            if let Ok(ck) = Checkpoint::from_gguf(FileData::Owned(b.to_vec()), "fuzz.gguf") {
                exercise(&ck);
                if let Ok((t, template)) = tokenizer_from_parts(&ck, None, None, None) {
                    use_tokenizer(&t);
                    if let Some(tm) = template {
                        let _ = tm.render(&[Message::new("user", "hi")], true);
                    }
                }
            }
        },
    );
    let config = tiny_config();
    fuzz("safetensors", read_all(&["tests/data/tiny-gqa-bf16/model.safetensors"]), |b| {
        if let Ok(ck) =
            Checkpoint::from_safetensors(config.clone(), vec![("fuzz.safetensors".into(), FileData::Owned(b.to_vec()))])
        {
            exercise(&ck);
        }
    });
    let mut configs = read_all(&[
        "tests/data/tiny-gqa-bf16/config.json",
        "tests/data/tiny-tied-llama3-f16/config.json",
        "tests/data/tiny-w8a8/config.json",
        "tests/data/tiny-sharded-bf16/model.safetensors.index.json",
    ]);
    configs.extend(corpus("config"));
    fuzz("config", configs, |b| {
        let text = String::from_utf8_lossy(b);
        let _ = LlamaConfig::from_hf_json(&text, "config.json");
        let _ = LlamaConfig::from_meta_params(&text, "params.json");
    });
    // tokenizer.json (with a tokenizer_config.json that names BOS/EOS and a template) on a
    // SafeTensors checkpoint
    let st = Checkpoint::from_safetensors(
        tiny_config(),
        vec![(
            "m.safetensors".into(),
            FileData::Owned(read_all(&["tests/data/tiny-gqa-bf16/model.safetensors"]).remove(0)),
        )],
    )
    .unwrap();
    let tok_config = r#"{"bos_token": "<s>", "eos_token": {"content": "</s>"}, "add_bos_token": true, "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}"#;
    fuzz("tokenizer", corpus("tokenizer"), |b| {
        if let Ok((t, template)) = tokenizer_from_parts(&st, Some(b), Some(tok_config), None) {
            use_tokenizer(&t);
            if let Some(tm) = template {
                let _ = tm.render(&[Message::new("user", "hi")], true);
            }
        }
        let _ = Tokenizer::from_json(b, "tokenizer.json").map(|t| use_tokenizer(&t));
    });
    fuzz("template", corpus("template"), |b| {
        let src = String::from_utf8_lossy(b);
        if let Ok(t) = ChatTemplate::new(&src, "<s>", "</s>") {
            let msgs =
                [Message::new("system", "Be brief."), Message::new("user", "Hi"), Message::new("assistant", "Hello")];
            let _ = t.render(&msgs, true);
        }
    });
}
