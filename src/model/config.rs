//! Model hyper-parameters from Hugging Face `config.json`, Meta's `params.json` or GGUF metadata.

use crate::error::{Error, Result};
use crate::ops::rope::RopeScaling;
use serde_json::Value;

/// Everything the Llama forward needs to know about a checkpoint's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Model width C.
    pub hidden_size: usize,
    /// MLP width I.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads H.
    pub num_attention_heads: usize,
    /// Key/value heads (divides H).
    pub num_key_value_heads: usize,
    /// Head dimension D (default C / H).
    pub head_dim: usize,
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// lm_head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (any of them stops generation).
    pub eos_token_ids: Vec<u32>,
    /// compressed-tensors INT8 W8A8 quantization of the Linear layers, if any.
    pub w8a8: Option<W8a8Config>,
}

/// compressed-tensors W8A8: int8 per-channel symmetric weights, int8 dynamic per-token
/// symmetric activations, on every Linear layer not ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct W8a8Config {
    /// Module names left unquantized (e.g. `lm_head`).
    pub ignore: Vec<String>,
}

impl W8a8Config {
    /// Whether the Linear layer `module` (e.g. `model.layers.0.mlp.up_proj`) is quantized.
    pub fn quantizes(&self, module: &str) -> bool {
        !self.ignore.iter().any(|i| match i.strip_prefix("re:") {
            Some(pattern) => module.contains(pattern.trim_start_matches(".*").trim_end_matches(".*")),
            None => i == module,
        })
    }
}

/// Parses `quantization_config`: None when absent; W8A8 when it is the compressed-tensors int8
/// scheme this engine runs; an error naming the field otherwise.
fn quantization(v: Option<&Value>, file: &str) -> Result<Option<W8a8Config>> {
    let Some(q) = v else {
        return Ok(None);
    };
    if !q.is_object() {
        return Err(wrong_type(file, "quantization_config", "an object", q));
    }
    let bad =
        |field: &str, reason: String| Error::Config { field: format!("{file}: quantization_config.{field}"), reason };
    let method = get(q, "quant_method").and_then(Value::as_str).unwrap_or("");
    if method != "compressed-tensors" {
        return Err(bad("quant_method", format!("{method:?} is not supported (compressed-tensors int8 W8A8 is)")));
    }
    let format = get(q, "format").and_then(Value::as_str).unwrap_or("");
    if format != "int-quantized" {
        return Err(bad("format", format!("{format:?} is not supported (int-quantized is)")));
    }
    let groups =
        get(q, "config_groups").and_then(Value::as_object).ok_or_else(|| bad("config_groups", "missing".into()))?;
    if groups.len() != 1 {
        return Err(bad("config_groups", format!("{} groups; one group targeting Linear is supported", groups.len())));
    }
    let Some((gname, g)) = groups.iter().next() else {
        return Err(bad("config_groups", "empty".into()));
    };
    let targets: Vec<&str> = get(g, "targets")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if targets != ["Linear"] {
        return Err(bad(&format!("config_groups.{gname}.targets"), format!("{targets:?}; [\"Linear\"] is supported")));
    }
    let expect = |part: &str, strategy: &str, dynamic: bool| -> Result<()> {
        let p = get(g, part).ok_or_else(|| bad(&format!("config_groups.{gname}.{part}"), "missing".into()))?;
        let field = |k: &str| get(p, k).cloned().unwrap_or(Value::Null);
        let ok = field("num_bits") == 8
            && field("type") == "int"
            && field("symmetric") == true
            && field("strategy") == strategy
            && field("dynamic").as_bool().unwrap_or(false) == dynamic;
        if !ok {
            return Err(bad(
                &format!("config_groups.{gname}.{part}"),
                format!("{p}: only 8-bit int symmetric, strategy {strategy:?}, dynamic {dynamic} is supported"),
            ));
        }
        Ok(())
    };
    expect("weights", "channel", false)?;
    expect("input_activations", "token", true)?;
    if get(g, "output_activations").is_some() {
        return Err(bad(
            &format!("config_groups.{gname}.output_activations"),
            "quantized outputs are not supported".into(),
        ));
    }
    let ignore = get(q, "ignore")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    Ok(Some(W8a8Config { ignore }))
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// A field present with the wrong type (absent or null fields keep their defaults instead).
fn wrong_type(file: &str, key: &str, want: &str, got: &Value) -> Error {
    Error::Config { field: format!("{file}: {key}"), reason: format!("expected {want}, got {got}") }
}

fn opt_usize(v: &Value, key: &str, file: &str) -> Result<Option<usize>> {
    get(v, key)
        .map(|x| x.as_u64().map(|n| n as usize).ok_or_else(|| wrong_type(file, key, "a non-negative integer", x)))
        .transpose()
}

fn req_usize(v: &Value, key: &str, file: &str) -> Result<usize> {
    opt_usize(v, key, file)?.ok_or_else(|| Error::Config { field: format!("{file}: {key}"), reason: "missing".into() })
}

/// A finite number; `positive` also rejects zero and negatives (epsilons, theta, factors).
fn opt_f32(v: &Value, key: &str, file: &str) -> Result<Option<f32>> {
    get(v, key)
        .map(|x| {
            x.as_f64().map(|n| n as f32).filter(|n| n.is_finite()).ok_or_else(|| wrong_type(file, key, "a number", x))
        })
        .transpose()
}

fn opt_positive(v: &Value, key: &str, file: &str) -> Result<Option<f32>> {
    match opt_f32(v, key, file)? {
        Some(n) if n <= 0.0 => Err(wrong_type(file, key, "a positive number", &Value::from(n))),
        n => Ok(n),
    }
}

fn opt_bool(v: &Value, key: &str, file: &str) -> Result<Option<bool>> {
    get(v, key).map(|x| x.as_bool().ok_or_else(|| wrong_type(file, key, "true or false", x))).transpose()
}

/// A token id or a list of them (`eos_token_id`).
fn ids(v: &Value, key: &str, file: &str) -> Result<Vec<u32>> {
    let id = |x: &Value| {
        x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| wrong_type(file, key, "a token id", x))
    };
    match get(v, key) {
        None => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(id).collect(),
        Some(x) => Ok(vec![id(x)?]),
    }
}

/// Parses a `rope_scaling` / `rope_parameters` object.
fn rope_scaling(v: Option<&Value>, file: &str) -> Result<RopeScaling> {
    let Some(v) = v else {
        return Ok(RopeScaling::None);
    };
    if !v.is_object() {
        return Err(wrong_type(file, "rope_scaling", "an object", v));
    }
    let kind = match get(v, "rope_type").or_else(|| get(v, "type")) {
        None => "default",
        Some(k) => k.as_str().ok_or_else(|| wrong_type(file, "rope_scaling.rope_type", "a string", k))?,
    };
    let f = |k: &str| {
        opt_positive(v, k, &format!("{file}: rope_scaling"))?.ok_or_else(|| Error::Config {
            field: format!("{file}: rope_scaling.{k}"),
            reason: format!("missing for rope_type {kind}"),
        })
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: f("factor")? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: f("factor")?,
            low_freq_factor: f("low_freq_factor")?,
            high_freq_factor: f("high_freq_factor")?,
            original_max_position_embeddings: f("original_max_position_embeddings")?,
        }),
        other => Err(Error::Config {
            field: format!("{file}: rope_scaling.rope_type"),
            reason: format!("{other:?} is not supported (default, linear, llama3 are)"),
        }),
    }
}

impl LlamaConfig {
    /// From the text of a Hugging Face `config.json` (transformers 4 or 5 layout).
    pub fn from_hf_json(text: &str, file: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::loader(file, format!("invalid JSON: {e}")))?;
        let hidden = req_usize(&v, "hidden_size", file)?;
        let heads = req_usize(&v, "num_attention_heads", file)?;
        let rope_params = get(&v, "rope_parameters");
        let theta = match opt_positive(&v, "rope_theta", file)? {
            Some(t) => t,
            None => rope_params.map(|r| opt_positive(r, "rope_theta", file)).transpose()?.flatten().unwrap_or(10_000.0),
        };
        let scaling = rope_scaling(get(&v, "rope_scaling").or(rope_params), file)?;
        let cfg = LlamaConfig {
            hidden_size: hidden,
            intermediate_size: req_usize(&v, "intermediate_size", file)?,
            num_hidden_layers: req_usize(&v, "num_hidden_layers", file)?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize(&v, "num_key_value_heads", file)?.unwrap_or(heads),
            head_dim: opt_usize(&v, "head_dim", file)?.unwrap_or(hidden.checked_div(heads).unwrap_or(0)),
            vocab_size: req_usize(&v, "vocab_size", file)?,
            rms_norm_eps: opt_positive(&v, "rms_norm_eps", file)?.unwrap_or(1e-6),
            rope_theta: theta,
            rope_scaling: scaling,
            tie_word_embeddings: opt_bool(&v, "tie_word_embeddings", file)?.unwrap_or(false),
            max_position_embeddings: opt_usize(&v, "max_position_embeddings", file)?.unwrap_or(4096),
            bos_token_id: ids(&v, "bos_token_id", file)?.first().copied(),
            eos_token_ids: ids(&v, "eos_token_id", file)?,
            w8a8: quantization(get(&v, "quantization_config"), file)?,
        };
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// From the text of Meta's `params.json` (ModelArgs), deriving the FFN width as Meta does.
    pub fn from_meta_params(text: &str, file: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::loader(file, format!("invalid JSON: {e}")))?;
        let dim = req_usize(&v, "dim", file)?;
        let heads = req_usize(&v, "n_heads", file)?;
        let multiple_of = opt_usize(&v, "multiple_of", file)?.unwrap_or(256).max(1);
        let ffn_mult = opt_positive(&v, "ffn_dim_multiplier", file)?.map(f64::from);
        let scaled = opt_bool(&v, "use_scaled_rope", file)?.unwrap_or(false);
        let vocab = get(&v, "vocab_size").and_then(Value::as_i64).filter(|&x| x > 0).ok_or_else(|| Error::Config {
            field: format!("{file}: vocab_size"),
            reason: "missing or -1 (set it from the tokenizer)".into(),
        })?;
        let cfg = LlamaConfig {
            hidden_size: dim,
            intermediate_size: meta_ffn_dim(dim, multiple_of, ffn_mult).ok_or_else(|| Error::Config {
                field: format!("{file}: ffn_dim_multiplier"),
                reason: "the FFN width it gives overflows".into(),
            })?,
            num_hidden_layers: req_usize(&v, "n_layers", file)?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize(&v, "n_kv_heads", file)?.unwrap_or(heads),
            head_dim: dim.checked_div(heads).unwrap_or(0),
            vocab_size: vocab as usize,
            rms_norm_eps: opt_positive(&v, "norm_eps", file)?.unwrap_or(1e-5),
            rope_theta: opt_positive(&v, "rope_theta", file)?.unwrap_or(10_000.0),
            // Meta's apply_scaling: factor 8, low 1, high 4, old context 8192.
            rope_scaling: if scaled {
                RopeScaling::Llama3 {
                    factor: opt_positive(&v, "rope_scaling_factor", file)?.unwrap_or(8.0),
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 8192.0,
                }
            } else {
                RopeScaling::None
            },
            tie_word_embeddings: false,
            max_position_embeddings: opt_usize(&v, "max_seq_len", file)?.unwrap_or(8192),
            bos_token_id: None,
            eos_token_ids: vec![],
            w8a8: None,
        };
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks that the shape is consistent; `file` names the source in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::Config { field: format!("{file}: {field}"), reason });
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 || self.num_hidden_layers == 0 {
            return bad("num_attention_heads/num_key_value_heads/num_hidden_layers", "must be positive".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            );
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(
                "head_dim",
                format!("{} must be even and positive (hidden_size / heads unless set)", self.head_dim),
            );
        }
        if self.head_dim > crate::ops::attention::MAX_HEAD_DIM {
            return bad("head_dim", format!("{} exceeds {}", self.head_dim, crate::ops::attention::MAX_HEAD_DIM));
        }
        for (name, n) in [("hidden_size", self.hidden_size), ("intermediate_size", self.intermediate_size)] {
            if n == 0 || n % 2 != 0 {
                return bad(name, format!("{n} must be even and positive"));
            }
        }
        if self.vocab_size == 0 {
            return bad("vocab_size", "must be positive".into());
        }
        // far beyond any real model, and what the kernels' u32 indices and the size arithmetic hold
        const MAX: usize = 1 << 24;
        for (name, n) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if n > MAX {
                return bad(name, format!("{n} exceeds {MAX}"));
            }
        }
        Ok(())
    }

    /// Parameters in the weights (embedding counted once when tied).
    pub fn n_params(&self) -> u64 {
        let (c, i, v) = (self.hidden_size as u64, self.intermediate_size as u64, self.vocab_size as u64);
        let qd = (self.num_attention_heads * self.head_dim) as u64;
        let kvd = (self.num_key_value_heads * self.head_dim) as u64;
        let layer = c * qd * 2 + c * kvd * 2 + 3 * c * i + 2 * c;
        let head = if self.tie_word_embeddings { 0 } else { v * c };
        v * c + head + c + layer * self.num_hidden_layers as u64
    }
}

/// Meta's FFN width: `multiple_of * ceil(mult * (2/3 * 4 * dim) / multiple_of)` (None when it
/// does not fit a usize).
pub fn meta_ffn_dim(dim: usize, multiple_of: usize, ffn_dim_multiplier: Option<f64>) -> Option<usize> {
    let mut hidden = dim.checked_mul(8)? / 3;
    if let Some(m) = ffn_dim_multiplier {
        let h = m * hidden as f64;
        if !(h.is_finite() && h >= 0.0 && h < usize::MAX as f64) {
            return None;
        }
        hidden = h as usize;
    }
    multiple_of.checked_mul(hidden.div_ceil(multiple_of.max(1)))
}

/// Known model shapes, by name, as config.json text (for tests, docs and `inferno info`).
pub fn preset(name: &str) -> Option<LlamaConfig> {
    let llama3 = |factor: f32| RopeScaling::Llama3 {
        factor,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    #[allow(clippy::type_complexity)]
    let (c, i, l, h, kv, v, theta, scaling, tie, ctx, bos, eos): (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        f32,
        RopeScaling,
        bool,
        usize,
        u32,
        Vec<u32>,
    ) = match name {
        "llama-2-7b" => (4096, 11008, 32, 32, 32, 32000, 1e4, RopeScaling::None, false, 4096, 1, vec![2]),
        "llama-2-13b" => (5120, 13824, 40, 40, 40, 32000, 1e4, RopeScaling::None, false, 4096, 1, vec![2]),
        "llama-2-70b" => (8192, 28672, 80, 64, 8, 32000, 1e4, RopeScaling::None, false, 4096, 1, vec![2]),
        "llama-3-8b" => (4096, 14336, 32, 32, 8, 128256, 5e5, RopeScaling::None, false, 8192, 128000, vec![128001]),
        "llama-3-70b" => (8192, 28672, 80, 64, 8, 128256, 5e5, RopeScaling::None, false, 8192, 128000, vec![128001]),
        "llama-3.1-8b" => {
            (4096, 14336, 32, 32, 8, 128256, 5e5, llama3(8.0), false, 131072, 128000, vec![128001, 128008, 128009])
        }
        "llama-3.1-70b" | "deepseek-r1-distill-llama-70b" => {
            (8192, 28672, 80, 64, 8, 128256, 5e5, llama3(8.0), false, 131072, 128000, vec![128001, 128008, 128009])
        }
        "llama-3.2-1b" => {
            (2048, 8192, 16, 32, 8, 128256, 5e5, llama3(32.0), true, 131072, 128000, vec![128001, 128008, 128009])
        }
        "llama-3.2-3b" => {
            (3072, 8192, 28, 24, 8, 128256, 5e5, llama3(32.0), true, 131072, 128000, vec![128001, 128008, 128009])
        }
        "tinyllama-1.1b" => (2048, 5632, 22, 32, 4, 32000, 1e4, RopeScaling::None, false, 2048, 1, vec![2]),
        "smollm2-135m" => (576, 1536, 30, 9, 3, 49152, 1e5, RopeScaling::None, true, 8192, 1, vec![2]),
        _ => return None,
    };
    Some(LlamaConfig {
        hidden_size: c,
        intermediate_size: i,
        num_hidden_layers: l,
        num_attention_heads: h,
        num_key_value_heads: kv,
        head_dim: c / h,
        vocab_size: v,
        rms_norm_eps: 1e-5,
        rope_theta: theta,
        rope_scaling: scaling,
        tie_word_embeddings: tie,
        max_position_embeddings: ctx,
        bos_token_id: Some(bos),
        eos_token_ids: eos,
        w8a8: None,
    })
}

/// Names accepted by [`preset`].
pub const PRESETS: &[&str] = &[
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "deepseek-r1-distill-llama-70b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "tinyllama-1.1b",
    "smollm2-135m",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_ffn_widths() {
        assert_eq!(meta_ffn_dim(4096, 256, None), Some(11008)); // Llama 2 7B
        assert_eq!(meta_ffn_dim(4096, 1024, Some(1.3)), Some(14336)); // Llama 3 8B
        assert_eq!(meta_ffn_dim(8192, 4096, Some(1.3)), Some(28672)); // Llama 3 70B
        assert_eq!(meta_ffn_dim(8192, 4096, Some(1.3)), Some(preset("llama-2-70b").unwrap().intermediate_size));
    }

    #[test]
    fn meta_params_json() {
        let t = r#"{"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                    "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0,
                    "use_scaled_rope": true}"#;
        let c = LlamaConfig::from_meta_params(t, "params.json").unwrap();
        let p = preset("llama-3.1-8b").unwrap();
        assert_eq!((c.intermediate_size, c.num_key_value_heads, c.head_dim), (14336, 8, 128));
        assert_eq!(c.rope_scaling, p.rope_scaling);
    }

    #[test]
    fn hf_json_both_rope_layouts() {
        let t4 = r#"{"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "tie_word_embeddings": true,
            "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}"#;
        let c = LlamaConfig::from_hf_json(t4, "config.json").unwrap();
        let p = preset("llama-3.2-1b").unwrap();
        assert_eq!(c, p);
        let t5 = t4
            .replace(r#""rope_theta": 500000.0,"#, "")
            .replace(r#""rope_scaling": {"#, r#""rope_parameters": {"rope_theta": 500000.0, "#);
        assert_eq!(LlamaConfig::from_hf_json(&t5, "config.json").unwrap(), p);
    }

    #[test]
    fn inconsistent_configs_are_errors() {
        let base = r#"{"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 512}"#;
        let e = LlamaConfig::from_hf_json(base, "config.json").unwrap_err().to_string();
        assert!(e.contains("num_key_value_heads"), "{e}");
        let e = LlamaConfig::from_hf_json(r#"{"hidden_size": 64}"#, "config.json").unwrap_err().to_string();
        assert!(e.contains("intermediate_size") || e.contains("num_attention_heads"), "{e}");
        let e = LlamaConfig::from_hf_json("{", "x/config.json").unwrap_err().to_string();
        assert!(e.contains("x/config.json"), "{e}");
        for name in PRESETS {
            preset(name).unwrap().validate(name).unwrap();
        }
    }
}
