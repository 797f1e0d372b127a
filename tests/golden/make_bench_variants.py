#!/usr/bin/env python3
"""Quantized variants of a Hugging Face Llama checkpoint, for benchmarks (runs where torch is:
the H100 machine). From IN (config.json + *.safetensors, e.g. made by make_random_llama.py):

    python3 make_bench_variants.py IN OUT_PREFIX [w8a8] [q8_0] [q4_1] [q4_k_m]

- OUT_PREFIX-w8a8/: compressed-tensors int8 W8A8 (per-channel weight scales, dynamic per-token
  activations, lm_head ignored), as llmcompressor's QuantizationModifier(scheme="W8A8") writes it.
- OUT_PREFIX-q8_0.gguf, OUT_PREFIX-q4_1.gguf: GGUF v3, llama architecture, Q/K rows permuted as
  llama.cpp's converter does, 2-D weights quantized with ggml's reference quantizers, norms F32.
- OUT_PREFIX-q4_k_m.gguf: the same with Q4_K matrices and Q6_K for output, attn_v and ffn_down
  (ggml's K-quant layouts, a plain scale choice; 2-D weights need a multiple of 256 columns).
No tokenizer is written (benchmarks feed token ids).
"""
import json, os, struct, sys
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file


def load(inp):
    tensors = {}
    for f in sorted(os.listdir(inp)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(inp, f), "pt") as s:
                for k in s.keys():
                    tensors[k] = s.get_tensor(k)
    return json.load(open(os.path.join(inp, "config.json"))), tensors


def w8a8(cfg, tensors, out):
    os.makedirs(out, exist_ok=True)
    state = {}
    for k, t in tensors.items():
        if k.endswith("_proj.weight"):
            w = t.float()
            s = (w.abs().amax(dim=1, keepdim=True) / 127.0).to(t.dtype)
            state[k] = torch.round(w / s.float()).clamp(-128, 127).to(torch.int8)
            state[k.replace(".weight", ".weight_scale")] = s
        else:
            state[k] = t
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, "model.safetensors"))
    cfg = dict(cfg)
    cfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "int-quantized", "quantization_status": "compressed",
        "ignore": ["lm_head"], "config_groups": {"group_0": {"targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel", "dynamic": False},
            "input_activations": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True},
            "output_activations": None}}}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)


def q8_0(x):
    b = x.reshape(-1, 32)
    d = np.abs(b).max(axis=1, keepdims=True) / 127.0
    q = np.round(b / np.where(d == 0, 1, d)).astype(np.int8)
    return np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1).tobytes()


def q4_1(x):
    b = x.reshape(-1, 32)
    mn, mx = b.min(axis=1, keepdims=True), b.max(axis=1, keepdims=True)
    d = (mx - mn) / 15.0
    q = np.clip(np.floor((b - mn) / np.where(d == 0, 1, d) + 0.5), 0, 15).astype(np.uint8)
    nib = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([d.astype(np.float16).view(np.uint8), mn.astype(np.float16).view(np.uint8), nib], axis=1).tobytes()


def q4_k(x):
    """GGUF Q4_K super-blocks (ggml's layout; a plain min-max scale choice, not ggml's search),
    all blocks at once."""
    blk = x.reshape(-1, 256).astype(np.float32)
    nb = blk.shape[0]
    sub = blk.reshape(nb, 8, 32)
    lo, hi = np.minimum(sub.min(axis=2), 0.0), sub.max(axis=2)
    scale, mins = (hi - lo) / 15.0, -lo
    d = (scale.max(axis=1) / 63.0).astype(np.float16).astype(np.float32)[:, None]
    dmin = (mins.max(axis=1) / 63.0).astype(np.float16).astype(np.float32)[:, None]
    sc = np.where(d > 0, np.clip(np.round(scale / np.where(d > 0, d, 1)), 0, 63), 0).astype(np.uint8)
    m = np.where(dmin > 0, np.clip(np.round(mins / np.where(dmin > 0, dmin, 1)), 0, 63), 0).astype(np.uint8)
    scales = np.zeros((nb, 12), np.uint8)
    scales[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    scales[:, 4:8] = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4)
    unit = (d * sc.astype(np.float32))[:, :, None]
    q = np.where(unit > 0, np.round((sub + dmin[:, :, None] * m[:, :, None]) / np.where(unit > 0, unit, 1)), 0)
    q = np.clip(q, 0, 15).astype(np.uint8).reshape(nb, 256)
    qs = np.concatenate([q[:, 64 * c:64 * c + 32] | (q[:, 64 * c + 32:64 * c + 64] << 4) for c in range(4)], axis=1)
    dd = np.concatenate([d, dmin], axis=1).astype(np.float16).view(np.uint8)
    return np.concatenate([dd, scales, qs], axis=1).tobytes()


def q6_k(x):
    """GGUF Q6_K super-blocks (ggml's layout; int8 scales per 16 from the group's absmax), all
    blocks at once."""
    blk = x.reshape(-1, 256).astype(np.float32)
    nb = blk.shape[0]
    amax = np.abs(blk.reshape(nb, 16, 16)).max(axis=2) / 31.0
    d = (amax.max(axis=1) / 127.0).astype(np.float16).astype(np.float32)[:, None]
    sc = np.where(d > 0, np.clip(np.round(amax / np.where(d > 0, d, 1)), -128, 127), 0).astype(np.int8)
    unit = np.repeat(d * sc.astype(np.float32), 16, axis=1)
    q = (np.clip(np.round(blk / np.where(unit != 0, unit, 1)), -32, 31) * (unit != 0) + 32).astype(np.uint8)
    ql, qh = np.zeros((nb, 128), np.uint8), np.zeros((nb, 64), np.uint8)
    for n in range(2):
        e = [q[:, 128 * n + 32 * g:128 * n + 32 * g + 32] for g in range(4)]
        ql[:, 64 * n:64 * n + 32] = (e[0] & 15) | ((e[2] & 15) << 4)
        ql[:, 64 * n + 32:64 * n + 64] = (e[1] & 15) | ((e[3] & 15) << 4)
        qh[:, 32 * n:32 * n + 32] = (e[0] >> 4) | ((e[1] >> 4) << 2) | ((e[2] >> 4) << 4) | ((e[3] >> 4) << 6)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.astype(np.float16).view(np.uint8)], axis=1).tobytes()


# GGUF type ids and quantizers; "q4_k_m" is Q4_K with Q6_K for output, attn_v and ffn_down (as
# llama.cpp's Q4_K_M mix puts its larger type there)
QTYPES = {"q8_0": (8, q8_0), "q4_1": (3, q4_1), "q4_k": (12, q4_k), "q6_k": (14, q6_k)}


# llama.cpp's mixes, as its llama_tensor_get_type picks them for a small Llama (the first-layers
# and every-other-layer refinements left out): output, attn_v and ffn_down take the larger type
MIXES = {
    "q4_k_m": ("q4_k", {"output": "q6_k", "attn_v": "q6_k", "ffn_down": "q6_k"}),
    "q5_k_m": ("q5_k", {"output": "q6_k", "attn_v": "q6_k", "ffn_down": "q6_k"}),
    "q3_k_m": ("q3_k", {"output": "q6_k", "attn_v": "q5_k", "ffn_down": "q4_k", "attn_output": "q4_k"}),
    "q2_k": ("q2_k", {"output": "q6_k", "attn_v": "q3_k", "ffn_down": "q3_k"}),
    "iq4_xs": ("iq4_xs", {"output": "q6_k"}),
    # not a llama.cpp mix: every i-quant with a grid in one file (a test of each type's decoder)
    "iq_all": ("iq4_nl", {"output": "q6_k", "attn_q": "iq2_xxs", "attn_k": "iq2_xs", "attn_v": "iq2_s",
                          "attn_output": "iq3_xxs", "ffn_gate": "iq3_s", "ffn_up": "iq1_s", "ffn_down": "iq1_m"}),
}


def qtype_of(kind, name):
    if kind not in MIXES:
        return kind
    base, special = MIXES[kind]
    part = "output" if name == "output.weight" else name.split(".")[2] if name.startswith("blk.") else ""
    return special.get(part, base)


def permute(w, heads):
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf(cfg, tensors, path, qtype, extra=()):
    """Writes `tensors` (HF names) as a GGUF of the `qtype` mix; `extra` adds raw tensors
    (name, shape, ggml type id, bytes), e.g. llama.cpp's rope_freqs.weight."""
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    parts = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    items = []
    for k, t in tensors.items():
        if k.startswith("model.layers."):
            l, rest = k[len("model.layers."):].split(".", 1)
            name = f"blk.{l}.{parts[rest.rsplit('.', 1)[0]]}.weight"
        else:
            name = names[k]
        a = t.float().numpy()
        if k.endswith("q_proj.weight"):
            a = permute(a, heads)
        if k.endswith("k_proj.weight"):
            a = permute(a, kv)
        if a.ndim == 2:
            ty, quant = QTYPES[qtype_of(qtype, name)]
            items.append((name, a.shape, ty, quant(a)))
        else:
            items.append((name, a.shape, 0, a.astype(np.float32).tobytes()))
    items.extend(extra)
    s = lambda x: struct.pack("<Q", len(x.encode())) + x.encode()
    kvs = [("general.architecture", 8, s("llama")), ("general.alignment", 4, struct.pack("<I", 32)),
           ("llama.block_count", 4, struct.pack("<I", cfg["num_hidden_layers"])),
           ("llama.embedding_length", 4, struct.pack("<I", cfg["hidden_size"])),
           ("llama.feed_forward_length", 4, struct.pack("<I", cfg["intermediate_size"])),
           ("llama.attention.head_count", 4, struct.pack("<I", heads)),
           ("llama.attention.head_count_kv", 4, struct.pack("<I", kv)),
           ("llama.context_length", 4, struct.pack("<I", cfg.get("max_position_embeddings", 8192))),
           ("llama.vocab_size", 4, struct.pack("<I", cfg["vocab_size"])),
           ("llama.rope.freq_base", 6, struct.pack("<f", cfg.get("rope_theta", 10000.0))),
           ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", cfg.get("rms_norm_eps", 1e-5)))]
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(items), len(kvs)))
        for key, ty, val in kvs:
            f.write(s(key) + struct.pack("<I", ty) + val)
        off = 0
        for name, shape, ty, data in items:
            f.write(s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in reversed(shape)))
            f.write(struct.pack("<IQ", ty, off))
            off += (len(data) + 31) // 32 * 32
        f.write(b"\0" * ((-f.tell()) % 32))
        for _, _, _, data in items:
            f.write(data + b"\0" * ((-len(data)) % 32))


if __name__ == "__main__":
    inp, prefix, kinds = sys.argv[1], sys.argv[2], sys.argv[3:] or ["w8a8", "q8_0", "q4_1"]
    cfg, tensors = load(inp)
    for kind in kinds:
        if kind == "w8a8":
            w8a8(cfg, tensors, prefix + "-w8a8")
        else:
            gguf(cfg, tensors, f"{prefix}-{kind}.gguf", kind)
        print("wrote", kind)
