//! The WGSL sources. Every kernel is compiled as `common.wgsl` (value helpers, the `ACT_F16`
//! override), then `reduce.wgsl` for the kernels that reduce across one workgroup,
//! `weights.wgsl` for kernels that read weights (and `gemv_norm_common.wgsl` for the fused norm-GEMVs,
//! `matmul_out.wgsl` for every matmul, `matmul_common.wgsl` for the float-activation GEMV and
//! GEMMs, `matmul_coop_common.wgsl` for the matrix-core ones), `rope_epilogue.wgsl` for the GEMVs
//! with a RoPE epilogue, then the kernel's own file.

/// Shared helpers prepended to every kernel.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// Weight decoding (all dtypes and block formats), prepended to kernels that read weights.
pub const WEIGHTS: &str = include_str!("../../shaders/weights.wgsl");

/// Workgroup reductions (sum, max) for the kernels that declare their workgroup size `WG`.
pub const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// How every matmul kernel writes its result (`OUT_MODE`, `store2`).
pub const MATMUL_OUT: &str = include_str!("../../shaders/matmul_out.wgsl");

/// The interface of the float-activation matmuls (`matmul_gemv`, `matmul_gemm`, `matmul_*_coop`):
/// parameters and bindings, after [`MATMUL_OUT`].
pub const MATMUL_COMMON: &str = include_str!("../../shaders/matmul_common.wgsl");

/// Weight staging shared by the matrix-core matmuls (`matmul_*_coop`), after [`MATMUL_COMMON`].
pub const MATMUL_COOP_COMMON: &str = include_str!("../../shaders/matmul_coop_common.wgsl");

/// The interface shared by the fused norm-GEMV kernels (`matmul_gemv_norm*`).
pub const GEMV_NORM_COMMON: &str = include_str!("../../shaders/gemv_norm_common.wgsl");

/// RoPE and the KV append as a decode q/k/v GEMV's epilogue, prepended to [`ROPE_KERNELS`].
pub const ROPE_EPILOGUE: &str = include_str!("../../shaders/rope_epilogue.wgsl");

/// Kernels with the RoPE epilogue (override `ROPE`).
const ROPE_KERNELS: &[&str] = &["matmul_gemv_norm_sg", "matmul_gemv_q8", "matmul_skinny_coop"];

/// Kernels that read a weight at @binding(2) through weights.wgsl.
const READS_WEIGHTS: &[&str] = &[
    "matmul_gemv",
    "matmul_gemv_q8",
    "matmul_gemm",
    "matmul_gemm_coop",
    "matmul_skinny_coop",
    "matmul_gemv_norm",
    "matmul_gemv_norm_sg",
    "rms_norm",
    "embedding",
    "dequant_f16",
];

/// Every kernel: (name, source of shaders/{name}.wgsl).
pub const KERNELS: &[(&str, &str)] = &[
    ("matmul_gemv", include_str!("../../shaders/matmul_gemv.wgsl")),
    ("matmul_gemv_q8", include_str!("../../shaders/matmul_gemv_q8.wgsl")),
    ("matmul_gemm", include_str!("../../shaders/matmul_gemm.wgsl")),
    ("matmul_gemm_coop", include_str!("../../shaders/matmul_gemm_coop.wgsl")),
    ("matmul_skinny_coop", include_str!("../../shaders/matmul_skinny_coop.wgsl")),
    ("matmul_gemv_norm", include_str!("../../shaders/matmul_gemv_norm.wgsl")),
    ("matmul_gemv_norm_sg", include_str!("../../shaders/matmul_gemv_norm_sg.wgsl")),
    ("rms_norm", include_str!("../../shaders/rms_norm.wgsl")),
    ("rope", include_str!("../../shaders/rope.wgsl")),
    ("attention", include_str!("../../shaders/attention.wgsl")),
    ("attention_coop", include_str!("../../shaders/attention_coop.wgsl")),
    ("attention_combine", include_str!("../../shaders/attention_combine.wgsl")),
    ("swiglu", include_str!("../../shaders/swiglu.wgsl")),
    ("embedding", include_str!("../../shaders/embedding.wgsl")),
    ("argmax", include_str!("../../shaders/argmax.wgsl")),
    ("gather_rows", include_str!("../../shaders/gather_rows.wgsl")),
    ("argmax_finish", include_str!("../../shaders/argmax_finish.wgsl")),
    ("quant_act", include_str!("../../shaders/quant_act.wgsl")),
    ("matmul_w8a8", include_str!("../../shaders/matmul_w8a8.wgsl")),
    ("matmul_w8a8_gemm", include_str!("../../shaders/matmul_w8a8_gemm.wgsl")),
    ("dequant_f16", include_str!("../../shaders/dequant_f16.wgsl")),
    ("matmul_split_sum", include_str!("../../shaders/matmul_split_sum.wgsl")),
];

/// The full source of kernel `name` (common helpers, weight decoding if it reads weights, the
/// kernel), or None. Kernels named `*_sg` use subgroup operations (native adapters with
/// `SUBGROUP`; naga needs no `enable subgroups;` directive and does not parse it yet); kernels
/// named `*_coop` use cooperative matrices and f16 values (native adapters with
/// `EXPERIMENTAL_COOPERATIVE_MATRIX` and `SHADER_F16`), whose `enable` directives lead the source.
pub fn kernel_source(name: &str) -> Option<String> {
    let enables = if name.ends_with("_coop") { "enable f16;\nenable wgpu_cooperative_matrix;\n" } else { "" };
    let weights = if READS_WEIGHTS.contains(&name) { WEIGHTS } else { "" };
    let prelude: &[&str] = if name.starts_with("matmul_gemv_norm") {
        &[GEMV_NORM_COMMON]
    } else if name.starts_with("matmul_") && name.ends_with("_coop") {
        &[MATMUL_OUT, MATMUL_COMMON, MATMUL_COOP_COMMON]
    } else if name == "matmul_gemv" || name == "matmul_gemm" {
        &[MATMUL_OUT, MATMUL_COMMON]
    } else if name.starts_with("matmul_") {
        &[MATMUL_OUT] // the int8-activation GEMV, the W8A8 kernels, the split-K sum
    } else {
        &[]
    };
    let prelude = prelude.join("\n");
    let rope = if ROPE_KERNELS.contains(&name) { ROPE_EPILOGUE } else { "" };
    let reduce = if ["rms_norm", "quant_act", "attention", "attention_combine"].contains(&name) { REDUCE } else { "" };
    KERNELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| format!("{enables}{COMMON}\n{reduce}\n{weights}\n{prelude}\n{rope}\n{src}"))
}

/// The bindings (of group 0, as a bit mask) the entry point `main` of this WGSL statically uses,
/// as a browser's automatic pipeline layout counts them (globals its call graph reaches, whatever
/// the override values); None where naga cannot parse it. (Natively, gpu::specialize gives the
/// bindings of the specialized module instead.)
#[cfg(any(target_arch = "wasm32", test))]
pub fn static_bindings(source: &str) -> Option<u64> {
    let mut m = naga::front::wgsl::parse_str(source).ok()?;
    naga::compact::compact(&mut m, naga::compact::KeepUnused::No);
    let used = m.global_variables.iter().filter_map(|(_, g)| g.binding.as_ref());
    Some(used.filter(|b| b.group == 0 && b.binding < 64).fold(0u64, |mask, b| mask | 1 << b.binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The browser's layouts: the GEMV binds no W8A8 token scales, the portable GEMM does (its
    /// W_DTYPE 6 epilogue, binding 9), the split sum its scales.
    #[test]
    fn static_bindings_match_what_kernels_reach() {
        let of = |name: &str| kernel_source(name).and_then(|s| static_bindings(&s));
        assert_eq!(of("matmul_gemv"), Some(0b1111));
        assert_eq!(of("matmul_gemm"), Some(0b10_0000_1111));
        assert_eq!(of("matmul_split_sum"), Some(0b1_1111));
    }
}
