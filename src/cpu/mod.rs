//! Plain-Rust reference of every op: the specification and the test oracle. All f32, row-major,
//! written for clarity rather than speed.

use crate::ops::attention::AttentionShape;

/// `out (t, n) = x (t, k) @ w (n, k)^T`.
pub fn matmul(x: &[f32], w: &[f32], t: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; t * n];
    for i in 0..t {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum();
        }
    }
    out
}

/// `x / sqrt(mean(x^2) + eps) * w` per row of `c`.
pub fn rms_norm(x: &[f32], w: &[f32], c: usize, eps: f32) -> Vec<f32> {
    x.chunks(c)
        .flat_map(|row| {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / c as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            row.iter().zip(w).map(move |(v, g)| v * inv * g).collect::<Vec<_>>()
        })
        .collect()
}

/// RoPE of `x (t, heads, d)` at `positions[t]`, with inverse frequencies `inv_freq (d/2)`, on the
/// rotary pairs (2i, 2i+1).
pub fn rope(x: &[f32], positions: &[usize], heads: usize, d: usize, inv_freq: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..heads {
            let base = (t * heads + h) * d;
            for (i, &f) in inv_freq.iter().enumerate() {
                let angle = (pos as f32 * f) as f64;
                let (s, c) = (angle.sin() as f32, angle.cos() as f32);
                let (a, b) = (base + 2 * i, base + 2 * i + 1);
                out[a] = x[a] * c - x[b] * s;
                out[b] = x[b] * c + x[a] * s;
            }
        }
    }
    out
}

/// Causal GQA attention of `q (t, heads, d)` against per-slot caches `k, v (slots, ctx, kv_heads, d)`
/// (the sizes from `shape`).
/// Token `i` is at `tok[i] = (slot, pos)` and attends to positions `0..=pos` of its slot.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], tok: &[(usize, usize)], shape: &AttentionShape) -> Vec<f32> {
    let AttentionShape { heads, kv_heads, head_dim: d, ctx } = *shape;
    let mut out = vec![0.0; q.len()];
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    for (i, &(slot, pos)) in tok.iter().enumerate() {
        for h in 0..heads {
            let qh = &q[(i * heads + h) * d..][..d];
            let kvh = h / group;
            let row = |p: usize| ((slot * ctx + p) * kv_heads + kvh) * d;
            let scores: Vec<f32> = (0..=pos)
                .map(|p| qh.iter().zip(&k[row(p)..row(p) + d]).map(|(a, b)| a * b).sum::<f32>() * scale)
                .collect();
            let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f32 = e.iter().sum();
            let o = &mut out[(i * heads + h) * d..][..d];
            for (p, ep) in e.iter().enumerate() {
                for (j, oj) in o.iter_mut().enumerate() {
                    *oj += ep / sum * v[row(p) + j];
                }
            }
        }
    }
    out
}

/// `silu(gate) * up`.
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter().zip(up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect()
}

/// Rows `ids` of `table (rows, c)`.
pub fn embedding(table: &[f32], ids: &[u32], c: usize) -> Vec<f32> {
    ids.iter().flat_map(|&id| table[id as usize * c..][..c].to_vec()).collect()
}

/// Index of the largest finite value of each row of `v` (first on ties), with
/// [`crate::ops::argmax::NON_FINITE`] set where the row holds a NaN or an infinity.
pub fn argmax(logits: &[f32], v: usize) -> Vec<u32> {
    logits
        .chunks(v)
        .map(|row| {
            let mut best: Option<usize> = None;
            for (i, &x) in row.iter().enumerate() {
                if x.is_finite() && best.is_none_or(|b| x > row[b]) {
                    best = Some(i);
                }
            }
            let bad = if row.iter().all(|x| x.is_finite()) { 0 } else { crate::ops::argmax::NON_FINITE };
            best.unwrap_or(0) as u32 | bad
        })
        .collect()
}
