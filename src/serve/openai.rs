//! The OpenAI API's request and response shapes (chat completions, completions, models, errors),
//! as the official clients send and read them. Unknown request fields are ignored; a known field
//! of the wrong type is a 400 naming it.

use serde::Deserialize;
use serde_json::{json, Value};

/// An error in OpenAI's JSON shape, with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.message`.
    pub message: String,
    /// `error.type` (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// `error.param`: the request field at fault.
    pub param: Option<String>,
    /// `error.code` (`context_length_exceeded`, ...).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about the request body.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(String::from),
            code: None,
        }
    }

    /// Any status with its own type and code.
    pub fn new(status: u16, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), kind, param: None, code }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// A string or a list of strings (`stop`, a completion's `prompt`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A message's content: a string, or a list of parts of which the text parts count.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// `[{"type": "text", "text": "..."}, ...]`.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Deserialize, Debug, Clone)]
pub struct ContentPart {
    /// `text` (other kinds, e.g. images, are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a text part.
    #[serde(default)]
    pub text: Option<String>,
}

/// One chat message.
#[derive(Deserialize, Debug, Clone)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (`developer` is treated as `system`).
    pub role: String,
    /// The content (absent or null: empty).
    #[serde(default)]
    pub content: Option<Content>,
}

impl ChatMessage {
    /// The text content.
    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(s)) => Ok(s.clone()),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ApiError::bad_request(
                            format!("content part of type {:?} is not supported (text is)", p.kind),
                            Some("messages"),
                        ));
                    }
                    out.push_str(p.text.as_deref().unwrap_or(""));
                }
                Ok(out)
            }
        }
    }
}

/// `stream_options`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct StreamOptions {
    /// Send a last chunk with the usage counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling and length fields chat and completion requests share.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct Sampling {
    /// Most new tokens (legacy name).
    pub max_tokens: Option<u64>,
    /// Most new tokens.
    pub max_completion_tokens: Option<u64>,
    /// Temperature (default 1, as OpenAI; 0 = greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k (an extension llama-server and vLLM accept).
    pub top_k: Option<u64>,
    /// Min-p (extension).
    pub min_p: Option<f32>,
    /// Repetition penalty (extension).
    pub repetition_penalty: Option<f32>,
    /// RNG seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Option<OneOrMany>,
    /// OpenAI's presence penalty (-2..2).
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty (-2..2).
    pub frequency_penalty: Option<f32>,
    /// Choices (only 1).
    pub n: Option<u64>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize, Debug, Clone)]
pub struct ChatRequest {
    /// The model name (any: this server has one).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Return log-probabilities of the chosen tokens.
    #[serde(default)]
    pub logprobs: bool,
    /// With `logprobs`: this many alternatives per position (0..=20).
    pub top_logprobs: Option<u64>,
    /// Sampling and length.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `POST /v1/completions`.
#[derive(Deserialize, Debug, Clone)]
pub struct CompletionRequest {
    /// The model name.
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt (one string, or a list of exactly one).
    pub prompt: OneOrMany,
    /// Legacy logprobs: this many alternatives per position (0..=5 in OpenAI; up to 20 here).
    pub logprobs: Option<u64>,
    /// Echo the prompt before the completion.
    #[serde(default)]
    pub echo: bool,
    /// Sampling and length.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// Parses a request body; a JSON or type error is a 400 naming the field where serde knows it.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object", None));
    }
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in "invalid type: ... for field `x`"-style messages
        let param = msg.split('`').nth(1).map(String::from);
        ApiError { param, ..ApiError::bad_request(format!("invalid request: {msg}"), None) }
    })
}
