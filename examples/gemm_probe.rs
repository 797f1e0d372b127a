//! Probe (temporary): times variants of the matrix-core GEMM kernel on one shape.
use inferno_llama::gpu::{kernel_source, GpuContext, GpuOptions};
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new_blocking(&GpuOptions::from_env()).unwrap();
    if std::env::var("PROBE_VALIDATE").is_err() && !ctx.coopmat { panic!("no coopmat"); }
    let (t, k, n) = (512u32, 4096u32, 14336u32);
    let x = ctx.storage("x", (t * k * 2) as u64).unwrap();
    let w = ctx.storage("w", (n * k * 2) as u64).unwrap();
    let out = ctx.storage("out", (t * n * 4) as u64).unwrap();
    let params: [u32; 8] = [k, n, n, 0, t, 0, 0, 0];
    let u = ctx.uniform("p", &params);
    let u4 = ctx.uniform("p", &[k / 4, n, n, 0, t, 0, 0, 0u32]);
    let base = kernel_source("matmul_gemm_coop").unwrap();
    let portable = kernel_source("matmul_gemm").unwrap();
    let mut variants: Vec<(String, String, bool, [u32; 3])> = vec![];
    let grid = [n.div_ceil(128), t.div_ceil(64), 1];
    variants.push(("portable".into(), portable, false, grid));
    variants.push(("coop".into(), base.clone(), false, grid));
    variants.push(("coop unchecked".into(), base.clone(), true, grid));
    let mut k4 = variants.last().unwrap().clone();
    k4.0 = "coop unchecked K/4".into();
    variants.push(k4);
    variants.push(("(h) f16 weights".into(), base.clone(), true, grid));
    let only = std::env::args().nth(1);
    for (name, src, unchecked, grid) in variants {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let scope2 = ctx.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let desc = wgpu::ShaderModuleDescriptor { label: Some("probe"), source: wgpu::ShaderSource::Wgsl(src.into()) };
        let module = if unchecked {
            unsafe { ctx.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
        } else {
            ctx.device.create_shader_module(desc)
        };
        let consts: Vec<(&str, f64)> = if name.contains("direct") {
            vec![]
        } else if name.starts_with("portable") {
            vec![("ACT_F16", 1.0), ("W_DTYPE", 2.0), ("OUT_MODE", 0.0), ("BN", 128.0)]
        } else if name.contains("f16 weights") || name.ends_with("f16 w") {
            vec![("ACT_F16", 1.0), ("W_DTYPE", 1.0), ("OUT_MODE", 0.0)]
        } else {
            vec![("ACT_F16", 1.0), ("W_DTYPE", 2.0), ("OUT_MODE", 0.0)]
        };
        let p = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &consts, zero_initialize_workgroup_memory: false },
            cache: None,
        });
        let e2 = pollster::block_on(scope2.pop());
        if let Some(e) = pollster::block_on(scope.pop()).or(e2) {
            println!("{name:28} failed: {}", e.to_string().lines().next().unwrap_or(""));
            continue;
        }
        let layout = p.get_bind_group_layout(0);
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: if name.contains("K/4") { u4.as_entire_binding() } else { u.as_entire_binding() } },
                wgpu::BindGroupEntry { binding: 1, resource: x.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: w.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: out.as_entire_binding() },
            ],
        });
        let run = |reps: u32| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bg, &[]);
                for _ in 0..reps {
                    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                }
            }
            ctx.queue.submit([enc.finish()]);
            ctx.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        };
        run(2);
        let t0 = Instant::now();
        run(10);
        let s = t0.elapsed().as_secs_f64() / 10.0;
        let flop = 2.0 * t as f64 * k as f64 * n as f64;
        println!("{name:28} {:8.3} ms  {:6.1} TFLOP/s", s * 1e3, flop / s / 1e12);
    }
}

const DIRECT: &str = r#"
struct Params { k: u32, n: u32, out_stride: u32, out_offset: u32, t: u32, d_off: u32, m_off: u32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f16>;
@group(0) @binding(2) var<storage, read> w: array<f16>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(128)
fn main(@builtin(subgroup_id) sg: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n0 = wid.x * 128u + 64u * (sg / 2u);
    let t0 = wid.y * 64u + 32u * (sg % 2u);
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;
    let k = p.k;
    for (var kk = 0u; kk < k; kk += 16u) {
        let ia0 = t0 * k + kk;
        let ia1 = ia0 + 16u * k;
        let ib0 = n0 * k + kk;
        let ib1 = ib0 + 16u * k;
        let ib2 = ib1 + 16u * k;
        let ib3 = ib2 + 16u * k;
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&x[ia0], k);
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&x[ia1], k);
        let b0 = coopLoad<coop_mat16x16<f16, B>>(&w[ib0], k);
        let b1 = coopLoad<coop_mat16x16<f16, B>>(&w[ib1], k);
        let b2 = coopLoad<coop_mat16x16<f16, B>>(&w[ib2], k);
        let b3 = coopLoad<coop_mat16x16<f16, B>>(&w[ib3], k);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
    }
    let st = p.out_stride;
    let o = t0 * st + n0;
    let o1 = o + 16u;
    let o2 = o + 32u;
    let o3 = o + 48u;
    let o4 = o + 16u * st;
    let o5 = o4 + 16u;
    let o6 = o4 + 32u;
    let o7 = o4 + 48u;
    coopStoreT(c00, &out[o], st);
    coopStoreT(c01, &out[o1], st);
    coopStoreT(c02, &out[o2], st);
    coopStoreT(c03, &out[o3], st);
    coopStoreT(c10, &out[o4], st);
    coopStoreT(c11, &out[o5], st);
    coopStoreT(c12, &out[o6], st);
    coopStoreT(c13, &out[o7], st);
}
"#;
