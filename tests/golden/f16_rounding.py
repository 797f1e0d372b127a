"""How far f16 rounding alone moves a GGUF golden case's logits (the golden tolerance's evidence).

A float64 forward of a Llama GGUF (weights dequantized by gguf-py, llama.cpp's row layout, so RoPE
rotates adjacent pairs) is compared with the case's reference logits (tests/data/CASE/logits.f32,
made by make_golden.py from the same weights in f32): exact, then with the weights, the 16-bit
activations (as the engine stores them: norm and matmul outputs, q/k after RoPE, attention and
SwiGLU outputs) and the attention
probabilities rounded to f16 as the matrix-core kernels take them, then with the weights perturbed
at random by up to f16's relative step instead.

    pip install numpy gguf
    python3 tests/golden/f16_rounding.py [tests/data/tiny-q4-k-m]
"""
import json
import sys

import numpy as np
from gguf import GGUFReader, quants


def load(case):
    r = GGUFReader(f"{case}/model.gguf")
    meta = {f.name: f.contents() for f in r.fields.values() if f.name.startswith("llama.")}
    w = {t.name: quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(x) for x in reversed(t.shape)])
         for t in r.tensors}
    g = json.load(open(f"{case}/golden.json"))
    ref = np.fromfile(f"{case}/logits.f32", dtype=np.float32).reshape(-1, g["vocab_size"]).astype(np.float64)
    return meta, w, g["prompt"] + g["greedy"], ref


def forward(meta, w, seq, rw, ract, rprob):
    """Logits (T, V) of `seq`; rw / ract / rprob round weights, activations, probabilities."""
    heads, kv = int(meta["llama.attention.head_count"]), int(meta["llama.attention.head_count_kv"])
    c = int(meta["llama.embedding_length"])
    hd, eps = c // heads, float(meta["llama.attention.layer_norm_rms_epsilon"])
    theta = float(meta.get("llama.rope.freq_base", 10000.0))
    t = len(seq)
    ang = np.arange(t)[:, None] * theta ** (-np.arange(0, hd, 2) / hd)[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(q):  # (T, h, hd), adjacent pairs (llama.cpp's layout of the GGUF's q/k rows)
        a, b = q[..., 0::2], q[..., 1::2]
        out = np.empty_like(q)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    def norm(x, g):
        return ract(x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * g)

    x = w["token_embd.weight"][seq]
    for layer in range(int(meta["llama.block_count"])):
        p = f"blk.{layer}."
        h = norm(x, w[p + "attn_norm.weight"])
        q = ract(rope(ract(h @ rw(w[p + "attn_q.weight"]).T).reshape(t, heads, hd)))
        k = ract(rope(ract(h @ rw(w[p + "attn_k.weight"]).T).reshape(t, kv, hd)))
        v = ract(h @ rw(w[p + "attn_v.weight"]).T).reshape(t, kv, hd)
        k, v = np.repeat(k, heads // kv, 1), np.repeat(v, heads // kv, 1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + np.triu(np.full((t, t), -np.inf), 1)[None]
        s = np.exp(s - s.max(-1, keepdims=True))
        s = rprob(s / s.sum(-1, keepdims=True))
        x = x + ract(np.einsum("hts,shd->thd", s, v).reshape(t, c)) @ rw(w[p + "attn_output.weight"]).T
        h = norm(x, w[p + "ffn_norm.weight"])
        gate, up = ract(h @ rw(w[p + "ffn_gate.weight"]).T), ract(h @ rw(w[p + "ffn_up.weight"]).T)
        x = x + ract(gate / (1 + np.exp(-gate)) * up) @ rw(w[p + "ffn_down.weight"]).T
    return norm(x, w["output_norm.weight"]) @ rw(w["output.weight" if "output.weight" in w else "token_embd.weight"]).T


def main():
    case = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny-q4-k-m"
    meta, w, seq, ref = load(case)
    rms = np.sqrt(np.mean(ref * ref))
    f16 = lambda a: a.astype(np.float16).astype(np.float64)
    same = lambda a: a
    rng = np.random.default_rng(0)
    jitter = lambda a: a * (1 + rng.uniform(-(2.0**-11), 2.0**-11, a.shape))
    runs = [("float64", same, same, same), ("f16 activations", same, f16, same),
            ("f16 weights, activations, probabilities", f16, f16, f16)]
    runs += [(f"weights jittered by f16's step ({i}), f16 activations", jitter, f16, same) for i in range(5)]
    for name, rw, ract, rprob in runs:
        d = np.abs(forward(meta, w, seq, rw, ract, rprob) - ref)
        row, col = np.unravel_index(d.argmax(), d.shape)
        print(f"{name}: max |d| {d.max():.4f} = {d.max() / rms:.3f} x RMS at ({row}, {col}), mean {d.mean():.5f}")


if __name__ == "__main__":
    main()
