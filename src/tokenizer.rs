//! Tokenizers: Hugging Face `tokenizer.json` through the `tokenizers` crate, or the vocabulary
//! embedded in a GGUF file (GPT-2 byte-level BPE or SentencePiece BPE) rebuilt as transformers
//! rebuilds it.

use crate::error::{Error, Result};
use crate::model::gguf::{Gguf, Value};
use tokenizers::decoders::{
    byte_fallback::ByteFallback, fuse::Fuse, sequence::Sequence as DecoderSequence, strip::Strip, DecoderWrapper,
};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{prepend::Prepend, replace::Replace, NormalizerWrapper, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence, PreTokenizerWrapper};
use tokenizers::{AddedToken, ModelWrapper, SplitDelimiterBehavior};

/// A text tokenizer with the model's special ids.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Beginning-of-sequence id, when the model has one.
    pub bos_id: Option<u32>,
    /// Whether a BOS token is prepended to prompts.
    pub add_bos: bool,
    /// End-of-sequence ids (generation stops on any).
    pub eos_ids: Vec<u32>,
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Loader { file: what.to_string(), reason: format!("tokenizer: {e}") }
}

impl Tokenizer {
    /// From the bytes of a `tokenizer.json`; `file` names it in errors.
    pub fn from_json(bytes: &[u8], file: &str) -> Result<Self> {
        // the tokenizers crate panics on some malformed files (e.g. a decoder object of the wrong
        // shape) instead of returning an error: such a file is an error here too
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes))
            .map_err(|_| tok_err(file, "malformed tokenizer.json (the tokenizers crate could not read it)"))?;
        let inner = parsed.map_err(|e| tok_err(file, e))?;
        Ok(Tokenizer { inner, bos_id: None, add_bos: false, eos_ids: vec![] })
    }

    /// From the tokenizer embedded in GGUF metadata (`tokenizer.ggml.*`): GPT-2 byte-level BPE
    /// (`gpt2`, with the pre-tokenizer split its `pre` names) or SentencePiece BPE (`llama`:
    /// Llama 2, TinyLlama, Mistral), rebuilt as transformers rebuilds them.
    pub fn from_gguf(g: &Gguf, file: &str) -> Result<Self> {
        let kind = g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
        let strings = |key: &str| -> Result<Vec<String>> {
            g.get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| tok_err(file, format!("{key} missing")))?
                .iter()
                .map(|v| v.as_str().map(String::from).ok_or_else(|| tok_err(file, format!("{key}: not a string"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let types: Vec<u64> = g
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let id = |k: &str| g.get(k).and_then(Value::as_u64).map(|x| x as u32);
        let flag = |k: &str| g.get(k).and_then(|v| if let Value::Bool(b) = v { Some(*b) } else { None });
        let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
        let llama3_pre = kind == "gpt2" && LLAMA3_PRE.contains(&pre);
        let mut inner = match kind {
            "gpt2" => {
                let merges = split_merges(strings("tokenizer.ggml.merges")?, file)?;
                let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| tok_err(file, e))?;
                let mut t = tokenizers::Tokenizer::new(ModelWrapper::BPE(bpe));
                t.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre, file)?));
                t.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::new(false, true, true))));
                t
            }
            "llama" => {
                let scores: Vec<f32> = g
                    .get("tokenizer.ggml.scores")
                    .and_then(Value::as_array)
                    .ok_or_else(|| tok_err(file, "tokenizer.ggml.scores missing"))?
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(0.0) as f32)
                    .collect();
                let merges = match g.get("tokenizer.ggml.merges") {
                    Some(_) => split_merges(strings("tokenizer.ggml.merges")?, file)?,
                    None => merges_from_scores(&tokens, &scores),
                };
                let unk = id("tokenizer.ggml.unknown_token_id").and_then(|i| tokens.get(i as usize)).cloned();
                let mut b = BPE::builder().vocab_and_merges(vocab, merges).fuse_unk(true).byte_fallback(true);
                if let Some(u) = unk {
                    b = b.unk_token(u);
                }
                let bpe = b.build().map_err(|e| tok_err(file, e))?;
                let mut t = tokenizers::Tokenizer::new(ModelWrapper::BPE(bpe));
                // SentencePiece's own normalization (as Llama 2's tokenizer.json): spaces become
                // "▁" and a "▁" is always prepended, also before a leading space, as sentencepiece
                // and llama.cpp do (transformers' Metaspace skips it there).
                let prefix = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
                let mut norm = vec![];
                if prefix {
                    norm.push(NormalizerWrapper::Prepend(Prepend::new("▁".into())));
                }
                norm.push(NormalizerWrapper::Replace(Replace::new(" ", "▁").map_err(|e| tok_err(file, e))?));
                t.with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(norm))));
                let mut dec = vec![
                    DecoderWrapper::Replace(Replace::new("▁", " ").map_err(|e| tok_err(file, e))?),
                    DecoderWrapper::ByteFallback(ByteFallback::default()),
                    DecoderWrapper::Fuse(Fuse::default()),
                ];
                if prefix {
                    dec.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
                }
                t.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(dec))));
                t
            }
            other => {
                return Err(Error::UnsupportedDtype {
                    what: format!("{file}: tokenizer.ggml.model"),
                    dtype: format!("{other:?} (gpt2 and llama vocabularies are supported; use a tokenizer.json)"),
                })
            }
        };
        // control (3) tokens are matched whole and are special; user-defined (4) are matched whole
        let added = |ty: u64, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, &t)| t == ty)
                .map(|(s, _)| AddedToken::from(s.clone(), special))
                .collect()
        };
        inner.add_special_tokens(&added(3, true));
        inner.add_tokens(&added(4, false));
        Ok(Tokenizer {
            inner,
            bos_id: id("tokenizer.ggml.bos_token_id"),
            // llama.cpp adds BOS to a SentencePiece and a Llama-3 BPE vocabulary unless the file
            // says otherwise
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(kind == "llama" || llama3_pre),
            eos_ids: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
        })
    }

    /// Token ids of `text`; special-token text (e.g. `<|im_start|>`) maps to its id.
    /// Prepends BOS when the model asks for it and `add_bos` is set.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| tok_err("encode", e))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_bos && self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids` (special tokens skipped when `skip_special`). Incomplete UTF-8 at the end
    /// comes out as U+FFFD; [`crate::generate::TextStream`] holds such tails back.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| tok_err("decode", e))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Writes the tokenizer as a Hugging Face `tokenizer.json`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.inner.save(path, false).map_err(|e| tok_err(&path.display().to_string(), e))
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// "a b" merge strings as pairs.
fn split_merges(merges: Vec<String>, file: &str) -> Result<Vec<(String, String)>> {
    merges
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(tok_err(file, format!("merge {m:?} has no space"))),
        })
        .collect()
}

/// SentencePiece BPE merges recovered from the vocabulary as transformers does: every split of a
/// token into two tokens, ranked by the merged token's score (best first), then by the pieces'
/// lengths; ties keep vocabulary order.
fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let index: std::collections::HashMap<&str, usize> =
        tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut merges: Vec<(usize, usize, f32, usize, usize)> = Vec::new();
    for (merged, score) in tokens.iter().zip(scores) {
        let mut local = vec![];
        for (cut, _) in merged.char_indices().skip(1) {
            let (l, r) = merged.split_at(cut);
            if let (Some(&li), Some(&ri)) = (index.get(l), index.get(r)) {
                local.push((li, ri, *score, l.chars().count(), r.chars().count()));
            }
        }
        local.sort_by_key(|m| (m.0, m.1));
        merges.extend(local);
    }
    // descending by (score, left length, right length); a stable sort keeps ties in order
    merges.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4)));
    merges.into_iter().map(|(l, r, ..)| (tokens[l].clone(), tokens[r].clone())).collect()
}

/// The pre-tokenizer of a GPT-2-style vocabulary, by llama.cpp's `tokenizer.ggml.pre` name.
/// `tokenizer.ggml.pre` names of Llama 3's regex split (llama.cpp's LLAMA3 pre-tokenizer).
const LLAMA3_PRE: &[&str] = &["llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx"];

fn byte_level_pre_tokenizer(pre: &str, file: &str) -> Result<PreTokenizerWrapper> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let byte_level = |regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, regex));
    Ok(match pre {
        p if LLAMA3_PRE.contains(&p) => {
            let split = Split::new(SplitPattern::Regex(LLAMA3.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| tok_err("tokenizer.ggml.pre", e))?;
            PreTokenizerWrapper::Sequence(Sequence::new(vec![PreTokenizerWrapper::Split(split), byte_level(false)]))
        }
        // digits one by one, then GPT-2's split (SmolLM, StarCoder)
        "smollm" | "starcoder" | "refact" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            byte_level(true),
        ])),
        "default" | "gpt2" | "gpt-2" => byte_level(true),
        other => {
            return Err(Error::UnsupportedDtype {
                what: format!("{file}: tokenizer.ggml.pre"),
                dtype: format!(
                    "{other:?} (supported: llama-bpe/llama3, smollm/starcoder/refact, gpt2/default; \
                     use the model's tokenizer.json beside the .gguf)"
                ),
            })
        }
    })
}
