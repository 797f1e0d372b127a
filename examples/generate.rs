//! Loads a model and streams a chat answer through the library API.
//!
//!     cargo run --release --example generate -- .models/SmolLM2-135M-Instruct.Q4_1.gguf "Tell me a joke"

use inferno_llama::chat::Message;
use inferno_llama::generate::{GenerateParams, InfernoLlamaEngine};
use inferno_llama::{GpuContext, GpuOptions};
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or_else(|| anyhow::anyhow!("usage: generate MODEL [PROMPT]"))?;
    let prompt = args.next().unwrap_or_else(|| "What is the capital of France?".into());
    let gpu = GpuContext::new_blocking(&GpuOptions::from_env())?;
    let mut engine = InfernoLlamaEngine::load(model.as_ref(), &gpu, &Default::default(), |_, _| {})?;
    let g = engine.chat(&[Message::new("user", &prompt)], GenerateParams::default(), |t| {
        print!("{t}");
        let _ = std::io::stdout().flush();
    })?;
    println!();
    eprintln!("{} tokens, {:.1} tok/s", g.tokens.len(), g.tokens.len() as f64 / g.gen_secs.max(1e-9));
    Ok(())
}
