//! A checkpoint on disk (or in memory): config + a directory of tensors by Hugging Face name.
//! SafeTensors (one file or sharded with `model.safetensors.index.json`) and GGUF; files are
//! memory-mapped natively and read tensor by tensor, so host memory stays far below model size.

use super::config::LlamaConfig;
use super::gguf::{self, GgmlType, Gguf};
use super::synthetic::Generator;
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::ops::rope::RopeScaling;
use std::borrow::Cow;
use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::path::PathBuf;

/// The bytes of one model file.
pub enum FileData {
    /// A read-only memory map (native).
    #[cfg(not(target_arch = "wasm32"))]
    Mmap(memmap2::Mmap),
    /// Bytes owned in memory (browser, tests).
    Owned(Vec<u8>),
}

impl std::ops::Deref for FileData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            FileData::Mmap(m) => m,
            FileData::Owned(v) => v,
        }
    }
}

impl FileData {
    /// Memory-maps a file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn map(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::Io { file: path.display().to_string(), source: e })?;
        // SAFETY: the map is read-only; a file changed underneath us gives wrong weights, not UB in
        // safe code we rely on (we only copy bytes out of it).
        let m =
            unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::Io { file: path.display().to_string(), source: e })?;
        Ok(FileData::Mmap(m))
    }

    /// Tells the OS the pages of `range` are no longer needed (keeps RSS low while streaming).
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let FileData::Mmap(m) = self {
            let page = 4096;
            let start = range.start.div_ceil(page) * page;
            let end = range.end / page * page;
            if end > start {
                // SAFETY: read-only file-backed map: dropped pages are re-read from the file if touched.
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        let _ = range;
    }
}

/// Where a tensor's bytes are and how they are encoded.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// Index into the checkpoint's files.
    pub file: usize,
    /// Stored dtype name (safetensors: "BF16", GGUF: "Q4_1" ...).
    pub dtype: String,
    /// Shape, PyTorch order.
    pub shape: Vec<usize>,
    /// Byte range in the file.
    pub range: std::ops::Range<usize>,
    ggml: Option<GgmlType>,
}

/// A tensor ready to upload: native bytes, or a GGUF block format expanded at load.
pub struct RawTensor<'a> {
    /// Dtype of `bytes`.
    pub dtype: WeightDtype,
    /// Shape, PyTorch order.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Cow<'a, [u8]>,
    /// The file's block format when `bytes` were dequantized from it.
    pub expanded_from: Option<String>,
}

/// File format of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face SafeTensors.
    SafeTensors,
    /// llama.cpp GGUF.
    Gguf,
}

/// An opened checkpoint.
pub struct Checkpoint {
    /// The model shape.
    pub config: LlamaConfig,
    /// File format.
    pub format: Format,
    /// File names, for errors.
    pub file_names: Vec<String>,
    files: Vec<FileData>,
    /// Tensors by Hugging Face name.
    pub tensors: HashMap<String, TensorEntry>,
    /// The GGUF header (metadata, tokenizer) when the format is GGUF.
    pub gguf: Option<Gguf>,
    /// Directory holding the checkpoint (tokenizer.json etc. live there).
    pub dir: Option<PathBuf>,
    /// Makes the tensors of a checkpoint without files ([`Checkpoint::generated`]).
    generator: Option<Generator>,
}

#[cfg(not(target_arch = "wasm32"))]
fn io(file: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io { file: file.display().to_string(), source: e }
}

/// Reads a safetensors header: tensors with absolute byte ranges.
fn safetensors_dir(bytes: &[u8], file_idx: usize, file: &str, out: &mut HashMap<String, TensorEntry>) -> Result<()> {
    let (n, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::loader(file, format!("invalid safetensors: {e}")))?;
    let base = 8 + n;
    for (name, info) in meta.tensors() {
        let (s, e) = info.data_offsets;
        out.insert(
            name.clone(),
            TensorEntry {
                file: file_idx,
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                range: base + s..base + e,
                ggml: None,
            },
        );
    }
    Ok(())
}

/// Maps a GGUF tensor name to its Hugging Face name.
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// A file named by another file (a shard in an index) must be a plain name inside the model
/// directory: no separators, no `..`, not absolute; otherwise why not.
#[cfg(not(target_arch = "wasm32"))]
fn plain_file_name(name: &str) -> std::result::Result<&str, &'static str> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes()[1] == b':'); // C:foo on Windows
    if plain {
        Ok(name)
    } else {
        Err("is not a plain file name inside the model directory")
    }
}

/// Head dimension from GGUF metadata: `attention.key_length`, else `rope.dimension_count`, else
/// hidden / heads. `value_length` must equal it, and RoPE must turn the whole head (Llama has no
/// partial rotary): anything else would be computed wrongly, so it is an error naming the key.
fn head_dim_of(g: &Gguf, file: &str, hidden: usize, heads: usize) -> Result<usize> {
    let u = |k: &str| g.get(&format!("llama.{k}")).and_then(|v| v.as_u64()).map(|x| x as usize);
    let d = u("attention.key_length")
        .or_else(|| u("rope.dimension_count"))
        .unwrap_or(hidden.checked_div(heads).unwrap_or(0));
    for key in ["attention.value_length", "rope.dimension_count"] {
        if let Some(v) = u(key).filter(|&v| v != d) {
            return Err(Error::Config {
                field: format!("{file}: llama.{key}"),
                reason: format!("{v} differs from the head dimension {d} (not supported for Llama)"),
            });
        }
    }
    Ok(d)
}

/// RoPE scaling of a GGUF: `llama.rope.scaling.type` (none or linear; others are an error naming
/// the field) and the tensor `rope_freqs.weight` (llama.cpp's Llama 3.x scaling: one frequency
/// divisor per rotary pair). With both, llama.cpp applies both (divides every frequency by the
/// linear factor and each by its pair's divisor): so does this.
fn gguf_rope_scaling(g: &Gguf, bytes: &[u8], file: &str, head_dim: usize) -> Result<RopeScaling> {
    let field = |k: &str| format!("{file}: {k}");
    let linear = match g.get("llama.rope.scaling.type").map(|v| v.as_str()) {
        None | Some(Some("none")) => 1.0,
        Some(Some("linear")) => {
            let factor = g.get("llama.rope.scaling.factor").and_then(|v| v.as_f64()).unwrap_or(1.0) as f32;
            if !(factor.is_finite() && factor > 0.0) {
                return Err(Error::Config { field: field("llama.rope.scaling.factor"), reason: format!("{factor}") });
            }
            factor
        }
        Some(other) => {
            return Err(Error::Config {
                field: field("llama.rope.scaling.type"),
                reason: format!("{other:?} is not supported (none and linear are; Llama 3.x uses rope_freqs.weight)"),
            })
        }
    };
    let Some(t) = g.tensor("rope_freqs.weight") else {
        return Ok(if linear == 1.0 { RopeScaling::None } else { RopeScaling::Linear { factor: linear } });
    };
    let what = field("tensor rope_freqs.weight");
    if t.ty != GgmlType::F32 || t.shape != [head_dim / 2] {
        return Err(Error::shape(
            what,
            format!("F32 [{}] (head_dim / 2)", head_dim / 2),
            format!("{:?} {:?}", t.ty, t.shape),
        ));
    }
    let factors: Vec<f32> =
        bytes[t.range.clone()].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * linear).collect();
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(Error::Config { field: what, reason: format!("frequency factor {bad} is not a positive number") });
    }
    Ok(RopeScaling::Factors(factors))
}

/// The Llama config from GGUF metadata (`llama.*` keys) and, for RoPE scaling, the file's
/// `rope_freqs.weight` tensor (read from `bytes`, the whole file).
pub fn gguf_config(g: &Gguf, bytes: &[u8], file: &str) -> Result<LlamaConfig> {
    let arch = g.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("llama");
    if arch != "llama" {
        return Err(Error::Config {
            field: format!("{file}: general.architecture"),
            reason: format!("{arch:?} is not a Llama model"),
        });
    }
    let req = |k: &str| {
        g.get(&format!("llama.{k}"))
            .and_then(|v| v.as_u64())
            .map(|x| x as usize)
            .ok_or_else(|| Error::Config { field: format!("{file}: llama.{k}"), reason: "missing".into() })
    };
    let f = |k: &str| g.get(k).and_then(|v| v.as_f64());
    let hidden = req("embedding_length")?;
    let heads = req("attention.head_count")?;
    let vocab = match req("vocab_size") {
        Ok(v) => v,
        Err(_) => {
            g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len()).ok_or_else(|| Error::Config {
                field: format!("{file}: llama.vocab_size"),
                reason: "missing (and no tokenizer.ggml.tokens)".into(),
            })?
        }
    };
    let scaling = gguf_rope_scaling(g, bytes, file, head_dim_of(g, file, hidden, heads)?)?;
    let cfg = LlamaConfig {
        hidden_size: hidden,
        intermediate_size: req("feed_forward_length")?,
        num_hidden_layers: req("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: req("attention.head_count_kv").unwrap_or(heads),
        head_dim: head_dim_of(g, file, hidden, heads)?,
        vocab_size: vocab,
        rms_norm_eps: f("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f32,
        rope_theta: f("llama.rope.freq_base").unwrap_or(10_000.0) as f32,
        rope_scaling: scaling,
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        max_position_embeddings: req("context_length").unwrap_or(4096),
        bos_token_id: g.get("tokenizer.ggml.bos_token_id").and_then(|v| v.as_u64()).map(|x| x as u32),
        eos_token_ids: g
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.as_u64())
            .map(|x| vec![x as u32])
            .unwrap_or_default(),
        w8a8: None,
    };
    cfg.validate(file)?;
    Ok(cfg)
}

impl Checkpoint {
    /// Opens a model directory (config.json + safetensors), a `.safetensors` file with its
    /// config.json beside it, or a `.gguf` file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::loader(path.display(), "no such file or directory"));
        }
        if path.extension().is_some_and(|e| e == "gguf") {
            let name = path.display().to_string();
            let mut c = Self::from_gguf(FileData::map(path)?, &name)?;
            c.dir = path.parent().map(Path::to_path_buf);
            return Ok(c);
        }
        let (dir, single) = if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(path.to_path_buf()))
        };
        let cfg_path = dir.join("config.json");
        let config = if cfg_path.exists() {
            LlamaConfig::from_hf_json(
                &std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?,
                &cfg_path.display().to_string(),
            )?
        } else if dir.join("params.json").exists() {
            let p = dir.join("params.json");
            LlamaConfig::from_meta_params(&std::fs::read_to_string(&p).map_err(io(&p))?, &p.display().to_string())?
        } else {
            return Err(Error::loader(dir.display(), "no config.json (or params.json) beside the weights"));
        };
        let shard_files: Vec<PathBuf> = if let Some(f) = single {
            vec![f]
        } else if dir.join("model.safetensors.index.json").exists() {
            let idx_path = dir.join("model.safetensors.index.json");
            let text = std::fs::read_to_string(&idx_path).map_err(io(&idx_path))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::loader(idx_path.display(), format!("invalid JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::loader(idx_path.display(), "no weight_map"))?;
            let mut files = Vec::new();
            for (tensor, f) in map {
                let name = f.as_str().ok_or_else(|| {
                    Error::loader(idx_path.display(), format!("weight_map.{tensor}: expected a file name, got {f}"))
                })?;
                files.push(plain_file_name(name).map_err(|why| {
                    Error::loader(idx_path.display(), format!("weight_map.{tensor}: {name:?} {why}"))
                })?);
            }
            files.sort();
            files.dedup();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else if dir.join("model.safetensors").exists() {
            vec![dir.join("model.safetensors")]
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(io(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(Error::loader(dir.display(), "no .safetensors files (or model.safetensors.index.json)"));
            }
            found
        };
        let mut files = Vec::new();
        for f in &shard_files {
            if !f.exists() {
                return Err(Error::loader(f.display(), "shard listed in model.safetensors.index.json is missing"));
            }
            files.push((f.display().to_string(), FileData::map(f)?));
        }
        let mut c = Self::from_safetensors(config, files)?;
        c.dir = Some(dir);
        Ok(c)
    }

    /// A SafeTensors checkpoint from already-read files `(name, bytes)`.
    pub fn from_safetensors(config: LlamaConfig, files: Vec<(String, FileData)>) -> Result<Self> {
        let mut tensors = HashMap::new();
        let mut names = Vec::new();
        let mut datas = Vec::new();
        for (i, (name, data)) in files.into_iter().enumerate() {
            safetensors_dir(&data, i, &name, &mut tensors)?;
            names.push(name);
            datas.push(data);
        }
        Ok(Checkpoint {
            config,
            format: Format::SafeTensors,
            file_names: names,
            files: datas,
            tensors,
            gguf: None,
            dir: None,
            generator: None,
        })
    }

    /// A GGUF checkpoint from its bytes.
    pub fn from_gguf(data: FileData, name: &str) -> Result<Self> {
        let g = Gguf::parse(&data, name)?;
        let config = gguf_config(&g, &data, name)?;
        let mut tensors = HashMap::new();
        for t in &g.tensors {
            if let Some(hf) = gguf_to_hf_name(&t.name) {
                tensors.insert(
                    hf,
                    TensorEntry {
                        file: 0,
                        dtype: format!("{:?}", t.ty),
                        shape: t.shape.clone(),
                        range: t.range.clone(),
                        ggml: Some(t.ty),
                    },
                );
            }
        }
        Ok(Checkpoint {
            config,
            format: Format::Gguf,
            file_names: vec![name.to_string()],
            files: vec![data],
            tensors,
            gguf: Some(g),
            dir: None,
            generator: None,
        })
    }

    /// A checkpoint of `config`'s shape with seeded random weights in the format `mix` (one of
    /// [`super::synthetic::MIXES`]: a GGUF type for every matrix, or a llama.cpp-like `*_m` mix),
    /// generated as the loader reads them: no file, no host copy of the model. Its tensors
    /// are GGUF-typed (norms f32 ones); it has no tokenizer.
    pub fn generated(config: LlamaConfig, mix: &str, seed: u64) -> Result<Self> {
        config.validate(mix)?;
        let g = Generator::new(mix, seed)?;
        let (c, i, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
        let qd = config.num_attention_heads * config.head_dim;
        let kvd = config.num_key_value_heads * config.head_dim;
        let big = mix.ends_with("_m");
        // (name, shape, the mix's larger type)
        let mut list: Vec<(String, Vec<usize>, bool)> =
            vec![("model.embed_tokens.weight".into(), vec![v, c], big), ("model.norm.weight".into(), vec![c], false)];
        if !config.tie_word_embeddings {
            list.push(("lm_head.weight".into(), vec![v, c], big));
        }
        for l in 0..config.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}.weight");
            list.extend([
                (p("input_layernorm"), vec![c], false),
                (p("self_attn.q_proj"), vec![qd, c], false),
                (p("self_attn.k_proj"), vec![kvd, c], false),
                (p("self_attn.v_proj"), vec![kvd, c], big),
                (p("self_attn.o_proj"), vec![c, qd], false),
                (p("post_attention_layernorm"), vec![c], false),
                (p("mlp.gate_proj"), vec![i, c], false),
                (p("mlp.up_proj"), vec![i, c], false),
                (p("mlp.down_proj"), vec![c, i], big),
            ]);
        }
        let mut tensors = HashMap::new();
        for (name, shape, big) in list {
            let ty = if shape.len() == 1 { GgmlType::F32 } else { g.matrix_type(big, shape[1]) };
            let (be, bb) = ty.block();
            let bytes = shape.iter().product::<usize>() / be * bb;
            let entry = TensorEntry { file: 0, dtype: ty.name().to_string(), shape, range: 0..bytes, ggml: Some(ty) };
            tensors.insert(name, entry);
        }
        Ok(Checkpoint {
            config,
            format: Format::Gguf,
            file_names: vec![format!("generated {mix} weights")],
            files: vec![],
            tensors,
            gguf: None,
            dir: None,
            generator: Some(g),
        })
    }

    /// Whether the weights are generated ([`Checkpoint::generated`]), not read from files.
    pub fn is_generated(&self) -> bool {
        self.generator.is_some()
    }

    /// Total bytes of all tensors in the files (what the weights take at their stored precision).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.values().map(|t| (t.range.end - t.range.start) as u64).sum()
    }

    /// The bytes of tensor `name` checked against `shape`, in a dtype the GPU reads natively
    /// (GGUF Q8_0/Q4_0/Q4_1 matrices stay in their blocks; a block-format vector is dequantized
    /// to f16 here).
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<RawTensor<'_>> {
        let e = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::loader(self.file_names.join(", "), format!("missing tensor {name}")))?;
        let file = &self.file_names[e.file];
        if e.shape != shape {
            return Err(Error::shape(format!("{file}: tensor {name}"), format!("{shape:?}"), format!("{:?}", e.shape)));
        }
        let bytes: Cow<'_, [u8]> = match (&self.generator, e.ggml) {
            (Some(g), Some(ty)) => Cow::Owned(g.bytes(name, ty, e.shape.iter().product(), e.shape.len() == 1)),
            _ => Cow::Borrowed(&self.files[e.file][e.range.clone()]),
        };
        // the dtype the GPU reads these bytes as, or None: a block format expanded to f16 here
        let native = match e.ggml {
            None | Some(GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16) => {
                Some(WeightDtype::from_name(&e.dtype.to_uppercase(), &format!("{file}: tensor {name}"))?)
            }
            // matrices stay in their blocks on the GPU (dequantized inside the matmul)
            Some(GgmlType::Q8_0) if shape.len() == 2 => Some(WeightDtype::Q8_0),
            Some(GgmlType::Q4_0) if shape.len() == 2 => Some(WeightDtype::Q4_0),
            Some(GgmlType::Q4_1) if shape.len() == 2 => Some(WeightDtype::Q4_1),
            Some(GgmlType::Q4K) if shape.len() == 2 && shape[1].is_multiple_of(256) => Some(WeightDtype::Q4K),
            Some(GgmlType::Q6K) if shape.len() == 2 && shape[1].is_multiple_of(256) => Some(WeightDtype::Q6K),
            Some(q) if shape.len() == 2 && gguf::STORED_TYPES.contains(&q) => Some(WeightDtype::Stored(q)),
            Some(_) => None,
        };
        Ok(match (native, e.ggml) {
            (None, Some(q)) => RawTensor {
                dtype: WeightDtype::F16,
                shape: e.shape.clone(),
                bytes: Cow::Owned(WeightDtype::F16.encode(&gguf::dequantize(q, &bytes))),
                expanded_from: Some(e.dtype.clone()),
            },
            // (a tensor without a GGUF type always has a native dtype)
            (dtype, _) => RawTensor {
                dtype: dtype.unwrap_or(WeightDtype::F32),
                shape: e.shape.clone(),
                bytes,
                expanded_from: None,
            },
        })
    }

    /// Checks every tensor's values (llama.cpp's `--check-tensors`): floats (F32, F16, BF16)
    /// must be finite, and so must the scale fields of every GGUF block. One pass over the file's
    /// bytes; the error names the file, the tensor and the element or block.
    pub fn check_tensors(&self) -> Result<()> {
        if self.generator.is_some() {
            return Ok(()); // generated scales are finite by construction
        }
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        for name in names {
            let e = &self.tensors[name];
            let bytes = &self.files[e.file][e.range.clone()];
            let bad = |what: String| {
                Err(Error::loader(&self.file_names[e.file], format!("tensor {name}: {what} is NaN or infinite")))
            };
            let float = |n: usize, f: &dyn Fn(&[u8]) -> bool| bytes.chunks_exact(n).position(|b| !f(b));
            let found = match (e.ggml, e.dtype.to_uppercase().as_str()) {
                (None | Some(GgmlType::F32), "F32") => {
                    float(4, &|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
                }
                (None | Some(GgmlType::F16), "F16") => {
                    float(2, &|b| half::f16::from_le_bytes([b[0], b[1]]).is_finite())
                }
                (None | Some(GgmlType::Bf16), "BF16") => {
                    float(2, &|b| half::bf16::from_le_bytes([b[0], b[1]]).is_finite())
                }
                (Some(q), _) => match q.first_non_finite_block(bytes) {
                    Some(b) => return bad(format!("the scale of block {b}")),
                    None => None,
                },
                _ => None, // integers (W8A8 int8 weights) are always finite
            };
            if let Some(i) = found {
                return bad(format!("element {i}"));
            }
        }
        Ok(())
    }

    /// Releases the host pages of tensor `name` after its upload.
    pub fn release(&self, name: &str) {
        if let (Some(e), None) = (self.tensors.get(name), &self.generator) {
            self.files[e.file].release(e.range.clone());
        }
    }
}
