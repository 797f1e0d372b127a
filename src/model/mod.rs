//! Llama models: configuration, checkpoint formats and the GPU forward.

pub mod checkpoint;
pub mod config;
pub mod gguf;
pub mod llama;
pub mod session;

pub use checkpoint::{Checkpoint, Format};
pub use config::LlamaConfig;
pub use llama::{Llama, MemoryLedger};
pub use session::{SeqChunk, Session};
