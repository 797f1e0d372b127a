//! The inferno-llama engine in the browser: a thin wasm-bindgen wrapper over the library.
//! JavaScript hands over model bytes (GGUF, or SafeTensors + config.json + tokenizer files);
//! the weights go to WebGPU buffers and the host copy is dropped.

use inferno_llama::chat::Message;
use inferno_llama::generate::{tokenizer_from_parts, GenerateParams, InfernoLlamaEngine};
use inferno_llama::model::checkpoint::FileData;
use inferno_llama::model::{Checkpoint, Llama, LlamaConfig, SeqChunk, Session};
use inferno_llama::sampling::SamplingParams;
use inferno_llama::{GpuContext, GpuOptions};
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Engine state visible to JavaScript.
#[wasm_bindgen]
pub struct WebEngine {
    gpu: GpuContext,
    /// With a tokenizer: the full engine (owns the session).
    engine: Option<InfernoLlamaEngine>,
    /// Without one (bare golden checkpoints): only the session, driven by token ids.
    session: Option<Session>,
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Opens the WebGPU adapter. `force_bf16` forces the packed-bf16 path where f16 exists;
/// `max_binding` (bytes, 0 = the adapter's) lowers the storage-binding limit, e.g. to WebGPU's
/// default 128 MiB, so weights are split into row chunks as on such adapters.
async fn gpu(force_bf16: bool, max_binding: u32) -> Result<GpuContext, JsError> {
    let max_binding_override = (max_binding > 0).then_some(max_binding as u64);
    GpuContext::new(&GpuOptions { force_bf16, max_binding_override, ..Default::default() }).await.map_err(js_err)
}

fn build(
    gpu: GpuContext,
    ckpt: Checkpoint,
    tok: Option<(&[u8], Option<&str>)>,
    ctx_len: u32,
) -> Result<WebEngine, JsError> {
    let has_tokenizer = ckpt.gguf.is_some() || tok.is_some();
    let parts = if has_tokenizer {
        let (json, config) = tok.map_or((None, None), |(j, c)| (Some(j), c));
        Some(tokenizer_from_parts(&ckpt, json, config, None).map_err(js_err)?)
    } else {
        None
    };
    let model = Arc::new(Llama::load(&gpu, &ckpt, |_, _| {}).map_err(js_err)?);
    drop(ckpt); // the host copy of the weights goes away here
    let ctx_len = (ctx_len as usize).min(model.config.max_position_embeddings).max(16);
    let session = Session::new(model, 1, ctx_len, 128).map_err(js_err)?;
    Ok(match parts {
        Some((tokenizer, template)) => {
            WebEngine { gpu, engine: Some(InfernoLlamaEngine::new(session, tokenizer, template)), session: None }
        }
        None => WebEngine { gpu, engine: None, session: Some(session) },
    })
}

#[wasm_bindgen]
impl WebEngine {
    /// Loads a GGUF file from its bytes.
    #[wasm_bindgen(js_name = fromGguf)]
    pub async fn from_gguf(
        bytes: Vec<u8>,
        name: String,
        ctx_len: u32,
        force_bf16: bool,
        max_binding: u32,
    ) -> Result<WebEngine, JsError> {
        let gpu = gpu(force_bf16, max_binding).await?;
        let ckpt = Checkpoint::from_gguf(FileData::Owned(bytes), &name).map_err(js_err)?;
        build(gpu, ckpt, None, ctx_len)
    }

    /// Loads a SafeTensors checkpoint: config.json text, the weights file, and optionally
    /// tokenizer.json bytes and tokenizer_config.json text.
    #[wasm_bindgen(js_name = fromSafetensors)]
    pub async fn from_safetensors(
        config_json: String,
        weights: Vec<u8>,
        tokenizer_json: Option<Vec<u8>>,
        tokenizer_config: Option<String>,
        ctx_len: u32,
        force_bf16: bool,
        max_binding: u32,
    ) -> Result<WebEngine, JsError> {
        let gpu = gpu(force_bf16, max_binding).await?;
        let config = LlamaConfig::from_hf_json(&config_json, "config.json").map_err(js_err)?;
        let ckpt = Checkpoint::from_safetensors(config, vec![("model.safetensors".into(), FileData::Owned(weights))])
            .map_err(js_err)?;
        build(gpu, ckpt, tokenizer_json.as_deref().map(|j| (j, tokenizer_config.as_deref())), ctx_len)
    }

    /// Adapter and model facts as JSON: adapter name, backend, activation path, limits, memory.
    #[wasm_bindgen(js_name = info)]
    pub fn info(&self) -> String {
        let s = self.session();
        let l = s.ledger();
        let c = &s.model.config;
        serde_json::json!({
            "adapter": if self.gpu.info.name.is_empty() { "unnamed adapter" } else { &self.gpu.info.name },
            "backend": format!("{:?}", self.gpu.info.backend),
            "device_type": format!("{:?}", self.gpu.info.device_type),
            "activations": self.gpu.act.name(),
            "shader_f16": self.gpu.features.contains(wgpu_features::SHADER_F16),
            "subgroups": self.gpu.subgroups,
            "max_binding": self.gpu.max_binding,
            "layers": c.num_hidden_layers, "hidden": c.hidden_size, "vocab": c.vocab_size,
            "weights_bytes": l.weights, "kv_bytes": l.kv_cache, "scratch_bytes": l.scratch,
            "weight_chunks": s.model.stages[0].embed_tokens.as_ref().map_or(0, |w| w.chunks.len()),
            "has_tokenizer": self.engine.is_some(),
        })
        .to_string()
    }

    fn session(&self) -> &Session {
        match (&self.engine, &self.session) {
            (Some(e), _) => &e.session,
            (None, Some(s)) => s,
            (None, None) => unreachable!("an engine always holds a session"),
        }
    }

    fn session_mut(&mut self) -> &mut Session {
        match (&mut self.engine, &mut self.session) {
            (Some(e), _) => &mut e.session,
            (None, Some(s)) => s,
            (None, None) => unreachable!("an engine always holds a session"),
        }
    }

    /// Greedy continuation of `ids` by `n` tokens (argmax on the GPU), from position 0.
    #[wasm_bindgen(js_name = greedyIds)]
    pub async fn greedy_ids(&mut self, ids: Vec<u32>, n: u32) -> Result<Vec<u32>, JsError> {
        if let Some(e) = &mut self.engine {
            e.cached.clear();
        }
        let s = self.session_mut();
        let mut next = s.forward_greedy(&[SeqChunk::prompt(0, 0, &ids)]).await.map_err(js_err)?[0];
        let mut out = vec![next];
        for k in 1..n as usize {
            next = s.forward_greedy(&[SeqChunk::generated(0, ids.len() + k - 1, &[next])]).await.map_err(js_err)?[0];
            out.push(next);
        }
        Ok(out)
    }

    /// Renders a one-turn chat with the model's template (the raw text if it has none).
    #[wasm_bindgen(js_name = chatPrompt)]
    pub fn chat_prompt(&self, user: String) -> Result<String, JsError> {
        let e = self.engine.as_ref().ok_or_else(|| JsError::new("this model has no tokenizer"))?;
        if e.template.is_none() {
            return Ok(user);
        }
        e.render_chat(&[Message::new("user", &user)]).map_err(js_err)
    }

    /// Generates after `prompt`, calling `on_text(piece)` as text is released; returns a JSON
    /// summary (text, tokens, finish, prompt_tokens). Temperature 0 is greedy.
    pub async fn generate(
        &mut self,
        prompt: String,
        max_tokens: u32,
        temperature: f32,
        seed: u32,
        on_text: js_sys::Function,
    ) -> Result<String, JsError> {
        let e = self.engine.as_mut().ok_or_else(|| JsError::new("this model has no tokenizer"))?;
        let params = GenerateParams {
            max_tokens: max_tokens as usize,
            sampling: SamplingParams { temperature, top_p: 0.95, seed: seed as u64, ..Default::default() },
            stop: vec![],
        };
        let g = e
            .generate_async(&prompt, params, |t| {
                let _ = on_text.call1(&JsValue::NULL, &JsValue::from_str(t));
            })
            .await
            .map_err(js_err)?;
        Ok(serde_json::json!({
            "text": g.text, "tokens": g.tokens.len(), "finish": format!("{:?}", g.finish), "prompt_tokens": g.prompt_tokens,
        })
        .to_string())
    }
}

/// wgpu's feature flags under a short name.
mod wgpu_features {
    pub use inferno_llama::gpu::Features as F;
    pub const SHADER_F16: F = F::SHADER_F16;
}
