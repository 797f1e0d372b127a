//! Sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty; seeded and repeatable.

use rand::{rngs::StdRng, Rng, SeedableRng};

/// How to pick the next token from logits.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p x the most likely one (0 = off).
    pub min_p: f32,
    /// Penalty for tokens seen in the last `repeat_last_n` (1 = off), as in CTRL / transformers.
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed: the same seed gives the same text.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Checks every value is in its range: temperature >= 0, top_p in (0, 1], min_p in [0, 1],
    /// repetition penalty > 0 (all finite). The error names the parameter and the range.
    pub fn validate(&self) -> crate::Result<()> {
        let check = |name: &str, v: f32, ok: bool, range: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(crate::Error::Invalid(format!("{name} {v} is out of range: must be {range}")))
            }
        };
        check("temperature", self.temperature, self.temperature >= 0.0, ">= 0")?;
        check("top_p", self.top_p, self.top_p > 0.0 && self.top_p <= 1.0, "in (0, 1]")?;
        check("min_p", self.min_p, (0.0..=1.0).contains(&self.min_p), "in [0, 1]")?;
        check("repetition_penalty", self.repetition_penalty, self.repetition_penalty > 0.0, "> 0")
    }

    /// Whether this is plain argmax (the GPU does it, only the id comes back).
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 && self.repetition_penalty == 1.0
    }
}

/// A sampler with its own RNG.
pub struct Sampler {
    /// Its settings.
    pub params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    /// Picks a token from `logits` (V), penalising ids in `recent`.
    pub fn sample(&mut self, logits: &[f32], recent: &[u32]) -> u32 {
        let p = &self.params;
        let mut l = logits.to_vec();
        if p.repetition_penalty != 1.0 {
            let start = recent.len().saturating_sub(p.repeat_last_n);
            for &id in &recent[start..] {
                if let Some(x) = l.get_mut(id as usize) {
                    *x = if *x > 0.0 { *x / p.repetition_penalty } else { *x * p.repetition_penalty };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(&l);
        }
        // candidates sorted by logit, best first
        let mut idx: Vec<u32> = (0..l.len() as u32).filter(|&i| !l[i as usize].is_nan()).collect();
        idx.sort_unstable_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = l[idx[0] as usize];
        let mut probs: Vec<f32> = idx.iter().map(|&i| ((l[i as usize] - max) / p.temperature).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (j, &q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p.top_p {
                    keep = j + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = p.min_p * probs[0];
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        let total: f32 = probs[..keep].iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for j in 0..keep {
            r -= probs[j];
            if r <= 0.0 {
                return idx[j];
            }
        }
        idx[keep - 1]
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..50).map(|i| ((i * 37 % 50) as f32) * 0.1).collect()
    }

    fn draw(p: SamplingParams, n: usize) -> Vec<u32> {
        let mut s = Sampler::new(p);
        let l = logits();
        (0..n).map(|_| s.sample(&l, &[])).collect()
    }

    fn ranked() -> Vec<u32> {
        let l = logits();
        let mut idx: Vec<u32> = (0..l.len() as u32).collect();
        idx.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        idx
    }

    #[test]
    fn greedy_is_argmax() {
        assert!(draw(SamplingParams::default(), 10).iter().all(|&t| t == argmax(&logits())));
    }

    #[test]
    fn same_seed_same_tokens() {
        let p = SamplingParams { temperature: 1.0, seed: 42, ..Default::default() };
        assert_eq!(draw(p.clone(), 100), draw(p.clone(), 100));
        assert_ne!(draw(p.clone(), 100), draw(SamplingParams { seed: 43, ..p }, 100));
    }

    #[test]
    fn top_k_stays_inside_k() {
        let top3 = &ranked()[..3];
        let got = draw(SamplingParams { temperature: 5.0, top_k: 3, seed: 1, ..Default::default() }, 2000);
        assert!(got.iter().all(|t| top3.contains(t)));
        for t in top3 {
            assert!(got.contains(t), "every one of the k is drawn at a high temperature");
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // probabilities at temperature 1: the nucleus for p = 0.5 is the smallest prefix reaching 0.5
        let l = logits();
        let r = ranked();
        let max = l[r[0] as usize];
        let e: Vec<f32> = r.iter().map(|&i| (l[i as usize] - max).exp()).collect();
        let z: f32 = e.iter().sum();
        let mut acc = 0.0;
        let n = e
            .iter()
            .position(|x| {
                acc += x / z;
                acc >= 0.5
            })
            .unwrap()
            + 1;
        let got = draw(SamplingParams { temperature: 1.0, top_p: 0.5, seed: 2, ..Default::default() }, 3000);
        assert!(got.iter().all(|t| r[..n].contains(t)));
        assert!(r[..n].iter().all(|t| got.contains(t)));
    }

    #[test]
    fn min_p_drops_the_unlikely() {
        let l = logits();
        let max = l.iter().cloned().fold(f32::MIN, f32::max);
        let got = draw(SamplingParams { temperature: 1.0, min_p: 0.5, seed: 3, ..Default::default() }, 2000);
        assert!(got.iter().all(|&t| (l[t as usize] - max).exp() >= 0.5));
    }

    #[test]
    fn repetition_penalty_changes_the_choice() {
        let l = vec![1.0, 0.9, -1.0];
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 1.5, ..Default::default() });
        assert_eq!(s.sample(&l, &[]), 0);
        assert_eq!(s.sample(&l, &[0]), 1, "1.0/1.5 < 0.9");
        let l = vec![-0.5, -0.6];
        assert_eq!(s.sample(&l, &[0]), 1, "negative logits are multiplied: -0.75 < -0.6");
    }
}
