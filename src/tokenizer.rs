//! Tokenizers: Hugging Face `tokenizer.json` through the `tokenizers` crate, or the vocabulary
//! embedded in a GGUF file (GPT-2 byte-level BPE) rebuilt as the same kind of tokenizer.

use crate::error::{Error, Result};
use crate::model::gguf::{Gguf, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence, PreTokenizerWrapper};
use tokenizers::{AddedToken, DecoderWrapper, ModelWrapper};

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
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| tok_err(file, e))?;
        Ok(Tokenizer { inner, bos_id: None, add_bos: false, eos_ids: vec![] })
    }

    /// From the tokenizer embedded in GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf, file: &str) -> Result<Self> {
        let kind = g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
        if kind != "gpt2" {
            return Err(Error::UnsupportedDtype {
                what: format!("{file}: tokenizer.ggml.model"),
                dtype: format!("{kind:?} (only GPT-2 byte-level BPE vocabularies are supported; use a tokenizer.json)"),
            });
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            g.get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| tok_err(file, format!("{key} missing")))?
                .iter()
                .map(|v| v.as_str().map(String::from).ok_or_else(|| tok_err(file, format!("{key}: not a string"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_string(), b.to_string())),
                None => Err(tok_err(file, format!("merge {m:?} has no space"))),
            })
            .collect::<Result<_>>()?;
        let types: Vec<u64> = g
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| tok_err(file, e))?;
        let mut inner = tokenizers::Tokenizer::new(ModelWrapper::BPE(bpe));
        // GPT-2 byte-level pre-tokenization; llama.cpp's "smollm"/"llama-bpe"-style vocabularies
        // split digits one by one first.
        let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
        let byte_level = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
        let pre_tok = match pre {
            "smollm" | "starcoder" | "refact" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                byte_level,
            ])),
            _ => byte_level,
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::new(false, true, true))));
        // control (3) and user-defined (4) tokens are matched whole, never split
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        inner.add_special_tokens(&special);
        let id = |k: &str| g.get(k).and_then(Value::as_u64).map(|x| x as u32);
        Ok(Tokenizer {
            inner,
            bos_id: id("tokenizer.ggml.bos_token_id"),
            add_bos: g.get("tokenizer.ggml.add_bos_token").is_some_and(|v| *v == Value::Bool(true)),
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
