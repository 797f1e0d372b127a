//! inferno-llama: Llama-family LLM inference where every tensor op is a WGSL compute shader run
//! through wgpu (Vulkan, Metal, DX12, WebGPU). Weights stay in their checkpoint precision;
//! activations are 16-bit (f16 with `shader-f16`, packed bf16 otherwise) with f32 arithmetic.

// Nothing a file, a request or the driver controls may panic the library: no unwrap/expect outside
// tests (clippy keeps it so).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

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
pub mod chat;
pub mod generate;
pub mod sampling;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
pub mod tokenizer;

// The code samples of the user guides compile (and are type-checked) as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../MIGRATING.md")]
struct MigratingGuide;
#[cfg(doctest)]
#[doc = include_str!("../TROUBLESHOOTING.md")]
struct TroubleshootingGuide;
