//! Test helpers: shared GPU contexts for both activation paths, seeded random data, poisoned
//! buffers and a comparison that prints the failing index.
#![allow(dead_code)]

use inferno_llama::{ActDtype, GpuContext, GpuOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::OnceLock;

/// Both activation paths.
pub const PATHS: [ActDtype; 2] = [ActDtype::F16, ActDtype::Bf16];

/// A context of these options on the test adapter.
pub fn open(opts: GpuOptions) -> GpuContext {
    // No adapter is a failure, never a skip: CI must have lavapipe (mesa-vulkan-drivers).
    GpuContext::new_blocking(&opts).unwrap_or_else(|e| panic!("no GPU for the tests: {e}"))
}

/// The shared context for an activation path (f16 needs an adapter with shader-f16). The f16
/// context uses the subgroup kernels where the adapter has subgroups (lavapipe does), and the
/// portable GEMM's next-step loads in flight as GPUs take it (off on software adapters) and W8A8
/// prompts on the f16 GEMMs as matrix-core GPUs take them; the bf16 context the workgroup-memory
/// ones, the GEMM as lavapipe takes it and the int8 GEMM, so every kernel test covers both
/// reductions, both GEMM loops and both W8A8 prompt paths. Both decode
/// block weights with 16-bit activations (`no_int8_dot`), the path the golden references
/// measure to their tolerances; the int8-activation GEMV has its exact CPU emulation in the
/// kernel tests and its end-to-end accuracy budget on the real model ([`int8_ctx`]).
pub fn ctx(path: ActDtype) -> &'static GpuContext {
    static F16: OnceLock<GpuContext> = OnceLock::new();
    static BF16: OnceLock<GpuContext> = OnceLock::new();
    let c = match path {
        ActDtype::F16 => F16.get_or_init(|| {
            open(GpuOptions {
                no_int8_dot: true,
                gemm_prefetch: Some(true),
                w8a8_f16_gemm: Some(true),
                ..GpuOptions::from_env()
            })
        }),
        ActDtype::Bf16 => BF16.get_or_init(|| {
            open(GpuOptions { force_bf16: true, no_subgroups: true, no_int8_dot: true, ..GpuOptions::from_env() })
        }),
    };
    assert_eq!(c.act, path, "adapter {} lacks shader-f16 for the f16 path", c.info.name);
    c
}

/// The f16 context with the engine's default decode of GGUF block weights: int8
/// activations and integer dot products (ops::gemv_q8).
pub fn int8_ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| open(GpuOptions { no_int8_dot: false, force_int8_dot: true, ..GpuOptions::from_env() }))
}

/// A context whose binding limit is lowered to 4 KiB, to exercise chunked weights.
pub fn small_binding_ctx(path: ActDtype) -> GpuContext {
    binding_ctx(path, 4096)
}

/// A context whose binding limit is lowered to `bytes`.
pub fn binding_ctx(path: ActDtype, bytes: u64) -> GpuContext {
    open(GpuOptions { force_bf16: path == ActDtype::Bf16, max_binding_override: Some(bytes), ..GpuOptions::from_env() })
}

/// A fresh RNG per test; the seed is printed (set INFERNO_TEST_SEED to replay one).
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("INFERNO_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("{test}: INFERNO_TEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` uniform values in [-scale, scale].
pub fn rand_vec(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..=scale)).collect()
}

/// Values rounded to the activation precision (what the GPU sees after upload).
pub fn round_act(path: ActDtype, v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| path.round(x)).collect()
}

/// Uploads activations (packed 16-bit).
pub fn upload_act(c: &GpuContext, v: &[f32]) -> wgpu::Buffer {
    c.storage_init("test act", bytemuck::cast_slice(&c.act.pack(v))).unwrap()
}

/// Uploads f32 values.
pub fn upload_f32(c: &GpuContext, v: &[f32]) -> wgpu::Buffer {
    c.storage_init("test f32", bytemuck::cast_slice(v)).unwrap()
}

/// A buffer of `bytes` bytes filled with NaN (0xffffffff), so unwritten outputs fail.
pub fn poisoned(c: &GpuContext, bytes: usize) -> wgpu::Buffer {
    c.storage_init("poisoned", &vec![0xff; bytes.div_ceil(4) * 4]).unwrap()
}

/// Reads `n` packed activations back as f32.
pub fn read_act(c: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let bytes = c.read_blocking(b, (n.div_ceil(2) * 4) as u64).unwrap();
    c.act.unpack(bytemuck::cast_slice(&bytes), n)
}

/// Reads `n` f32 values back.
pub fn read_f32(c: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    bytemuck::cast_slice(&c.read_blocking(b, (n * 4) as u64).unwrap()).to_vec()
}

/// Tolerance of a 16-bit activation result (relative, plus the same times the output's RMS).
pub fn act_tol(path: ActDtype) -> f32 {
    match path {
        ActDtype::F16 => 4e-3,
        ActDtype::Bf16 => 1.6e-2,
    }
}

/// Asserts `|got - want| <= rtol * (|want| + rms(want))` everywhere; NaN always fails.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len().max(1) as f32).sqrt();
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        if err.is_nan() || err > rtol * (w.abs() + rms) {
            panic!("{what}: mismatch at index {i}: got {g}, want {w} (|err| {err}, rtol {rtol}, rms {rms})");
        }
        worst = worst.max(err / (w.abs() + rms).max(f32::MIN_POSITIVE));
    }
    eprintln!("{what}: ok, worst scaled error {worst:.2e} (tol {rtol:.0e})");
}
