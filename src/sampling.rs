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
    ///
    /// Cost: O(V) plus a sort of only the candidates top-k / top-p / min-p need (a prefix of the
    /// ranking, grown until the nucleus fits), not of the whole vocabulary: a server samples a
    /// row of 128K logits per stream per step.
    pub fn sample(&mut self, logits: &[f32], recent: &[u32]) -> u32 {
        let p = &self.params;
        let mut l = std::borrow::Cow::Borrowed(logits);
        if p.repetition_penalty != 1.0 {
            let l = l.to_mut();
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
        let by_logit = |a: &u32, b: &u32| l[*b as usize].total_cmp(&l[*a as usize]);
        let mut idx: Vec<u32> = (0..l.len() as u32).filter(|&i| !l[i as usize].is_nan()).collect();
        if idx.is_empty() {
            return 0;
        }
        // idx[..sorted] is ranked best first; top-k keeps only its k, ranked
        let mut sorted = 0;
        if p.top_k > 0 {
            if p.top_k < idx.len() {
                idx.select_nth_unstable_by(p.top_k - 1, by_logit);
                idx.truncate(p.top_k);
            }
            idx.sort_unstable_by(by_logit);
            sorted = idx.len();
        }
        let max = idx.iter().map(|&i| l[i as usize]).fold(f32::NEG_INFINITY, f32::max);
        // sums in f64: the nucleus' edge and the draw do not depend on the summation order;
        // each candidate's exp once (a row of 128K per stream per step)
        let mut w = vec![0.0f64; l.len()];
        for &i in &idx {
            w[i as usize] = ((l[i as usize] - max) / p.temperature).exp() as f64;
        }
        let weight = |i: u32| w[i as usize];
        let sum: f64 = idx.iter().map(|&i| weight(i)).sum();
        let mut keep = idx.len();
        if p.top_p < 1.0 || p.min_p > 0.0 {
            // probabilities q = weight / sum; the nucleus is the shortest ranked prefix reaching
            // top_p, cut further to the q >= min_p * q_max (q_max = 1 / sum)
            let floor = p.min_p as f64 / sum;
            let mut m = idx.len().min(256);
            loop {
                if sorted < m {
                    if m < idx.len() {
                        idx.select_nth_unstable_by(m - 1, by_logit);
                    }
                    idx[..m].sort_unstable_by(by_logit);
                    sorted = m;
                }
                let (mut acc, mut cut) = (0.0, None);
                for (j, &i) in idx[..m].iter().enumerate() {
                    let q = weight(i) / sum;
                    if p.min_p > 0.0 && q < floor {
                        cut = Some(j.max(1));
                        break;
                    }
                    acc += q;
                    if p.top_p < 1.0 && acc >= p.top_p as f64 {
                        cut = Some(j + 1);
                        break;
                    }
                }
                if let Some(c) = cut {
                    keep = c;
                    break;
                }
                if m == idx.len() {
                    break;
                }
                m = (m * 8).min(idx.len());
            }
        }
        let total: f64 = idx[..keep].iter().map(|&i| weight(i) / sum).sum();
        let mut r = self.rng.random::<f64>() * total;
        for &i in &idx[..keep] {
            r -= weight(i) / sum;
            if r <= 0.0 {
                return i;
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

    /// The sampler's first version: the whole vocabulary sorted every call.
    fn sample_by_full_sort(p: &SamplingParams, rng: &mut StdRng, l: &[f32]) -> u32 {
        let mut idx: Vec<u32> = (0..l.len() as u32).collect();
        idx.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = l[idx[0] as usize];
        let mut probs: Vec<f64> = idx.iter().map(|&i| ((l[i as usize] - max) / p.temperature).exp() as f64).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        let mut keep = probs.len();
        let mut acc = 0.0;
        for (j, &q) in probs.iter().enumerate() {
            acc += q;
            if p.top_p < 1.0 && acc >= p.top_p as f64 {
                keep = j + 1;
                break;
            }
        }
        if p.min_p > 0.0 {
            keep = keep.min(probs.iter().take_while(|&&q| q >= p.min_p as f64 * probs[0]).count().max(1));
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut r = rng.random::<f64>() * total;
        for j in 0..keep {
            r -= probs[j];
            if r <= 0.0 {
                return idx[j];
            }
        }
        idx[keep - 1]
    }

    #[test]
    fn nucleus_of_a_large_vocabulary_matches_a_full_sort() {
        // 50,000 logits: nuclei of a few to thousands of tokens, past the first ranked prefix
        let mut x = 12345u64;
        let l: Vec<f32> = (0..50_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 6.0
            })
            .collect();
        for (t, top_k, top_p, min_p) in
            [(1.0, 0, 0.9, 0.0), (2.0, 0, 0.99, 0.0), (0.5, 0, 1.0, 0.05), (1.0, 40, 0.8, 0.0), (3.0, 0, 0.7, 0.3)]
        {
            let p = SamplingParams { temperature: t, top_k, top_p, min_p, seed: 9, ..Default::default() };
            let mut s = Sampler::new(p.clone());
            let mut rng = StdRng::seed_from_u64(9);
            for _ in 0..50 {
                assert_eq!(s.sample(&l, &[]), sample_by_full_sort(&p, &mut rng, &l), "{p:?}");
            }
        }
    }
}
