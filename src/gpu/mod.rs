//! GPU context: adapter choice, device with the adapter's own limits, buffers, pipelines, readback.

mod shaders;
#[cfg(not(target_arch = "wasm32"))]
mod specialize;
pub mod weight;

pub use shaders::{kernel_source, KERNELS};
/// wgpu's feature flags (re-exported for wrappers that do not depend on wgpu).
pub use wgpu::Features;

use crate::dtype::ActDtype;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How to choose and configure the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Restrict to these backends (None: all). Env `INFERNO_BACKEND` (vulkan, metal, dx12, gl, webgpu).
    pub backends: Option<wgpu::Backends>,
    /// Pick the first adapter whose name contains this (case-insensitive). Env `INFERNO_ADAPTER`.
    pub adapter_name: Option<String>,
    /// Store activations as packed bf16 even where the adapter has `shader-f16`.
    pub force_bf16: bool,
    /// Pretend `max_storage_buffer_binding_size` is this small (tests of the chunked path).
    pub max_binding_override: Option<u64>,
    /// Use the workgroup-memory kernels even where the adapter has subgroups. Env
    /// `INFERNO_NO_SUBGROUPS`.
    pub no_subgroups: bool,
    /// Use the portable GEMM even where the adapter has cooperative matrices. Env
    /// `INFERNO_NO_COOPMAT`.
    pub no_coopmat: bool,
    /// Decode GGUF block weights with f16 activations instead of int8 ones and
    /// integer dot products ([`GpuContext::int8_dot`]). Env `INFERNO_NO_INT8_DOT`.
    pub no_int8_dot: bool,
    /// Take that int8 decode on software adapters too (CPU device types: lavapipe, SwiftShader),
    /// where it is off by default (slower there). Env `INFERNO_FORCE_INT8_DOT`.
    pub force_int8_dot: bool,
    /// The portable prompt GEMM's next-step loads in flight during its multiply-adds
    /// ([`GpuContext::gemm_prefetch`]); None: on but on software adapters.
    pub gemm_prefetch: Option<bool>,
    /// W8A8 prompts through the f16 GEMMs on their int8 codes ([`GpuContext::w8a8_f16_gemm`]);
    /// None: where the prefill GEMM runs on matrix cores.
    pub w8a8_f16_gemm: Option<bool>,
}

impl GpuOptions {
    /// Options from the environment (`INFERNO_BACKEND`, `INFERNO_ADAPTER`, `INFERNO_FORCE_BF16`,
    /// `INFERNO_NO_SUBGROUPS`, `INFERNO_NO_COOPMAT`, `INFERNO_NO_INT8_DOT`, `INFERNO_FORCE_INT8_DOT`).
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        GpuOptions {
            backends: env("INFERNO_BACKEND").map(|b| wgpu::Backends::from_comma_list(&b)),
            adapter_name: env("INFERNO_ADAPTER"),
            force_bf16: env("INFERNO_FORCE_BF16").is_some_and(|v| v != "0"),
            max_binding_override: None,
            no_subgroups: env("INFERNO_NO_SUBGROUPS").is_some_and(|v| v != "0"),
            no_coopmat: env("INFERNO_NO_COOPMAT").is_some_and(|v| v != "0"),
            no_int8_dot: env("INFERNO_NO_INT8_DOT").is_some_and(|v| v != "0"),
            force_int8_dot: env("INFERNO_FORCE_INT8_DOT").is_some_and(|v| v != "0"),
            gemm_prefetch: None,
            w8a8_f16_gemm: None,
        }
    }
}

/// A device, its queue and what the engine knows about it. Cheap to clone (all `Arc`s inside).
#[derive(Clone)]
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's description.
    pub info: wgpu::AdapterInfo,
    /// Features enabled on the device.
    pub features: wgpu::Features,
    /// Limits enabled on the device (the adapter's own).
    pub limits: wgpu::Limits,
    /// Storage precision of activations and KV cache.
    pub act: ActDtype,
    /// Largest storage binding the engine will use (the device's, or the override).
    pub max_binding: u64,
    /// Kernels with a subgroup variant (`*_sg`, the fused norm-GEMV) use it: a native adapter
    /// with `SUBGROUP`, and [`GpuOptions::no_subgroups`] off.
    pub subgroups: bool,
    /// The prefill GEMM of f16/bf16 weights may run on matrix cores (`matmul_gemm_coop`): a
    /// native adapter with `EXPERIMENTAL_COOPERATIVE_MATRIX` offering 16x16x16 f16 x f16 + f32,
    /// 32-wide subgroups, f16 activations, and [`GpuOptions::no_coopmat`] off. Turned off for good
    /// if the driver fails to compile that kernel (see [`GpuContext::coopmat`]).
    coopmat: Arc<AtomicBool>,
    /// Decode steps multiply GGUF block weights (every type) with activations quantized to int8
    /// per block of 32 by integer dot products (ops::gemv_q8), unless [`GpuOptions::no_int8_dot`]
    /// (native GPUs; software adapters with [`GpuOptions::force_int8_dot`]; prompt tokens always
    /// keep 16-bit activations, see `model::llama::Step`).
    pub int8_dot: bool,
    /// The portable prompt GEMM (matmul_gemm.wgsl) issues a step's global loads before the
    /// previous step's multiply-adds ([`GpuOptions::gemm_prefetch`]; by default on GPUs, off on
    /// software adapters, where it is slower).
    pub gemm_prefetch: bool,
    /// [`GpuOptions::w8a8_f16_gemm`] as given (None: follow [`GpuContext::coopmat`]).
    w8a8_f16: Option<bool>,
    pipelines: Arc<Mutex<HashMap<String, Arc<Kernel>>>>,
    /// The f16 rows prompts decode block-format weights into (ops::dequant), made on first use.
    dequant_scratch: Arc<Mutex<Option<wgpu::Buffer>>>,
    /// Bytes the dequant scratch needs at most (see [`GpuContext::want_dequant_scratch`]; 0:
    /// unknown, [`DEQUANT_SCRATCH`]).
    dequant_want: Arc<AtomicU64>,
    /// The partial sums of matmuls split along K (ops::matmul), made on first use.
    split_scratch: Arc<Mutex<Option<wgpu::Buffer>>>,
    /// The first device loss or uncaptured error (wgpu's callbacks): every later read fails with it
    /// instead of hanging or panicking.
    fault: Arc<Mutex<Option<String>>>,
}

/// A compiled kernel: its pipeline, and which bindings of group 0 its shader (specialized for
/// the pipeline's constants) uses — a recorder binds its buffers at 0, 1, 2, ..., and those the
/// specialized shader no longer reads are left out of the bind group.
pub struct Kernel {
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Bit i set: binding i is used.
    pub bindings: u64,
}

/// A pipeline's shader, the bindings it uses (bit mask) and the override values to give wgpu.
type ShaderParts<'a> = (wgpu::ShaderSource<'static>, u64, Vec<(&'a str, f64)>);

/// Bytes of [`GpuContext::dequant_scratch`] at most: 256 MiB holds the 8B shape's largest weight
/// (gate/up, 28,672 x 4,096) in f16, and 16,384 rows of 70B's, so each piece's GEMM has >= 512
/// workgroups of 128 x 128 at 512 tokens. (With 64 MiB the 8B down projection went in pieces of 2,304 rows,
/// 72 workgroups for 132 SMs. H200, 8B pp512, 64 / 256 / 512 MiB: Q4_K_M 8,124 / 9,345 / 9,287
/// tok/s, Q8_0 8,854 / 10,274 / -, 2026-12-04; the tiles staged by the GEMM itself: 7,601 /
/// 6,826.)
pub const DEQUANT_SCRATCH: u64 = 256 << 20;

/// Bytes of [`GpuContext::split_scratch`]: 8 MiB holds the f32 partial sums of a 512-token
/// prompt GEMM over 2048 columns in two K splits (1B's o and down projections), and any skinny
/// split of up to 128 workgroups (tiles of 64 tokens x 64 columns).
pub const SPLIT_SCRATCH: u64 = 8 << 20;

/// Features the engine uses when present.
const WANTED: wgpu::Features =
    wgpu::Features::SHADER_F16.union(wgpu::Features::SUBGROUP).union(wgpu::Features::TIMESTAMP_QUERY);

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl GpuContext {
    /// Lists the adapters wgpu sees for these options (for `inferno info`).
    pub async fn adapters(opts: &GpuOptions) -> Vec<wgpu::Adapter> {
        let instance = Self::instance(opts);
        #[cfg(not(target_arch = "wasm32"))]
        {
            instance.enumerate_adapters(opts.backends.unwrap_or(wgpu::Backends::all())).await
        }
        #[cfg(target_arch = "wasm32")]
        {
            instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    ..Default::default()
                })
                .await
                .into_iter()
                .collect()
        }
    }

    fn instance(opts: &GpuOptions) -> wgpu::Instance {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = opts.backends.unwrap_or(wgpu::Backends::all());
        wgpu::Instance::new(desc)
    }

    /// Chooses an adapter (best discrete GPU first, or by name) and opens a device with its limits.
    pub async fn new(opts: &GpuOptions) -> Result<Self> {
        let mut adapters = Self::adapters(opts).await;
        if let Some(name) = &opts.adapter_name {
            let want = name.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            Error::NoAdapter(match &opts.adapter_name {
                Some(n) => format!(" matching {n:?}"),
                None => " (install a Vulkan/Metal/DX12 driver; on Linux without a GPU: \
                         apt-get install mesa-vulkan-drivers libvulkan1)"
                    .to_string(),
            })
        })?;
        Self::from_adapter(adapter, opts).await
    }

    /// Opens a device on each adapter of `indices` (positions in [`GpuContext::adapters`], as
    /// `inferno info` lists them), for a model split over several GPUs; an index given twice
    /// opens two devices on one adapter (how the split is tested without two GPUs).
    pub async fn open_indices(opts: &GpuOptions, indices: &[usize]) -> Result<Vec<Self>> {
        let adapters = Self::adapters(opts).await;
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            let a = adapters.get(i).ok_or_else(|| {
                Error::NoAdapter(format!(" number {i} (this machine lists {}: see `inferno info`)", adapters.len()))
            })?;
            out.push(Self::from_adapter(a.clone(), opts).await?);
        }
        Ok(out)
    }

    /// Blocking form of [`GpuContext::new`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(opts: &GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new(opts))
    }

    /// Opens a device on a chosen adapter.
    pub async fn from_adapter(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Self> {
        let info = adapter.get_info();
        let mut features = adapter.features() & WANTED;
        let limits = adapter.limits();
        let coopmat = !cfg!(target_arch = "wasm32")
            && !opts.no_coopmat
            && !opts.force_bf16
            && adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && features.contains(wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 32
            && info.subgroup_max_size == 32
            && adapter.cooperative_matrix_properties().iter().any(|m| {
                (m.m_size, m.n_size, m.k_size) == (16, 16, 16)
                    && m.ab_type == wgpu::CooperativeScalarType::F16
                    && m.cr_type == wgpu::CooperativeScalarType::F32
            });
        if coopmat {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("inferno"),
                required_features: features,
                required_limits: limits.clone(),
                // SAFETY: the one experimental feature requested is cooperative matrices, used by
                // matmul_gemm_coop only, whose results the kernel tests check where it runs.
                experimental_features: if coopmat {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                // Blocks of at most 64 MiB shared by small buffers; every larger buffer gets its own
                // allocation. (Performance's 256 MiB blocks strand the tail of each block a
                // 160 MiB q/k/v weight half fills: about 7 GiB over a 70B model's 80 layers.)
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Device { adapter: info.name.clone(), reason: e.to_string() })?;
        let act = if features.contains(wgpu::Features::SHADER_F16) && !opts.force_bf16 {
            ActDtype::F16
        } else {
            ActDtype::Bf16
        };
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut f) = f.lock() {
                f.get_or_insert(format!("device lost ({reason:?}): {msg}"));
            }
        });
        let f = fault.clone();
        // (wgpu's default handler panics; an error outside an error scope ends the request instead)
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut f) = f.lock() {
                f.get_or_insert(e.to_string());
            }
        }));
        let device_max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_binding = opts.max_binding_override.map_or(device_max, |o| o.min(device_max));
        // Not in browsers yet: their WGSL compilers want `enable subgroups;` and check subgroup
        // uniformity, and no browser in CI offers subgroups to test that path.
        let subgroups =
            !cfg!(target_arch = "wasm32") && features.contains(wgpu::Features::SUBGROUP) && !opts.no_subgroups;
        // Not in browsers yet either (WGSL's packed dot products are a language extension there),
        // nor on software adapters unless forced: lavapipe decodes SmolLM2 Q4_1 ~15% slower with
        // them (0.4-0.6 vs 0.5-0.7 tok/s on 2 busy cores, 2026-12-03)
        let software = info.device_type == wgpu::DeviceType::Cpu && !opts.force_int8_dot;
        let int8_dot = !cfg!(target_arch = "wasm32") && !opts.no_int8_dot && !software;
        let gemm_prefetch = opts.gemm_prefetch.unwrap_or(info.device_type != wgpu::DeviceType::Cpu);
        Ok(GpuContext {
            device,
            queue,
            info,
            features,
            limits,
            act,
            max_binding,
            subgroups,
            gemm_prefetch,
            w8a8_f16: opts.w8a8_f16_gemm,
            coopmat: Arc::new(AtomicBool::new(coopmat)),
            int8_dot,
            pipelines: Arc::default(),
            dequant_scratch: Arc::default(),
            dequant_want: Arc::default(),
            split_scratch: Arc::default(),
            fault,
        })
    }

    /// Whether the prefill GEMM of f16/bf16 weights runs on matrix cores (cooperative matrices).
    pub fn coopmat(&self) -> bool {
        self.coopmat.load(Ordering::Relaxed)
    }

    /// Whether W8A8 prompts take the f16 GEMMs on their int8 codes (ops::w8a8) rather than the
    /// int8 GEMM: by default where the prefill GEMM runs on matrix cores (H200, pp512, 2026-12-04:
    /// 1B 27,300 tok/s on the int8 GEMM, 48,500-48,700 on codes, bf16 48,600-49,400; 8B 10,855 on
    /// codes, bf16 10,621), else as [`GpuOptions::w8a8_f16_gemm`] says.
    pub fn w8a8_f16_gemm(&self) -> bool {
        self.w8a8_f16.unwrap_or_else(|| self.coopmat())
    }

    /// A software adapter: Vulkan or WebGPU on the CPU (lavapipe, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A software adapter without subgroups (SwiftShader, as browsers offer it): every workgroup
    /// barrier there switches each invocation in turn, so decode GEMVs give a row to one
    /// invocation instead of reducing across lanes (SmolLM2 Q4_1 on SwiftShader, one decode step:
    /// 32 s with 32-lane rows and the fused norm-GEMV, see ops::matmul).
    pub fn barriers_costly(&self) -> bool {
        self.is_software() && !self.subgroups
    }

    /// The pipeline of a matrix-core kernel (`*_coop`) that `build` makes, or None where the
    /// context has none in use — or the driver cannot compile it: then matrix cores are off for
    /// this device from here on (a warning once), and the caller takes its portable kernel.
    pub fn coop_pipeline(&self, build: impl FnOnce() -> Result<Arc<Kernel>>) -> Option<Arc<Kernel>> {
        if !self.coopmat() {
            return None;
        }
        match build() {
            Ok(p) => Some(p),
            Err(e) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| eprintln!("warning: matrix-core kernels unavailable, using the portable ones ({e})"));
                self.coopmat.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// A human-readable report: adapter, backend, features, limits, activation path.
    pub fn report(&self) -> String {
        let l = &self.limits;
        format!(
            "adapter: {} ({:?}, {:?})\ndriver: {} {}\nfeatures: shader-f16={} subgroup={} timestamp-query={}\n\
             activations: {}\nsubgroup kernels: {}\nmatrix-core GEMM (cooperative matrix): {}\nmax_storage_buffer_binding_size: {}\nmax_buffer_size: {}\n\
             max_compute_workgroup_storage_size: {}\nmax_compute_invocations_per_workgroup: {}\n\
             max_storage_buffers_per_shader_stage: {}\nengine binding limit: {}",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info,
            self.features.contains(wgpu::Features::SHADER_F16),
            self.features.contains(wgpu::Features::SUBGROUP),
            self.features.contains(wgpu::Features::TIMESTAMP_QUERY),
            self.act.name(),
            self.subgroups,
            self.coopmat(),
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage,
            self.max_binding,
        )
    }

    /// A compute pipeline for kernel `name` with these override constants (cached).
    /// `ACT_F16` is always set from the context's activation path.
    pub fn pipeline(&self, name: &str, constants: &[(&str, f64)]) -> Result<Arc<Kernel>> {
        self.pipeline_with(name, constants, true)
    }

    /// [`GpuContext::pipeline`] without naga's index bounds checks (a clamp or a guard around
    /// every array access), for kernels where they cost measurable speed.
    ///
    /// # Safety
    /// Every index the kernel takes with these constants, and with the params and buffers its
    /// op gives it, must be in bounds: an access out of bounds is undefined behaviour on the GPU.
    pub unsafe fn pipeline_unchecked(&self, name: &str, constants: &[(&str, f64)]) -> Result<Arc<Kernel>> {
        self.pipeline_with(name, constants, false)
    }

    fn pipeline_with(&self, name: &str, constants: &[(&str, f64)], bounds_checks: bool) -> Result<Arc<Kernel>> {
        let mut all: Vec<(&str, f64)> = vec![("ACT_F16", self.act.wgsl_is_f16())];
        all.extend_from_slice(constants);
        let key = format!("{name}{all:?}{bounds_checks}");
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        if !KERNELS.iter().any(|&(n, _)| n == name) {
            return Err(Error::Invalid(format!("no kernel named {name}")));
        }
        // a driver that rejects a kernel (validation, or an internal error: its compiler failed)
        // is an error naming it, not a panic in wgpu's handler
        #[cfg(not(target_arch = "wasm32"))]
        let scopes = [
            self.device.push_error_scope(wgpu::ErrorFilter::Validation),
            self.device.push_error_scope(wgpu::ErrorFilter::Internal),
        ];
        // natively the module specialized for these constants (gpu::specialize), with the
        // constants it still names; in the browser the WGSL
        let (source, bindings, constants) = self.shader(name, &all)?;
        let desc = wgpu::ShaderModuleDescriptor { label: Some(name), source };
        // naga's loop bounding (a counter in every loop, against infinite loops) costs 3-5% of
        // 8B decode on the H100 (2026-11-28): off for every kernel, whose loops all run to bounds
        // taken from their params (checked by their ops)
        let checks = wgpu::ShaderRuntimeChecks {
            bounds_checks,
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        // SAFETY: the loops end (above); unchecked indexing only where the op has promised that
        // every index is in bounds (`pipeline_unchecked`).
        let module = unsafe { self.device.create_shader_module_trusted(desc, checks) };
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        // A driver compiler's failure (NVIDIA: "NVVM compilation failed") may leave an invalid
        // pipeline without raising an error; touching its layout raises one inside the scopes.
        #[cfg(not(target_arch = "wasm32"))]
        let _ = pipeline.get_bind_group_layout(0);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let errors: Vec<wgpu::Error> =
                scopes.into_iter().rev().filter_map(|s| pollster::block_on(s.pop())).collect();
            if let Some(e) = errors.first() {
                // on a lost device every pipeline is invalid: say that, not which kernel
                let _ = self.device.poll(wgpu::PollType::Poll);
                self.check_fault()?;
                return Err(Error::Gpu { what: format!("compiling kernel {name} {all:?}"), reason: e.to_string() });
            }
        }
        let kernel = Arc::new(Kernel { pipeline, bindings });
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(key, kernel.clone());
        Ok(kernel)
    }

    /// The buffer the prompt GEMMs decode block-format weight rows into (f16, see
    /// ops::dequant): [`DEQUANT_SCRATCH`] bytes, or what [`GpuContext::want_dequant_scratch`]
    /// asked for if less, within the binding limit; made on first use and shared by every matmul
    /// of this device (their dispatches run one after another).
    pub fn dequant_scratch(&self) -> Result<wgpu::Buffer> {
        let want = self.dequant_want.load(Ordering::Relaxed);
        let bytes = if want == 0 { DEQUANT_SCRATCH } else { want.min(DEQUANT_SCRATCH) };
        self.scratch(&self.dequant_scratch, "dequantized weight rows", bytes)
    }

    /// Notes that a weight of `rows x cols` block-format values may be decoded into the dequant
    /// scratch, which then holds the largest such weight in f16 (rows rounded up to 128), up to
    /// [`DEQUANT_SCRATCH`]: a small model's scratch stays small. Call before the first prompt.
    pub fn want_dequant_scratch(&self, rows: usize, cols: usize) {
        let bytes = (rows.next_multiple_of(128) * cols * 2) as u64;
        self.dequant_want.fetch_max(bytes, Ordering::Relaxed);
    }

    /// The buffer the matrix-core GEMMs write the f32 partial sums of their K splits into
    /// (ops::matmul): [`SPLIT_SCRATCH`] bytes or the binding limit, made on first use and shared
    /// as [`GpuContext::dequant_scratch`] is.
    pub fn split_scratch(&self) -> Result<wgpu::Buffer> {
        self.scratch(&self.split_scratch, "split-K partial sums", SPLIT_SCRATCH)
    }

    /// The buffer in `cell`, made on first use with `bytes` or the binding limit.
    fn scratch(&self, cell: &Mutex<Option<wgpu::Buffer>>, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let mut s = cell.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &*s {
            return Ok(b.clone());
        }
        let b = self.storage(label, bytes.min(self.max_binding))?;
        *s = Some(b.clone());
        Ok(b)
    }

    /// Bytes of the scratch buffers made so far ([`GpuContext::dequant_scratch`],
    /// [`GpuContext::split_scratch`]; 0 before a matmul needed one), for the memory ledger.
    pub fn scratch_bytes(&self) -> u64 {
        [&self.dequant_scratch, &self.split_scratch]
            .iter()
            .filter_map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|b| b.size()))
            .sum()
    }

    /// The shader of pipeline `name` with override values `all`, the bindings it uses and the
    /// values to give wgpu: natively the module specialized for them (gpu::specialize), in the
    /// browser the WGSL (which the browser compiles itself).
    fn shader<'a>(&self, name: &str, all: &[(&'a str, f64)]) -> Result<ShaderParts<'a>> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (module, bindings) = specialize::specialize(name, all)
                .map_err(|reason| Error::Gpu { what: format!("specializing kernel {name} {all:?}"), reason })?;
            let named = |k: &str| module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(k));
            let left = all.iter().filter(|(k, _)| named(k)).copied().collect();
            Ok((wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)), bindings, left))
        }
        #[cfg(target_arch = "wasm32")]
        {
            let source = kernel_source(name).unwrap_or_default(); // (the caller checked the name)
            let bindings = shaders::static_bindings(&source).unwrap_or(u64::MAX);
            Ok((wgpu::ShaderSource::Wgsl(source.into()), bindings, all.to_vec()))
        }
    }

    /// A storage buffer of `bytes` bytes (rounded up to 16, so kernels may bind it as
    /// `array<vec4<u32>>`), zero-filled by wgpu.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_size(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.div_ceil(16).max(1) * 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 16 bytes).
    pub fn storage_init(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        self.storage_fill(label, data.len(), |write| write(0, data))
    }

    /// A storage buffer of `len` bytes (rounded up to 16) that `fill` writes straight into the
    /// mapped memory (no intermediate host copy), calling `write(offset, bytes)` for each piece.
    pub fn storage_fill(
        &self,
        label: &str,
        len: usize,
        fill: impl FnOnce(&mut dyn FnMut(usize, &[u8])),
    ) -> Result<wgpu::Buffer> {
        self.check_size(label, len as u64)?;
        let size = (len as u64).div_ceil(16).max(1) * 16;
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        {
            let mut view = buf
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| Error::Gpu { what: label.to_string(), reason: e.to_string() })?;
            // The padding bytes stay zero: wgpu zero-initialises new buffers.
            fill(&mut |offset, bytes| view.slice(offset..offset + bytes.len()).copy_from_slice(bytes));
        }
        buf.unmap();
        Ok(buf)
    }

    /// Submits the uploads written so far and waits for them, so that wgpu frees their staging
    /// memory: a buffer filled at creation is copied from host-visible staging memory at the next
    /// submit, so a model loaded without submits would hold its whole size in staging (70B bf16
    /// on a 141 GiB H200: out of memory).
    pub fn flush_uploads(&self) {
        let done = self.queue.submit(std::iter::empty());
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Wait { submission_index: Some(done), timeout: None });
        #[cfg(target_arch = "wasm32")]
        let _ = done;
    }

    /// A uniform buffer holding a params struct.
    /// (Written through the queue, not a mapping: on a lost device this records an error for
    /// [`GpuContext::check_fault`] where a mapping would panic.)
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(params);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).div_ceil(16).max(1) * 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buf, 0, bytes);
        buf
    }

    fn check_size(&self, label: &str, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::OutOfMemory {
                what: format!("{label} (larger than the adapter's max_buffer_size {})", self.limits.max_buffer_size),
                bytes,
            });
        }
        Ok(())
    }

    /// Runs `f` (buffer creations of about `bytes` in all) inside an out-of-memory error scope,
    /// so running out of GPU memory is an [`Error::OutOfMemory`] naming `what` and its size
    /// instead of a panic in wgpu's default handler. On wasm the scope cannot be awaited synchronously; there `f` runs as is.
    pub fn guard_oom<T>(&self, what: &str, bytes: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let out = f();
            if let Some(e) = pollster::block_on(scope.pop()) {
                const GIB: f64 = (1u64 << 30) as f64;
                let held = match self.device.generate_allocator_report() {
                    Some(r) => format!(
                        " (this device held {:.2} GiB in {} allocations, {:.2} GiB reserved)",
                        r.total_allocated_bytes as f64 / GIB,
                        r.allocations.len(),
                        r.total_reserved_bytes as f64 / GIB
                    ),
                    None => String::new(),
                };
                return Err(Error::OutOfMemory { what: format!("{what}: {e}{held}"), bytes });
            }
            out
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (what, bytes);
            f()
        }
    }

    /// Copies `bytes` bytes from the start of `buf` back to the host.
    pub async fn read(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.staging("readback", bytes);
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, staging.size());
        let done = self.queue.submit([enc.finish()]);
        self.map_read(&staging, bytes, Some(done)).await
    }

    /// A host-readable buffer of at least `bytes` bytes (copy destination).
    pub fn staging(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.div_ceil(4).max(1) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Waits for submission `done` (None: the latest; later ones may still run), maps `staging`
    /// and returns its first `bytes` bytes (native: blocks in `poll`; wasm: awaits the
    /// `map_async` callback).
    pub async fn map_read(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
        done: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<u8>> {
        self.check_fault()?;
        let (tx, rx) = futures::channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        // a device fault explains a failed map better than the map's own error
        let gpu_err = |reason: String| match self.check_fault() {
            Err(e) => e,
            Ok(()) => Error::Gpu { what: "readback".into(), reason },
        };
        #[cfg(target_arch = "wasm32")]
        let _ = done; // the browser runs the queue; the callback comes when the copy is done
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait { submission_index: done, timeout: None })
            .map_err(|e| gpu_err(e.to_string()))?;
        rx.await.map_err(|e| gpu_err(e.to_string()))?.map_err(|e| gpu_err(e.to_string()))?;
        self.check_fault()?;
        let view = staging.get_mapped_range(..).map_err(|e| gpu_err(e.to_string()))?;
        let out = view.get(..bytes as usize).ok_or_else(|| gpu_err("short readback".into()))?.to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// The device's first loss or uncaptured error, as an error (Ok while it is healthy).
    pub fn check_fault(&self) -> Result<()> {
        match self.fault.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => Err(Error::Gpu { what: "the GPU device".into(), reason }),
            None => Ok(()),
        }
    }

    /// Blocking [`GpuContext::read`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        pollster::block_on(self.read(buf, bytes))
    }
}

/// Splits a 1-D workgroup count into x/y so that neither exceeds 65,535; shaders rebuild the
/// linear id as `wid.x + wid.y * nwg.x` and return past `count`.
pub fn fold_workgroups(count: u32) -> [u32; 3] {
    const MAX: u32 = 65_535;
    if count <= MAX {
        [count.max(1), 1, 1]
    } else {
        [MAX, count.div_ceil(MAX), 1]
    }
}
