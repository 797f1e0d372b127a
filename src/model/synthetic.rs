//! Checkpoints without a file: a model shape (a [`preset`](super::config::preset)) with seeded
//! random weights in a chosen format, generated tensor by tensor as the loader asks for them, so
//! the engine can be measured on models whose files fit neither the disk nor the RAM
//! (`inferno bench --shape llama-3.1-70b --dtype bf16`). Weights have std ~0.02 (block formats:
//! random codes, scale fields set to match); norms are ones. Random weights run exactly as fast
//! as trained ones and are no use for accuracy.

use super::gguf::{self, GgmlType};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The formats `--dtype` takes: one GGUF type for every matrix, or a llama.cpp-like mix
/// `*_m` (the larger type on the embedding, output, attn_v and ffn_down).
pub const MIXES: &[&str] = &[
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl",
    "iq4_xs", "iq3_xxs", "iq3_s", "iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m", "tq1_0", "tq2_0", "mxfp4", "nvfp4",
    "q4_k_m", "q5_k_m", "q3_k_m", "q2_k_m", "iq4_xs_m",
];

/// Bytes of random blocks per type, tiled over every tensor of that type.
const POOL: usize = 16 << 20;

/// Standard deviation of the generated weights.
const STD: f32 = 0.02;

/// Makes the tensors of a generated checkpoint.
pub struct Generator {
    /// The mix's name.
    pub mix: String,
    base: GgmlType,
    big: GgmlType,
    seed: u64,
    pools: Mutex<HashMap<GgmlType, Arc<Vec<u8>>>>,
}

impl Generator {
    /// A generator of the mix `mix` (one of [`MIXES`]).
    pub fn new(mix: &str, seed: u64) -> Result<Self> {
        let ty = |n: &str| GgmlType::by_name(n).ok_or_else(|| unknown(mix));
        let (base, big) = match mix {
            "q4_k_m" => (ty("q4_k")?, ty("q6_k")?),
            "q5_k_m" => (ty("q5_k")?, ty("q6_k")?),
            "q3_k_m" => (ty("q3_k")?, ty("q4_k")?),
            "q2_k_m" => (ty("q2_k")?, ty("q4_k")?),
            "iq4_xs_m" => (ty("iq4_xs")?, ty("q6_k")?),
            m if MIXES.contains(&m) => (ty(m)?, ty(m)?),
            _ => return Err(unknown(mix)),
        };
        Ok(Generator { mix: mix.to_string(), base, big, seed, pools: Mutex::new(HashMap::new()) })
    }

    /// The type of a matrix with rows of `row` elements (`big`: the mix's larger type), falling
    /// back as llama.cpp does where the row is not a whole number of blocks (Q4_K -> Q5_0 ...,
    /// then f16).
    pub fn matrix_type(&self, big: bool, row: usize) -> GgmlType {
        let ty = if big { self.big } else { self.base };
        if row.is_multiple_of(ty.block().0) {
            return ty;
        }
        let fallback = match ty {
            GgmlType::Q4K => GgmlType::Q5_0,
            GgmlType::Q5K => GgmlType::Q5_1,
            GgmlType::Q6K => GgmlType::Q8_0,
            t if t.block().0 == 256 => GgmlType::Iq4Nl,
            t => t,
        };
        if row.is_multiple_of(fallback.block().0) {
            fallback
        } else {
            GgmlType::F16
        }
    }

    /// The bytes of tensor `name` of type `ty` with `n` elements (1-D f32 tensors, the norms,
    /// are ones).
    pub fn bytes(&self, name: &str, ty: GgmlType, n: usize, one_dim: bool) -> Vec<u8> {
        if one_dim && ty == GgmlType::F32 {
            return 1.0f32.to_le_bytes().repeat(n);
        }
        let (be, bb) = ty.block();
        let len = n / be * bb;
        let pool = self.pool(ty);
        // each tensor starts at its own block of the pool (from the seed and its name)
        let blocks = pool.len() / bb;
        let h =
            name.bytes().fold(self.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let mut at = (h % blocks as u64) as usize * bb;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let take = (len - out.len()).min(pool.len() - at);
            out.extend_from_slice(&pool[at..at + take]);
            at = 0;
        }
        out
    }

    /// The random pool of one type (made once).
    fn pool(&self, ty: GgmlType) -> Arc<Vec<u8>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.entry(ty).or_insert_with(|| Arc::new(make_pool(ty, self.seed ^ ty.id() as u64))).clone()
    }
}

fn unknown(mix: &str) -> Error {
    Error::Invalid(format!("unknown weight format {mix:?} for generated weights (one of {})", MIXES.join(", ")))
}

/// POOL bytes of random `ty` data with std ~STD.
fn make_pool(ty: GgmlType, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // uniform in [-a, a] has std a / sqrt(3)
    let a = STD * 3f32.sqrt();
    let mut value = || rng.random_range(-a..a);
    match ty {
        GgmlType::F32 => (0..POOL / 4).flat_map(|_| value().to_le_bytes()).collect(),
        GgmlType::F16 => (0..POOL / 2).flat_map(|_| half::f16::from_f32(value()).to_le_bytes()).collect(),
        GgmlType::Bf16 => (0..POOL / 2).flat_map(|_| half::bf16::from_f32(value()).to_le_bytes()).collect(),
        _ => {
            let (_, bb) = ty.block();
            let blocks = POOL / bb;
            let mut raw: Vec<u8> = (0..blocks * bb).map(|_| rng.random()).collect();
            // FP4 codes (doubled E2M1, RMS ~5.85) with 8-bit scales of 2^-8 (E8M0 120; E4M3
            // subnormal 4 * 2^-10), halved as ggml decodes them: std ~0.023
            match ty {
                GgmlType::Mxfp4 => raw.chunks_exact_mut(bb).for_each(|b| b[0] = 120),
                GgmlType::Nvfp4 => raw.chunks_exact_mut(bb).for_each(|b| b[..4].fill(4)),
                _ => {}
            }
            let scales: Vec<f32> = (0..blocks).map(|_| rng.random_range(0.5e-3..1.5e-3f32)).collect();
            let put = |raw: &mut Vec<u8>, k: f32| {
                for (b, &d) in raw.chunks_exact_mut(bb).zip(&scales) {
                    let d = half::f16::from_f32(d * k);
                    for &o in ty.f16_scale_offsets() {
                        b[o..o + 2].copy_from_slice(&d.to_le_bytes());
                    }
                    if ty == GgmlType::Iq1M {
                        gguf::set_iq1m_d(b, d); // its d is spread over its scale fields
                    }
                }
            };
            put(&mut raw, 1.0);
            // scale so that the decoded values' RMS is STD (minimums included)
            let sample = gguf::dequantize(ty, &raw[..bb * blocks.min(4096)]);
            let ms = sample.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / sample.len() as f64;
            if ms > 0.0 {
                put(&mut raw, STD / ms.sqrt() as f32);
            }
            raw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mix_has_finite_scales_and_the_intended_spread() {
        for &mix in MIXES {
            let g = Generator::new(mix, 7).unwrap();
            for big in [false, true] {
                let ty = g.matrix_type(big, 512);
                let bytes = g.bytes("blk.0.attn_q.weight", ty, 512 * 64, false);
                assert_eq!(bytes.len(), 512 * 64 / ty.block().0 * ty.block().1, "{mix}");
                assert_eq!(ty.first_non_finite_block(&bytes), None, "{mix}");
                let v = gguf::dequantize(ty, &bytes);
                let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
                assert!((0.01..0.04).contains(&std), "{mix} {ty:?}: std {std}");
                // the same name and seed give the same bytes
                assert_eq!(bytes, g.bytes("blk.0.attn_q.weight", ty, 512 * 64, false));
            }
        }
        assert!(Generator::new("q9_z", 0).is_err());
    }

    #[test]
    fn rows_that_are_not_whole_blocks_fall_back() {
        let g = Generator::new("q4_k_m", 0).unwrap();
        assert_eq!(g.matrix_type(false, 4096), GgmlType::Q4K);
        assert_eq!(g.matrix_type(true, 4096), GgmlType::Q6K);
        assert_eq!(g.matrix_type(false, 576), GgmlType::Q5_0);
        assert_eq!(g.matrix_type(true, 576), GgmlType::Q8_0);
        assert_eq!(g.matrix_type(false, 24), GgmlType::F16);
    }
}
