//! inferno-llama: Llama-family LLM inference where every tensor op is a WGSL compute shader run
//! through wgpu (Vulkan, Metal, DX12, WebGPU). Weights stay in their checkpoint precision;
//! activations are 16-bit (f16 with `shader-f16`, packed bf16 otherwise) with f32 arithmetic.

pub mod cpu;
pub mod dtype;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod model;
pub mod ops;

pub use dtype::{ActDtype, WeightDtype};
pub use error::{Error, Result};
pub use gpu::{GpuContext, GpuOptions};
pub mod tokenizer;
pub mod chat;
pub mod sampling;
pub mod generate;
