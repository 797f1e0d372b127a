//! Bad input gives a clear error naming the file or tensor: never a panic, a hang or a silent
//! wrong answer.

mod common;

use inferno_llama::model::{Checkpoint, Llama};
use inferno_llama::ActDtype;
use std::path::{Path, PathBuf};

fn data(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(case)
}

/// A scratch copy of a golden checkpoint directory.
fn scratch(case: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("inferno-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(data(case)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// Opening and loading must fail with a message containing every one of `needles`.
fn expect_error(path: &Path, needles: &[&str]) {
    let c = common::ctx(ActDtype::F16);
    let err = match Checkpoint::open(path) {
        Err(e) => e,
        Ok(ck) => match Llama::load(c, &ck, |_, _| {}) {
            Err(e) => e,
            Ok(_) => panic!("{} loaded without error", path.display()),
        },
    };
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
    }
    assert!(!msg.contains('\n'), "one-line error: {msg:?}");
}

/// A safetensors file from a raw JSON header and data bytes.
fn write_safetensors(path: &Path, header: &str, data: &[u8]) {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn truncated_safetensors() {
    let dir = scratch("tiny-gqa-bf16", "trunc");
    let f = dir.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&dir, &["model.safetensors"]);
}

#[test]
fn header_length_past_end() {
    let dir = scratch("tiny-gqa-bf16", "hdr");
    let f = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&f, bytes).unwrap();
    expect_error(&dir, &["model.safetensors"]);
}

#[test]
fn overlapping_offsets() {
    let dir = scratch("tiny-gqa-bf16", "overlap");
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    write_safetensors(&dir.join("model.safetensors"), h, &[0u8; 12]);
    expect_error(&dir, &["model.safetensors"]);
}

#[test]
fn wrong_shape_names_the_tensor() {
    let dir = scratch("tiny-gqa-bf16", "shape");
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 172", "\"intermediate_size\": 170");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    expect_error(&dir, &["model.layers.0.mlp.gate_proj.weight", "[170, 64]", "[172, 64]"]);
}

#[test]
fn missing_tensor_names_it() {
    let dir = scratch("tiny-gqa-bf16", "missing");
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    expect_error(&dir, &["missing tensor model.layers.2."]);
}

#[test]
fn missing_shard_names_it() {
    let dir = scratch("tiny-sharded-bf16", "shard");
    std::fs::remove_file(dir.join("model-00003-of-00009.safetensors")).unwrap();
    expect_error(&dir, &["model-00003-of-00009.safetensors", "missing"]);
}

#[test]
fn unsupported_dtype_names_tensor_and_dtype() {
    let dir = scratch("tiny-gqa-bf16", "dtype");
    let h = r#"{"model.embed_tokens.weight":{"dtype":"I64","shape":[509,64],"data_offsets":[0,260608]}}"#;
    write_safetensors(&dir.join("model.safetensors"), h, &vec![0u8; 260_608]);
    expect_error(&dir, &["model.embed_tokens.weight", "I64"]);
}

#[test]
fn missing_config_and_bad_json() {
    let dir = scratch("tiny-gqa-bf16", "cfg");
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    expect_error(&dir, &["config.json", "JSON"]);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    expect_error(&dir, &["config.json"]);
    expect_error(Path::new("/no/such/model"), &["/no/such/model"]);
}

#[test]
fn corrupt_gguf_files() {
    let dir = std::env::temp_dir().join(format!("inferno-{}-gguf", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.gguf");
    std::fs::write(&f, b"NOPE0000").unwrap();
    expect_error(&f, &["bad.gguf", "magic"]);
    // a valid header that declares a huge metadata count
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(u64::MAX.to_le_bytes());
    std::fs::write(&f, &b).unwrap();
    expect_error(&f, &["bad.gguf"]);
    // the real model cut short: tensor data past the end
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if let Ok(bytes) = std::fs::read(&real) {
        std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
        expect_error(&f, &["bad.gguf", "past the end"]);
        std::fs::write(&f, &bytes[..4000]).unwrap();
        expect_error(&f, &["bad.gguf", "past the end"]);
    }
}

#[test]
fn shard_index_cannot_leave_the_model_directory() {
    let dir = scratch("tiny-sharded-bf16", "escape");
    for evil in ["../../../../etc/passwd", "/etc/passwd", "sub/model.safetensors", "..", "C:model.safetensors"] {
        let index = format!(r#"{{"weight_map": {{"model.embed_tokens.weight": {}}}}}"#, serde_json::json!(evil));
        std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
        expect_error(&dir, &["model.safetensors.index.json", "model.embed_tokens.weight", "not a plain file name"]);
    }
}

#[test]
fn config_fields_of_the_wrong_type_are_errors() {
    let dir = scratch("tiny-gqa-bf16", "types");
    let good = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (field, bad) in [
        ("rms_norm_eps", serde_json::json!("small")),
        ("rms_norm_eps", serde_json::json!(-1.0)),
        ("rope_theta", serde_json::json!([1])),
        ("num_key_value_heads", serde_json::json!(2.5)),
        ("tie_word_embeddings", serde_json::json!("yes")),
        ("max_position_embeddings", serde_json::json!(-4)),
        ("eos_token_id", serde_json::json!("</s>")),
        ("rope_scaling", serde_json::json!("llama3")),
        ("hidden_size", serde_json::json!("64")),
    ] {
        let mut c = v.clone();
        c[field] = bad;
        std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
        expect_error(&dir, &["config.json", field]);
    }
}

#[test]
fn gguf_rope_factors_are_checked() {
    let dir = std::env::temp_dir().join(format!("inferno-{}-ropef", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("model.gguf");
    let mut bytes = std::fs::read(data("tiny-rope-freqs").join("model.gguf")).unwrap();
    let g = inferno_llama::model::gguf::Gguf::parse(&bytes, "model.gguf").unwrap();
    let r = g.tensor("rope_freqs.weight").unwrap().range.clone();
    bytes[r.start..r.start + 4].copy_from_slice(&0f32.to_le_bytes());
    std::fs::write(&f, &bytes).unwrap();
    expect_error(&f, &["model.gguf", "rope_freqs.weight", "frequency factor 0"]);
}

/// One NaN in a weight: `check_tensors` names the tensor at load, and without it every forward
/// stops with an error instead of producing tokens from NaN logits (greedy on the GPU, sampled
/// on the host, and all-position logits).
#[test]
fn a_nan_weight_is_an_error_never_a_token() {
    for (case, name) in [
        ("tiny-gqa-bf16", "model.layers.0.self_attn.q_proj.weight"),
        ("tiny-gqa-bf16", "model.layers.1.mlp.down_proj.weight"),
        // int8 activations: the NaN must survive the per-token quantization
        ("tiny-w8a8", "model.layers.0.input_layernorm.weight"),
    ] {
        nan_weight_case(case, name);
    }
    // the clean files pass the check
    Checkpoint::open(&data("tiny-gqa-bf16")).unwrap().check_tensors().unwrap();
    Checkpoint::open(&data("tiny-q4-k-m").join("model.gguf")).unwrap().check_tensors().unwrap();
}

fn nan_weight_case(case: &str, name: &str) {
    use inferno_llama::model::{SeqChunk, Session};
    use std::sync::Arc;
    let dir = scratch(case, "nan");
    let range = Checkpoint::open(&dir).unwrap().tensors[name].range.clone();
    let f = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[range.start + 70..range.start + 72].copy_from_slice(&half::bf16::NAN.to_le_bytes());
    std::fs::write(&f, bytes).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    let err = ck.check_tensors().unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("element 35") && err.contains("NaN"), "{err}");
    for path in common::PATHS {
        let model = Arc::new(Llama::load(common::ctx(path), &ck, |_, _| {}).unwrap());
        let mut s = Session::new(model, 1, 64, 32).unwrap();
        let chunk = [SeqChunk::prompt(0, 0, &[5, 6, 7])];
        for err in [
            s.forward_greedy_blocking(&chunk).unwrap_err(),
            s.forward_last_blocking(&chunk).unwrap_err(),
            s.logits_all_blocking(0, 0, &[5, 6, 7]).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains("NaN or infinity") && msg.contains("position"), "{name} {path:?}: {msg}");
        }
    }
}

/// A GGUF type the engine does not read (Q1_0, type 41, whose dequantization gguf-py lacks; the
/// interleaved Q4_0_4_4, type 31, that llama.cpp no longer writes) is an error naming the tensor
/// and the type; so is an id ggml does not have.
#[test]
fn unknown_gguf_type_names_tensor_and_type() {
    let dir = std::env::temp_dir().join(format!("inferno-{}-unread", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("unread.gguf");
    for (id, name) in [(41u32, "Q1_0"), (31, "Q4_0_4_4"), (77, "ggml type 77")] {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(0u64.to_le_bytes()); // metadata
        let tname = b"blk.0.attn_q.weight";
        b.extend((tname.len() as u64).to_le_bytes());
        b.extend(tname);
        b.extend(2u32.to_le_bytes());
        b.extend(256u64.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(id.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().div_ceil(32) * 32 + 4096, 0);
        std::fs::write(&f, &b).unwrap();
        expect_error(&f, &["unread.gguf", "blk.0.attn_q.weight", name]);
    }
}

/// A lost device ends the request with an error (wgpu's callbacks are recorded, never a panic or
/// a hang); a KV cache larger than the device can hold is an out-of-memory error with its size.
#[test]
fn device_loss_and_oversized_cache_are_errors() {
    use inferno_llama::model::{SeqChunk, Session};
    use inferno_llama::{GpuContext, GpuOptions};
    use std::sync::Arc;
    let ck = Checkpoint::open(&data("tiny-gqa-bf16")).unwrap();
    let model = Arc::new(Llama::load(common::ctx(ActDtype::F16), &ck, |_, _| {}).unwrap());
    let err = Session::new(model, 4, 1 << 30, 32).err().expect("a 2^30-position cache cannot fit").to_string();
    assert!(err.contains("KV cache") && err.contains("bytes"), "{err}");

    let gpu = GpuContext::new_blocking(&GpuOptions::from_env()).unwrap();
    let model = Arc::new(Llama::load(&gpu, &ck, |_, _| {}).unwrap());
    let mut s = Session::new(model, 1, 64, 32).unwrap();
    s.forward_last_blocking(&[SeqChunk::prompt(0, 0, &[1, 2, 3])]).unwrap();
    gpu.device.destroy();
    let err = s.forward_last_blocking(&[SeqChunk::prompt(0, 3, &[4])]).unwrap_err().to_string();
    assert!(err.contains("device"), "{err}");
    assert!(gpu.check_fault().is_err());
}
