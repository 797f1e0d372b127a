//! `inferno convert`: a GGUF model written out as Hugging Face SafeTensors + config.json +
//! tokenizer.json + tokenizer_config.json, so every format can feed every path. Q/K rows are
//! un-permuted back to the HF layout (llama.cpp permutes them for its interleaved RoPE), block
//! formats are dequantized, and tensors are produced one at a time while the file is written.

use super::checkpoint::Checkpoint;
use super::config::LlamaConfig;
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::ops::rope::RopeScaling;
use std::borrow::Cow;
use std::path::Path;

/// Inverse of llama.cpp's `permute` for one (heads * D, C) projection: GGUF row `2j + i` of a
/// head is HF row `i * D/2 + j`.
pub fn unpermute_rows(values: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let d = rows / heads;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..d / 2 {
                let src = h * d + 2 * j + i;
                let dst = h * d + i * d / 2 + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// A tensor converted when the writer asks for its bytes.
struct Lazy<'a> {
    ckpt: &'a Checkpoint,
    name: String,
    shape: Vec<usize>,
    dtype: WeightDtype,
    unpermute_heads: Option<usize>,
}

impl safetensors::View for Lazy<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        match self.dtype {
            WeightDtype::F32 => safetensors::Dtype::F32,
            WeightDtype::F16 => safetensors::Dtype::F16,
            WeightDtype::Bf16 => safetensors::Dtype::BF16,
            // convert writes float dtypes only (gguf_to_safetensors checks)
            _ => safetensors::Dtype::F32,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        // the shape comes from the file's own directory and GGUF parsing already rejected unknown
        // types, so reading it cannot fail
        #[allow(clippy::expect_used)] // safetensors' View::data cannot return an error
        let raw = self.ckpt.tensor(&self.name, &self.shape).expect("tensor checked before writing");
        let mut values = raw.dtype.decode(&raw.bytes);
        if let Some(h) = self.unpermute_heads {
            values = unpermute_rows(&values, h, self.shape[1]);
        }
        self.ckpt.release(&self.name);
        Cow::Owned(self.dtype.encode(&values))
    }
    fn data_len(&self) -> usize {
        self.dtype.row_bytes(self.shape.iter().product::<usize>())
    }
}

fn config_json(c: &LlamaConfig, dtype: WeightDtype) -> Result<serde_json::Value> {
    let scaling = match &c.rope_scaling {
        RopeScaling::Factors(f) => {
            crate::ops::rope::llama3_from_factors(f, c.head_dim, c.rope_theta).ok_or_else(|| Error::Config {
                field: "rope_freqs.weight".into(),
                reason: "its frequency factors are not Llama 3's llama3 scaling, which is all config.json can express"
                    .into(),
            })?
        }
        other => other.clone(),
    };
    let rope_scaling = match scaling {
        // (Factors were replaced by their llama3 parameters above)
        RopeScaling::None | RopeScaling::Factors(_) => serde_json::Value::Null,
        RopeScaling::Linear { factor } => serde_json::json!({"rope_type": "linear", "factor": factor}),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            serde_json::json!({
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_position_embeddings,
            })
        }
    };
    Ok(serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": c.tie_word_embeddings,
        "max_position_embeddings": c.max_position_embeddings,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_ids.first(),
        "hidden_act": "silu",
        "torch_dtype": match dtype { WeightDtype::F32 => "float32", WeightDtype::F16 => "float16", _ => "bfloat16" },
    }))
}

/// Writes `ckpt` (a GGUF checkpoint) to `out` as SafeTensors in `dtype`, with config.json,
/// tokenizer.json and tokenizer_config.json (chat template, BOS/EOS).
pub fn gguf_to_safetensors(ckpt: &Checkpoint, out: &Path, dtype: WeightDtype) -> Result<()> {
    let g = ckpt.gguf.as_ref().ok_or_else(|| Error::Invalid("convert reads GGUF files".into()))?;
    if dtype.is_block() {
        return Err(Error::Invalid(format!("convert writes f32, f16 or bf16, not {}", dtype.name())));
    }
    let c = &ckpt.config;
    std::fs::create_dir_all(out).map_err(|e| Error::Io { file: out.display().to_string(), source: e })?;
    let write = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| Error::Io { file: p.display().to_string(), source: e })
    };
    let mut names: Vec<&String> = ckpt.tensors.keys().collect();
    names.sort();
    let mut tensors = Vec::new();
    for name in names {
        let shape = ckpt.tensors[name].shape.clone();
        let heads = if name.ends_with("self_attn.q_proj.weight") {
            Some(c.num_attention_heads)
        } else if name.ends_with("self_attn.k_proj.weight") {
            Some(c.num_key_value_heads)
        } else {
            None
        };
        tensors.push((name.clone(), Lazy { ckpt, name: name.clone(), shape, dtype, unpermute_heads: heads }));
    }
    let st = out.join("model.safetensors");
    safetensors::serialize_to_file(tensors, None, &st).map_err(|e| Error::loader(st.display(), e.to_string()))?;
    write("config.json", serde_json::to_string_pretty(&config_json(c, dtype)?).unwrap_or_default())?;
    let tok = crate::tokenizer::Tokenizer::from_gguf(g, &ckpt.file_names[0])?;
    tok.save(&out.join("tokenizer.json"))?;
    let token = |id: Option<u32>| id.and_then(|i| tok.decode(&[i], false).ok());
    let template = g.get("tokenizer.chat_template").and_then(super::gguf::Value::as_str);
    let cfg = serde_json::json!({
        "bos_token": token(tok.bos_id),
        "eos_token": token(tok.eos_ids.first().copied()),
        "add_bos_token": tok.add_bos,
        "chat_template": template,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    write("tokenizer_config.json", serde_json::to_string_pretty(&cfg).unwrap_or_default())
}
