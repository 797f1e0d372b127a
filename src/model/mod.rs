//! Llama models: configuration, checkpoint formats and the GPU forward.

pub mod checkpoint;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod convert;
pub mod gguf;
pub mod iq_grids;
pub mod llama;
pub mod session;
pub mod synthetic;

pub use checkpoint::{Checkpoint, Format};
pub use config::LlamaConfig;
pub use llama::{layer_split, split_bytes, Llama, MemoryLedger, Stage};
pub use session::{SeqChunk, Session};
