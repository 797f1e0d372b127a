//! A kernel's naga module specialized for one pipeline before the driver sees it: override
//! constants resolved (naga's own pass), then every `if` on a constant condition and every
//! `switch` on a constant selector replaced by the branch taken, and what no longer has a use
//! dropped. weights.wgsl decodes every weight format behind `switch W_DTYPE`; unspecialized,
//! each pipeline hands the driver all ~30 decoders, and a driver whose compiler front end runs
//! before its dead-code elimination translates them all. Used on every native adapter (the
//! browser compiles the WGSL itself). lavapipe, 2 cores, 2026-12-03, the shader cache warm as it
//! is between runs: kernel tests 178 -> 52 s, golden tests 76 -> 62 s, SmolLM2 tests 173 -> 148 s
//! (with Mesa's cache off, golden 278 -> 249 s). H200, the same day: `bench --shape llama-3.2-1b
//! --dtype q4_k_m -p 512 -n 32 -r 1` 3.50 -> 2.62 s from start to exit, decode unchanged (852 /
//! 860 tok/s); its kernel tests pass on the specialized modules.

use super::kernel_source;
use naga::{Block, Expression, Literal, Module, Statement, SwitchValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A kernel source parsed and validated.
type Parsed = Arc<(Module, naga::valid::ModuleInfo)>;

/// Kernel `name`'s source (gpu::kernel_source) parsed and validated, once per process (then
/// specialized per pipeline).
fn parsed(name: &str) -> Result<Parsed, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Parsed>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(p) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
        return Ok(p.clone());
    }
    let source = &kernel_source(name).ok_or_else(|| format!("no kernel named {name}"))?;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    let info = validator.validate(&module).map_err(|e| e.emit_to_string(source))?;
    let p = Arc::new((module, info));
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), p.clone());
    Ok(p)
}

/// The module of kernel `name` for entry point `main` with these override values, specialized,
/// and the bindings (of group 0) it still uses as a bit mask.
pub fn specialize(name: &str, constants: &[(&str, f64)]) -> Result<(Module, u64), String> {
    let parsed = parsed(name)?;
    let (module, info) = (&parsed.0, &parsed.1);
    let mut values = naga::back::PipelineConstants::default();
    for &(name, v) in constants {
        if module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(name)) {
            values.insert(name.to_string(), v);
        }
    }
    let entry = Some((naga::ShaderStage::Compute, "main"));
    let (resolved, _) =
        naga::back::pipeline_constants::process_overrides(module, info, entry, &values).map_err(|e| e.to_string())?;
    let mut m = resolved.into_owned();
    let mut functions = std::mem::take(&mut m.functions);
    // (named expressions are only names, but compaction keeps them alive: one in a dropped
    // branch would keep a call to a function that is gone)
    for (_, f) in functions.iter_mut() {
        prune(&m, &f.expressions, &mut f.body);
        f.named_expressions.clear();
    }
    m.functions = functions;
    let mut entry_points = std::mem::take(&mut m.entry_points);
    for ep in &mut entry_points {
        prune(&m, &ep.function.expressions, &mut ep.function.body);
        ep.function.named_expressions.clear();
    }
    m.entry_points = entry_points;
    naga::compact::compact(&mut m, naga::compact::KeepUnused::No);
    let bindings = m
        .global_variables
        .iter()
        .filter_map(|(_, g)| g.binding.as_ref())
        .filter(|b| b.group == 0 && b.binding < 64)
        .fold(0u64, |mask, b| mask | 1 << b.binding);
    Ok((m, bindings))
}

/// The literal value of expression `h`, where it is one (or a constant naming one).
fn literal(m: &Module, exprs: &naga::Arena<Expression>, h: naga::Handle<Expression>) -> Option<Literal> {
    match exprs[h] {
        Expression::Literal(l) => Some(l),
        Expression::Constant(c) => match m.global_expressions[m.constants[c].init] {
            Expression::Literal(l) => Some(l),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `block` holds a `break` that leaves an enclosing switch or loop (one not inside a
/// nested loop or switch of its own): a switch case holding one cannot be inlined.
fn breaks_out(block: &Block) -> bool {
    block.iter().any(|s| match s {
        Statement::Break => true,
        Statement::Block(b) => breaks_out(b),
        Statement::If { accept, reject, .. } => breaks_out(accept) || breaks_out(reject),
        _ => false,
    })
}

/// Replaces, in `block` and the blocks nested in it, each decided `if` / `switch` by the block
/// it takes.
fn prune(m: &Module, exprs: &naga::Arena<Expression>, block: &mut Block) {
    let old = std::mem::take(block);
    for (s, span) in old.span_into_iter() {
        let s = match s {
            Statement::If { condition, mut accept, mut reject } => match literal(m, exprs, condition) {
                Some(Literal::Bool(c)) => {
                    let mut taken = if c { accept } else { reject };
                    prune(m, exprs, &mut taken);
                    Statement::Block(taken)
                }
                _ => {
                    prune(m, exprs, &mut accept);
                    prune(m, exprs, &mut reject);
                    Statement::If { condition, accept, reject }
                }
            },
            Statement::Switch { selector, mut cases } => {
                let value = match literal(m, exprs, selector) {
                    Some(Literal::U32(v)) => Some(SwitchValue::U32(v)),
                    Some(Literal::I32(v)) => Some(SwitchValue::I32(v)),
                    _ => None,
                };
                // the case taken: the first whose value matches, else the default; then the
                // cases it falls through to
                let first = value.and_then(|v| {
                    cases
                        .iter()
                        .position(|c| c.value == v)
                        .or_else(|| cases.iter().position(|c| c.value == SwitchValue::Default))
                });
                let taken = first.map(|i| {
                    let last = (i..cases.len()).find(|&j| !cases[j].fall_through).unwrap_or(cases.len() - 1);
                    let mut b = Block::new();
                    for c in &cases[i..=last] {
                        for (s, sp) in c.body.span_iter() {
                            b.push(s.clone(), *sp);
                        }
                    }
                    b
                });
                match taken {
                    Some(mut b) if !breaks_out(&b) => {
                        prune(m, exprs, &mut b);
                        Statement::Block(b)
                    }
                    _ => {
                        for c in &mut cases {
                            prune(m, exprs, &mut c.body);
                        }
                        Statement::Switch { selector, cases }
                    }
                }
            }
            Statement::Loop { mut body, mut continuing, break_if } => {
                prune(m, exprs, &mut body);
                prune(m, exprs, &mut continuing);
                Statement::Loop { body, continuing, break_if }
            }
            Statement::Block(mut b) => {
                prune(m, exprs, &mut b);
                Statement::Block(b)
            }
            s => s,
        };
        block.push(s, span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::KERNELS;

    /// Every kernel parses, validates and specializes to a valid module for both activation
    /// paths, every weight dtype, with and without its RoPE epilogue and in the GEMMs' tile
    /// shapes; and the weight decoders a dtype does not take are gone.
    #[test]
    fn every_kernel_specializes() {
        let stored = crate::model::gguf::STORED_TYPES.iter().map(|&t| crate::WeightDtype::Stored(t).wgsl_id());
        let dtypes: Vec<f64> = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0].into_iter().chain(stored).collect();
        for (name, _) in KERNELS {
            let src = kernel_source(name).unwrap();
            let full = naga::front::wgsl::parse_str(&src).unwrap();
            let named = |k: &str| full.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(k));
            let reads_weights = named("W_DTYPE");
            // the GEMMs' tile shapes beside their defaults: 128-token tiles, stages of 64 K (and K
            // split 4 ways), 64 columns (the skinny GEMM's: 64 columns, K split 4 ways)
            let tiles: &[&[(&str, f64)]] = match (named("BM"), named("BT"), *name == "matmul_gemm_coop") {
                (true, _, true) => &[
                    &[],
                    &[("BM", 128.0)],
                    &[("BM", 128.0), ("BK", 64.0)],
                    &[("BM", 128.0), ("BK", 64.0), ("SPLIT", 4.0)],
                ],
                _ if named("SPLIT") => &[&[], &[("BN", 64.0)], &[("SPLIT", 4.0)]],
                (true, _, false) => &[&[], &[("BM", 128.0)]],
                (_, true, _) => &[&[], &[("BT", 128.0)], &[("BT", 128.0), ("BN", 64.0)]],
                _ if named("SCALED") => &[&[], &[("SCALED", 1.0)]],
                _ if named("CODES") => &[&[], &[("CODES", 1.0), ("QUANT", 1.0)]],
                _ if named("QUANT") => &[&[], &[("QUANT", 1.0)]],
                _ => &[&[]],
            };
            for act_f16 in [0.0, 1.0] {
                for &w_dtype in if reads_weights { &dtypes[..] } else { &dtypes[..1] } {
                    for rope in [0.0, 1.0] {
                        for tile in tiles {
                            let mut c = vec![("ACT_F16", act_f16), ("W_DTYPE", w_dtype), ("ROPE", rope)];
                            c.extend_from_slice(tile);
                            let what = format!("{name} {c:?}");
                            let (m, bindings) = specialize(name, &c).unwrap_or_else(|e| panic!("{what}: {e}"));
                            naga::valid::Validator::new(
                                naga::valid::ValidationFlags::all(),
                                naga::valid::Capabilities::all(),
                            )
                            .validate(&m)
                            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                            assert!(bindings & 1 == 1, "{what}: no parameters bound");
                            if reads_weights && w_dtype == 7.0 {
                                assert!(
                                    m.functions.len() < full.functions.len() / 2,
                                    "{what}: {} functions left of {}",
                                    m.functions.len(),
                                    full.functions.len()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
