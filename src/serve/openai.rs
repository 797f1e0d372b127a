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

/// A string or a list of strings (`stop`).
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

/// A completion's prompt: text or token ids, alone or in a list of one (OpenAI's four forms).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Prompt {
    /// `"text"`.
    Text(String),
    /// `[1, 2, 3]`: token ids, taken as they are (no BOS added).
    Tokens(Vec<u32>),
    /// `["text", ...]`.
    Texts(Vec<String>),
    /// `[[1, 2, 3], ...]`.
    TokenLists(Vec<Vec<u32>>),
}

/// One prompt, as [`Prompt::one`] gives it.
#[derive(Debug, Clone)]
pub enum PromptOne {
    /// Text, tokenized with the model's BOS.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

impl Prompt {
    /// The prompt, or a 400 for a list of several (one choice per request here).
    pub fn one(self) -> Result<PromptOne, ApiError> {
        let several = || ApiError::bad_request("prompt must be one string or one list of token ids", Some("prompt"));
        Ok(match self {
            Prompt::Text(t) => PromptOne::Text(t),
            Prompt::Tokens(ids) => PromptOne::Tokens(ids),
            Prompt::Texts(v) => {
                let [t] = <[String; 1]>::try_from(v).map_err(|_| several())?;
                PromptOne::Text(t)
            }
            Prompt::TokenLists(v) => {
                let [ids] = <[Vec<u32>; 1]>::try_from(v).map_err(|_| several())?;
                PromptOne::Tokens(ids)
            }
        })
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
    /// Added to the logits of these token ids (keys: ids as strings; values -100..100).
    pub logit_bias: Option<std::collections::BTreeMap<String, f32>>,
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
    /// Output format: only `{"type": "text"}` (no constrained decoding here: JSON modes are a 400).
    pub response_format: Option<ResponseFormat>,
    /// Tool definitions: taken as context-free, since tool calls are not produced (the model
    /// answers in text, as `tool_choice: "auto"` allows).
    pub tools: Option<Vec<Value>>,
    /// `"none"` or `"auto"`; `"required"` or a named function is a 400 (no tool calls here).
    pub tool_choice: Option<Value>,
    /// Sampling and length.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `response_format`.
#[derive(Deserialize, Debug, Clone)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ChatRequest {
    /// A 400 for what this server cannot honour rather than ignore: a JSON output mode, a
    /// required tool call.
    pub fn check_unsupported(&self) -> Result<(), ApiError> {
        if let Some(f) = &self.response_format {
            if f.kind != "text" {
                return Err(ApiError::bad_request(
                    format!("response_format {:?} is not supported: this server does not constrain the output (only \"text\")", f.kind),
                    Some("response_format"),
                ));
            }
        }
        let has_tools = self.tools.as_ref().is_some_and(|t| !t.is_empty());
        match &self.tool_choice {
            Some(Value::String(c)) if c == "none" || c == "auto" => {}
            None | Some(Value::Null) => {}
            Some(_) if !has_tools => {}
            Some(c) => {
                return Err(ApiError::bad_request(
                    format!("tool_choice {c} is not supported: this server does not produce tool calls (\"auto\" and \"none\" are accepted)"),
                    Some("tool_choice"),
                ))
            }
        }
        Ok(())
    }
}

/// `POST /v1/completions`.
#[derive(Deserialize, Debug, Clone)]
pub struct CompletionRequest {
    /// The model name.
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt (text or token ids; one).
    pub prompt: Prompt,
    /// Legacy logprobs: this many alternatives per position (0..=5 in OpenAI; up to 20 here).
    pub logprobs: Option<u64>,
    /// Echo the prompt before the completion.
    #[serde(default)]
    pub echo: bool,
    /// Sampling and length.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// Parses a request body; a JSON or type error is a 400 naming the top-level field at fault.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object", None));
    }
    T::deserialize(&v).map_err(|e| {
        let msg = e.to_string();
        ApiError { param: culprit::<T>(v, &msg), ..ApiError::bad_request(format!("invalid request: {msg}"), None) }
    })
}

/// The top-level field a body's deserialization error is about: the one without which the body
/// parses; else one whose absence becomes the error (an error inside a required field); else the
/// field serde names as missing. (Serde's messages name a field only sometimes, and name values
/// too.) Bodies of more than 64 fields, which no client sends, get only the last answer: each try
/// parses the whole body.
fn culprit<T: serde::de::DeserializeOwned>(body: Value, msg: &str) -> Option<String> {
    let missing = |m: &str| m.strip_prefix("missing field `").and_then(|m| m.split('`').next()).map(String::from);
    let Value::Object(map) = body else { return None };
    if map.len() > 64 {
        return missing(msg);
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    let mut rest = Value::Object(map);
    // the outcome of parsing the body without each field in turn
    let mut without = Vec::with_capacity(keys.len());
    for k in &keys {
        let v = rest.as_object_mut()?.remove(k)?;
        without.push(T::deserialize(&rest).map(|_| ()).map_err(|e| e.to_string()));
        rest.as_object_mut()?.insert(k.clone(), v);
    }
    let pick = |ok: &dyn Fn(&Result<(), String>, &str) -> bool| {
        keys.iter().zip(&without).find(|(k, r)| ok(r, k)).map(|(k, _)| k.clone())
    };
    pick(&|r, _| r.is_ok())
        .or_else(|| pick(&|r, k| r.as_ref().err().and_then(|e| missing(e)).as_deref() == Some(k)))
        .or_else(|| missing(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of<T: serde::de::DeserializeOwned>(body: &str) -> Option<String> {
        parse::<T>(body.as_bytes()).err().expect("the body must not parse").param
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let msgs = r#""messages": [{"role": "user", "content": "hi"}]"#;
        assert_eq!(param_of::<ChatRequest>(&format!(r#"{{{msgs}, "max_tokens": -1}}"#)).as_deref(), Some("max_tokens"));
        assert_eq!(
            param_of::<ChatRequest>(&format!(r#"{{{msgs}, "temperature": "hot"}}"#)).as_deref(),
            Some("temperature")
        );
        assert_eq!(param_of::<ChatRequest>(r#"{"messages": [{"content": "hi"}]}"#).as_deref(), Some("messages"));
        assert_eq!(param_of::<ChatRequest>(r#"{"max_tokens": 3}"#).as_deref(), Some("messages"));
        assert_eq!(param_of::<CompletionRequest>(r#"{"prompt": [1, "a"]}"#).as_deref(), Some("prompt"));
        assert_eq!(
            param_of::<CompletionRequest>(r#"{"prompt": "a", "stop": 3, "echo": true}"#).as_deref(),
            Some("stop")
        );
    }

    #[test]
    fn unsupported_output_modes_are_refused() {
        let req = |extra: &str| {
            let b = format!(r#"{{"messages": [{{"role": "user", "content": "hi"}}]{extra}}}"#);
            parse::<ChatRequest>(b.as_bytes()).unwrap().check_unsupported().err().and_then(|e| e.param)
        };
        assert_eq!(req(""), None);
        assert_eq!(req(r#", "response_format": {"type": "text"}"#), None);
        assert_eq!(req(r#", "response_format": {"type": "json_object"}"#).as_deref(), Some("response_format"));
        let tools = r#", "tools": [{"type": "function", "function": {"name": "f"}}]"#;
        assert_eq!(req(tools), None);
        assert_eq!(req(&format!(r#"{tools}, "tool_choice": "auto""#)), None);
        assert_eq!(req(&format!(r#"{tools}, "tool_choice": "required""#)).as_deref(), Some("tool_choice"));
        let named = r#", "tool_choice": {"type": "function", "function": {"name": "f"}}"#;
        assert_eq!(req(&format!("{tools}{named}")).as_deref(), Some("tool_choice"));
    }

    #[test]
    fn prompts_in_every_form() {
        let one = |b: &str| parse::<CompletionRequest>(b.as_bytes()).unwrap().prompt.one();
        assert!(matches!(one(r#"{"prompt": "a"}"#), Ok(PromptOne::Text(t)) if t == "a"));
        assert!(matches!(one(r#"{"prompt": ["a"]}"#), Ok(PromptOne::Text(t)) if t == "a"));
        assert!(matches!(one(r#"{"prompt": [1, 2]}"#), Ok(PromptOne::Tokens(v)) if v == [1, 2]));
        assert!(matches!(one(r#"{"prompt": [[3]]}"#), Ok(PromptOne::Tokens(v)) if v == [3]));
        assert_eq!(one(r#"{"prompt": ["a", "b"]}"#).unwrap_err().param.as_deref(), Some("prompt"));
        assert_eq!(one(r#"{"prompt": [[1], [2]]}"#).unwrap_err().param.as_deref(), Some("prompt"));
    }
}
