//! The `inferno` CLI run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the CLI as a user in a container or CI session does: without XDG_RUNTIME_DIR.
fn inferno(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferno")).args(args).env_remove("XDG_RUNTIME_DIR").output().expect("run inferno")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn smollm2() -> String {
    let p = root().join(".models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "{} is missing: run tests/fetch-smollm2.sh", p.display());
    p.display().to_string()
}

/// The run's stderr, which never carries lavapipe's XDG_RUNTIME_DIR complaint (the CLI gives the
/// driver a private runtime directory when the session has none).
fn stderr(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    err
}

#[test]
fn run_answers_with_the_default_model() {
    let o = inferno(&["run", "-m", &smollm2(), "-p", "What is the capital of France?", "-n", "40"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "The capital of France is Paris.");
    let err = stderr(&o);
    assert!(err.contains("tok/s") && err.contains("finish: Eos"), "{err}");
}

#[test]
fn run_split_over_two_devices_answers_the_same() {
    // two devices on the one adapter (`inferno info` numbers the adapters)
    let info = inferno(&["info"]);
    let out = String::from_utf8_lossy(&info.stdout).to_string();
    let line = out.lines().find(|l| l.starts_with("adapter ") && l.contains("(Vulkan")).expect("a Vulkan adapter");
    let n: usize = line["adapter ".len()..].split(':').next().and_then(|n| n.parse().ok()).expect("adapter N:");
    let gpus = format!("{n},{n}");
    let plan = inferno(&["info", "-m", &smollm2(), "--gpus", &gpus, "--split", "2,1"]);
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(plan.contains(&format!("device 1 (adapter {n}): layers 20..30, weights ")), "{plan}");
    let o = inferno(&["run", "-m", &smollm2(), "-p", "What is the capital of France?", "-n", "40", "--gpus", &gpus]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "The capital of France is Paris.");
    let err = stderr(&o);
    assert!(err.contains("device 1") && err.contains("layers 15..30"), "{err}");
}

#[test]
fn run_with_sampling_is_repeatable_by_seed() {
    let args = [
        "run",
        "-m",
        &smollm2(),
        "-p",
        "Tell me a story.",
        "-n",
        "12",
        "--temp",
        "0.9",
        "--top-p",
        "0.95",
        "--seed",
        "7",
    ];
    let a = inferno(&args);
    let b = inferno(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());
}

#[test]
fn bench_json_parses() {
    let model = root().join("tests/data/tiny-gqa-bf16");
    let o = inferno(&["bench", "-m", model.to_str().unwrap(), "-p", "16", "-n", "8", "-r", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench --json prints JSON");
    assert!(j["pp_tok_s"].as_f64().unwrap() > 0.0);
    assert!(j["tg_tok_s"].as_f64().unwrap() > 0.0);
    assert_eq!(j["weights_dtype"], "BF16");
    assert_eq!(j["tg"].as_array().unwrap().len(), 2);
    assert!(j["gpu_bytes"]["weights"].as_u64().unwrap() >= j["weights_file_bytes"].as_u64().unwrap());
}

#[test]
fn bench_batched_decode_and_generated_weights() {
    // a preset's shape with generated Q4_K_M-like weights (SmolLM2's rows of 576 fall back to
    // Q5_0 / Q8_0, as llama.cpp's do), no file; two batch sizes in one run
    let args = ["bench", "--shape", "smollm2-135m", "--dtype", "q4_k_m", "-p", "4", "-n", "2", "-r", "1"];
    let o = inferno(&[&args[..], &["--parallel", "1,3", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench --json prints JSON");
    assert_eq!(j["model"], "smollm2-135m q4_k_m (generated weights)");
    assert_eq!(j["weights_dtype"], "Q5_0");
    let rows = j["tg_by_parallel"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["parallel"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    assert!(rows.iter().all(|r| r["tg_tok_s"].as_f64().unwrap() > 0.0));
    assert!(j["gpu_bytes"]["weights"].as_u64().unwrap() >= j["weights_file_bytes"].as_u64().unwrap());
    // a shape and a model file together, or an unknown format, are errors
    let o = inferno(&["bench", "--shape", "smollm2-135m", "-m", "x.gguf"]);
    assert!(!o.status.success() && stderr(&o).contains("--shape"), "{}", stderr(&o));
    let o = inferno(&["bench", "--shape", "smollm2-135m", "--dtype", "q9_z"]);
    assert!(!o.status.success() && stderr(&o).contains("q4_k_m"), "{}", stderr(&o));
}

#[test]
fn perplexity_of_a_text() {
    let dir = std::env::temp_dir().join(format!("inferno-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("text.txt");
    std::fs::write(&f, "The quick brown fox jumps over the lazy dog. The capital of France is Paris, and the capital of Germany is Berlin. Water boils at one hundred degrees Celsius at sea level.").unwrap();
    let o = inferno(&["perplexity", "-m", &smollm2(), "-f", f.to_str().unwrap(), "-c", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let ppl: f64 = out.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    assert!(ppl > 1.0 && ppl < 100.0, "perplexity {ppl} of plain English");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["run".into(), "-m".into(), "/no/such/model.gguf".into(), "-p".into(), "hi".into()],
            "/no/such/model.gguf",
        ),
        (vec!["info".into(), "-m".into(), root().join("Cargo.toml").display().to_string()], "config.json"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = inferno(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    // a layer split over adapters that do not exist, or leaving a device without layers
    let m = smollm2();
    for (args, needle) in [
        (vec!["run", "-m", &m, "-p", "hi", "--gpus", "99"], "number 99"),
        (vec!["run", "-m", &m, "-p", "hi", "--gpus", "0,0", "--split", "1,0"], "without layers"),
        (vec!["run", "-m", &m, "-p", "hi", "--gpus", "0,0", "--split", "1,1,1"], "one non-negative share per device"),
    ] {
        let o = inferno(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let o = inferno(&["run", "-m", &m, "-p", "hi", "--split", "1,1"]);
    assert_eq!(o.status.code(), Some(2), "--split without --gpus is a usage error");
    // a corrupt GGUF file
    let dir = std::env::temp_dir().join(format!("inferno-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad: PathBuf = dir.join("corrupt.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let o = inferno(&["run", "-m", bad.to_str().unwrap(), "-p", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("corrupt.gguf"), "{}", stderr(&o));
    // an unknown flag: clap's usage error
    let o = inferno(&["run", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-flag"));
    // sampling values out of range: usage errors naming the value
    for (flag, value, needle) in [
        ("--top-p", "2", "top-p 2 is out of range"),
        ("--top-p", "0", "top-p 0 is out of range"),
        ("--temp", "-1", "temperature -1 is out of range"),
        ("--min-p", "1.5", "min-p 1.5 is out of range"),
        ("--repeat-penalty", "0", "repeat-penalty 0 is out of range"),
        ("--temp", "NaN", "out of range"),
    ] {
        let arg = format!("{flag}={value}");
        let o = inferno(&["run", "-m", "x.gguf", "-p", "hi", &arg]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&o).contains(needle), "{flag} {value}: {}", stderr(&o));
    }
}

#[test]
fn zero_max_tokens_generates_nothing() {
    let o = inferno(&["run", "-m", &smollm2(), "-p", "What is the capital of France?", "-n", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
    assert!(stderr(&o).contains("generation: 0 tokens"), "{}", stderr(&o));
}

#[test]
fn chat_keeps_the_conversation() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_inferno"))
        .args(["chat", "-m", &smollm2(), "-n", "40"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // two turns, then an empty line ends the chat
    child.stdin.take().unwrap().write_all(b"What is the capital of France?\nAnd of Germany?\n\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let turns: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(turns.first(), Some(&"The capital of France is Paris."), "{out}");
    assert!(turns.len() >= 2 && out.contains("Berlin"), "the second turn answers in context: {out}");
    // the second turn reused the cached conversation: far fewer prompt tokens than the first
    let err = stderr(&o);
    let prompts: Vec<usize> = err
        .lines()
        .filter_map(|l| l.strip_prefix("prompt: "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(prompts.len(), 2, "{err}");
    assert!(prompts[1] < prompts[0], "prompt tokens per turn {prompts:?}");
}
