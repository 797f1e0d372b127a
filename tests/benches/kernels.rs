//! Criterion benchmarks of the hot kernels on the default adapter (`cargo bench`).
//! Each iteration submits one graph and waits for it, so figures include one submit + sync.
//! On a real GPU the shapes are Llama-3.1-8B's; on a CPU adapter (lavapipe) they shrink.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inferno_llama::gpu::weight::Weight;
use inferno_llama::graph::Graph;
use inferno_llama::ops::attention::{part_bytes, Attention, AttentionIo, AttentionShape, PROMPT_PAD};
use inferno_llama::ops::matmul::{Matmul, MatmulOut};
use inferno_llama::{GpuContext, GpuOptions, WeightDtype};

fn wait(c: &GpuContext, g: &Graph) {
    g.run(c);
    c.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
}

fn benches(cr: &mut Criterion) {
    let c = GpuContext::new_blocking(&GpuOptions::from_env()).expect("a GPU adapter");
    let real = c.info.device_type != wgpu::DeviceType::Cpu;
    eprintln!("{}", c.report());
    let (n, k, copies, reps) = if real { (14336, 4096, 12, 4) } else { (1536, 576, 2, 1) };
    // GEMV: bf16 weights, rotated through `copies` matrices so they do not sit in L2
    let bytes = vec![0x3c; n * k * 2];
    let ws: Vec<Weight> = (0..copies)
        .map(|i| Weight::upload(&c, &format!("w{i}"), WeightDtype::Bf16, n, k, &bytes).expect("upload"))
        .collect();
    let x = c.storage("x", (512 * k * 2) as u64).expect("x");
    let out = c.storage("out", (512 * n * 2) as u64).expect("out");
    let mm = Matmul::new(&c);
    let mut g = Graph::new();
    for _ in 0..reps {
        for w in &ws {
            mm.record(&mut g, &x, w, &out, MatmulOut::Act, 1).expect("record");
        }
    }
    let mut grp = cr.benchmark_group("matmul");
    grp.throughput(Throughput::Bytes((n * k * 2 * copies * reps) as u64));
    grp.bench_function(format!("gemv_bf16_{n}x{k}_x{}", copies * reps), |b| b.iter(|| wait(&c, &g)));
    // GEMM: 512 tokens (prefill), FLOPs reported as "elements" = 2*T*N*K
    let t = if real { 512 } else { 32 };
    let mut g = Graph::new();
    mm.record(&mut g, &x, &ws[0], &out, MatmulOut::Act, t).expect("record");
    grp.throughput(Throughput::Elements((2 * t * n * k) as u64));
    grp.bench_function(format!("gemm_bf16_t{t}_{n}x{k}"), |b| b.iter(|| wait(&c, &g)));
    grp.finish();

    // attention: decode (1 token) at a long context, and a 512-token prefill
    let (heads, kv_heads, d) = (32, 8, 128);
    let ctx_len = if real { 4096 } else { 256 };
    // (+ the padding a prompt's matrix-core attention may read)
    let cache_bytes = ((ctx_len + PROMPT_PAD) * kv_heads * d * 2) as u64;
    let kc = c.storage("k", cache_bytes).expect("k");
    let vc = c.storage("v", cache_bytes).expect("v");
    c.queue.write_buffer(&kc, 0, &vec![0x11; ctx_len * kv_heads * d * 2]);
    c.queue.write_buffer(&vc, 0, &vec![0x11; ctx_len * kv_heads * d * 2]);
    let q = c.storage("q", (512 * heads * d * 2) as u64).expect("q");
    let o = c.storage("o", (512 * heads * d * 2) as u64).expect("o");
    let att = Attention::new(&c);
    let shape = AttentionShape { heads, kv_heads, head_dim: d, ctx: ctx_len };
    let mut grp = cr.benchmark_group("attention");
    for (label, tokens) in [("decode", 1usize), ("prefill", if real { 512 } else { 16 })] {
        let tok: Vec<u32> = (0..tokens).flat_map(|i| [0u32, (ctx_len - tokens + i) as u32]).collect();
        let tb = c.storage_init("tok", bytemuck::cast_slice(&tok)).expect("tok");
        let mut g = Graph::new();
        let part = c.storage("part", part_bytes(tokens, shape)).expect("part");
        let io = AttentionIo { q: &q, tok: &tb, kcache: &kc, vcache: &vc, out: &o, part: Some(&part), quant: None };
        if tokens > 1 {
            // a prompt: on matrix cores where the adapter has them
            att.record_prompt(&mut g, io, shape, tokens, shape.ctx).expect("record");
        } else {
            att.record(&mut g, io, shape, tokens).expect("record");
        }
        grp.throughput(Throughput::Bytes((2 * ctx_len * kv_heads * d * 2) as u64));
        grp.bench_function(format!("{label}_t{tokens}_ctx{ctx_len}_h{heads}_kv{kv_heads}_d{d}"), |b| {
            b.iter(|| wait(&c, &g))
        });
    }
    grp.finish();
}

criterion_group! {
    name = kernels;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(kernels);
