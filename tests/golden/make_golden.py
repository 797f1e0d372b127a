#!/usr/bin/env python3
"""Make the tiny golden checkpoints in tests/data/ and their reference outputs.

Each case is a random-weight Llama saved by transformers (config.json + safetensors) plus
golden.json: prompt token ids, 16 greedy tokens with their top-2 margins, and the f32 reference
logits of prompt + greedy tokens (logits.f32, little-endian, shape (11 + 16, V)), computed by transformers in float32 from the very
weights stored in the file (bf16/f16 weights are upcast, so the reference sees what we load).

    pip install torch transformers safetensors gguf llmcompressor
    python3 tests/golden/make_golden.py            # rewrites tests/data/*
The Rust tests need no Python.
"""
import json, os, shutil, sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")

BASE = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=509, rms_norm_eps=1e-5, rope_theta=10000.0,
            max_position_embeddings=512, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            initializer_range=0.15)

CASES = {
    # GQA, untied, vocab not a multiple of 64, bf16 weights
    "tiny-gqa-bf16": dict(dtype="bfloat16"),
    # MHA, tied embeddings, llama3 rope scaling, f16 weights
    "tiny-tied-llama3-f16": dict(dtype="float16", num_key_value_heads=4, tie_word_embeddings=True, rope_theta=500000.0,
                                 rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                                   high_freq_factor=4.0, original_max_position_embeddings=64)),
    # head_dim override (24: not a power of two, not C/H), one KV head, f32 weights
    "tiny-headdim24-f32": dict(dtype="float32", head_dim=24, num_attention_heads=8, num_key_value_heads=1, vocab_size=300),
    # bf16 matrices with f32 norms and an f16 embedding in one file
    "tiny-mixed": dict(dtype="mixed"),
    # sharded into several files with model.safetensors.index.json, linear rope scaling
    "tiny-sharded-bf16": dict(dtype="bfloat16", shard="40KB", rope_scaling=dict(rope_type="linear", factor=2.0)),
}

def make(name, spec):
    spec = dict(spec)
    dtype = spec.pop("dtype")
    shard = spec.pop("shard", None)
    torch.manual_seed(sum(map(ord, name)))
    cfg = LlamaConfig(**{**BASE, **spec})
    model = LlamaForCausalLM(cfg).eval()
    if dtype == "mixed":
        for n, p in model.named_parameters():
            if "norm" in n:
                p.data = p.data.float()
            elif "embed" in n:
                p.data = p.data.half()
            else:
                p.data = p.data.bfloat16()
    else:
        model = model.to(getattr(torch, dtype))
    # norms away from 1 so they matter
    for n, p in model.named_parameters():
        if "norm" in n:
            p.data = (1.0 + 0.5 * torch.randn_like(p.data.float())).to(p.dtype)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True, max_shard_size=shard or "5GB")
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    # reference in float32 from the stored weights
    ref = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    write_golden(ref, cfg, d, name, dtype, "tests/golden/make_golden.py")


def random_llama(name, **overrides):
    """A random-weight f32 Llama (BASE + overrides) seeded by the case name, norms drawn around 1."""
    torch.manual_seed(sum(map(ord, name)))
    cfg = LlamaConfig(**{**BASE, **overrides})
    model = LlamaForCausalLM(cfg).eval()
    for n, p in model.named_parameters():
        if "norm" in n:
            p.data = 1.0 + 0.5 * torch.randn_like(p.data)
    return cfg, model


def quantized_linears(model):
    """Names of the Linear modules a W8A8 checkpoint quantizes (all but lm_head)."""
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]


def emulate_w8a8(model, state):
    """`model` in f32 with the tensors of a W8A8 checkpoint's `state`, each quantized Linear's
    forward replaced by vLLM's dynamic per-token W8A8 arithmetic on the stored int8 weights and
    scales (exact in f32)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in state:
                p.data = state[n].float()
    model = model.float()
    for n, m in model.named_modules():
        if n in quantized_linears(model):
            w_q = state[n + ".weight"].float()
            s_w = state[n + ".weight_scale"].float().reshape(-1, 1)
            def fwd(x, w_q=w_q, s_w=s_w):
                x = x.float()
                s_x = x.abs().amax(dim=-1, keepdim=True) / 127.0
                x_q = torch.round(x / torch.where(s_x > 0, s_x, torch.ones_like(s_x))).clamp(-128, 127)
                return (x_q @ w_q.T) * s_x * s_w.T
            m.forward = fwd
    return model


def write_golden(model, cfg, d, name, weights_dtype, made_by):
    """Greedy tokens, top-2 margins and f32 logits of a float32 `model` into d/golden.json, d/logits.f32."""
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(3, cfg.vocab_size, (11,), generator=g).tolist()
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False, eos_token_id=None,
                             pad_token_id=0, min_new_tokens=16)
        logits = model(out).logits[0].float()
    greedy = out[0, len(prompt):].tolist()
    top2 = logits[len(prompt) - 1:-1].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(dict(prompt=prompt, greedy=greedy, greedy_margins=margins, vocab_size=cfg.vocab_size,
                       logits_shape=list(logits.shape), weights_dtype=weights_dtype, made_by=made_by,
                       torch=torch.__version__), f, indent=1)
    print(name, "min greedy margin %.4f" % min(margins), "logit rms %.3f" % logits.pow(2).mean().sqrt())
    return logits


def make_w8a8_llmcompressor(name="tiny-w8a8-llmcompressor"):
    """A W8A8 checkpoint written by llmcompressor itself (pip install llmcompressor):
    QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]), no calibration data;
    the reference is the exact emulation of the stored int8 weights and scales."""
    import tempfile
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from safetensors.torch import load_file
    cfg, model = random_llama(name)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    # oneshot reads the model's config back from its directory: start from a saved bf16 checkpoint
    tmp = tempfile.mkdtemp()
    model.to(torch.bfloat16).save_pretrained(tmp)
    model = LlamaForCausalLM.from_pretrained(tmp, dtype=torch.bfloat16)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]))
    model.save_pretrained(d, save_compressed=True)
    for extra in ("generation_config.json", "recipe.yaml"):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    ref = emulate_w8a8(LlamaForCausalLM(cfg).eval(), load_file(os.path.join(d, "model.safetensors")))
    write_golden(ref, cfg, d, name, "w8a8 (compressed-tensors, written by llmcompressor)",
                 "tests/golden/make_golden.py (make_w8a8_llmcompressor: llmcompressor oneshot, exact emulation)")


def rope_theta(cfg):
    """RoPE theta of a config of transformers 4 (rope_theta) or 5 (rope_parameters)."""
    params = getattr(cfg, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))


def gguf_case(name, mix, cfg, model, made_by, extra=(), reference=None):
    """Writes `model` as d/model.gguf in llama.cpp's `mix` (make_bench_variants.py: Q/K rows
    permuted, F32 norms) plus `extra` raw tensors; the golden comes from transformers in f32 on
    the weights the file holds, dequantized by gguf-py (pip install gguf), run by `reference`
    (default: `model` itself) after those weights are copied into it."""
    import numpy as np
    from gguf import GGUFReader, quants
    from make_bench_variants import gguf as write_gguf
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.gguf")
    conf = cfg.to_dict()
    conf["rope_theta"] = rope_theta(cfg)
    write_gguf(conf, {k: v.detach() for k, v in model.state_dict().items()}, path, mix, extra)
    # the weights as stored: GGUF names back to HF names, Q/K rows back to HF order
    hf = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    parts = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    unpermute = lambda w, h: w.reshape(h, w.shape[0] // h // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    ref = reference or model
    state = ref.state_dict()
    for t in GGUFReader(path).tensors:
        base = t.name[:-len(".weight")]
        if base.startswith("blk."):
            _, l, part = base.split(".", 2)
            key = f"model.layers.{l}.{parts[part]}.weight"
        elif base in hf:
            key = hf[base] + ".weight"
        else:
            continue  # rope_freqs: the reference's config holds the same scaling
        w = quants.dequantize(t.data, t.tensor_type).reshape(state[key].shape).astype(np.float32)
        if key.endswith("q_proj.weight"):
            w = unpermute(w, cfg.num_attention_heads)
        if key.endswith("k_proj.weight"):
            w = unpermute(w, cfg.num_key_value_heads)
        state[key].copy_(torch.from_numpy(w))
    return write_golden(ref.float(), cfg, d, name, mix, made_by)


def random_blocks(qname):
    """A stand-in quantizer for the GGUF types gguf-py cannot quantize (the K-quants below Q4_K,
    IQ4_XS ...): random blocks of `qname` whose f16 scales are then scaled so the block values have
    the RMS of the weights they replace. The model is random anyway; the reference reads what the
    file holds (gguf-py's dequantization), so any valid blocks make a golden."""
    import numpy as np
    from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES, quants
    from make_quant_fixtures import SCALES, set_iq1m_scale
    qt = T[qname.upper()]
    block, size = GGML_QUANT_SIZES[qt]

    def quantize(a):
        n = a.size // block
        rng = np.random.default_rng(n * 7919 + size)
        data = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
        offs = SCALES[qname.upper()]
        for i, o in enumerate(offs):
            v = np.full(n, 0.01) * (rng.choice([-1.0, 1.0], size=n) if i == 0 else 1.0)
            data[:, o:o + 2] = v.astype(np.float16).view(np.uint8).reshape(n, 2)
        if qname == "iq1_m":
            set_iq1m_scale(data, np.full(n, 0.01))
        rms = np.sqrt(np.mean(quants.dequantize(data, qt).astype(np.float64) ** 2))
        factor = np.sqrt(np.mean(a.astype(np.float64) ** 2)) / rms
        for o in offs:
            v = data[:, o:o + 2].copy().view(np.float16).astype(np.float64) * factor
            data[:, o:o + 2] = v.astype(np.float16).view(np.uint8).reshape(n, 2)
        if qname == "iq1_m":
            set_iq1m_scale(data, np.full(n, 0.01 * factor))
        return data.tobytes()
    return int(qt), quantize


def make_kquants(name="tiny-q4-k-m"):
    """A GGUF as llama.cpp's Q4_K_M mix lays it out: Q4_K matrices, Q6_K for output, attn_v and
    ffn_down."""
    cfg, model = random_llama(name, hidden_size=256, intermediate_size=512, vocab_size=300)
    gguf_case(name, "q4_k_m", cfg, model, "tests/golden/make_golden.py (make_kquants: gguf-py dequantization, transformers f32)")


def make_mix(mix):
    """A GGUF in llama.cpp's `mix` (make_bench_variants.MIXES) of the types gguf-py cannot
    quantize: random blocks of each type (random_blocks), the reference on what the file holds."""
    import make_bench_variants
    for q in ("q2_k", "q3_k", "q5_k", "iq4_xs", "iq4_nl", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s",
              "iq1_s", "iq1_m"):
        make_bench_variants.QTYPES[q] = random_blocks(q)
    name = "tiny-" + mix.replace("_", "-")
    cfg, model = random_llama(name, hidden_size=256, intermediate_size=512, vocab_size=300)
    gguf_case(name, mix, cfg, model, f"tests/golden/make_golden.py (make_mix {mix}: random blocks, gguf-py "
              "dequantization, transformers f32)")


MIX_CASES = ["q5_k_m", "q3_k_m", "q2_k", "iq4_xs", "iq_all"]


def make_rope_freqs(name="tiny-rope-freqs"):
    """Llama 3.x as llama.cpp's converter writes it: no scaling metadata, the llama3 scaling as the
    tensor rope_freqs.weight (one divisor per rotary pair, computed as convert_hf_to_gguf.py does).
    The reference is transformers with rope_scaling llama3; the same weights without the scaling
    must give visibly different logits (they do by ~9 here), so the test sees whether the
    factors are applied."""
    import math
    import numpy as np
    scaling = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=32)
    cfg, model = random_llama(name, hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
                              vocab_size=300, rope_scaling=scaling)
    dim = cfg.hidden_size // cfg.num_attention_heads
    freqs = 1.0 / (rope_theta(cfg) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    lo, hi = 32 / 1.0, 32 / 4.0  # wavelengths: above lo scaled by factor, below hi kept
    factors = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < hi:
            factors.append(1.0)
        elif wavelen > lo:
            factors.append(8.0)
        else:
            smooth = (32 / wavelen - 1.0) / (4.0 - 1.0)
            factors.append(1 / ((1 - smooth) / 8.0 + smooth))
    extra = [("rope_freqs.weight", (dim // 2,), 0, np.array(factors, np.float32).tobytes())]
    plain_cfg = LlamaConfig(**{**BASE, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
                               "vocab_size": 300})
    plain = LlamaForCausalLM(plain_cfg).eval()
    logits = gguf_case(name, "q8_0", cfg, model,
                       "tests/golden/make_golden.py (make_rope_freqs: gguf-py dequantization, transformers f32 llama3)",
                       extra)
    plain.load_state_dict(model.state_dict())  # the dequantized weights, without the scaling
    g = json.load(open(os.path.join(OUT, name, "golden.json")))
    with torch.no_grad():
        unscaled = plain.float()(torch.tensor([g["prompt"] + g["greedy"]])).logits[0]
    diff = (unscaled - logits).abs().max().item()
    print(name, "max |logit difference| without the scaling: %.3f" % diff)
    assert diff > 1.0, "the RoPE factors do not change the logits visibly"
    g["unscaled_max_diff"] = diff
    json.dump(g, open(os.path.join(OUT, name, "golden.json"), "w"), indent=1)


def make_w8a8(name="tiny-w8a8"):
    """compressed-tensors INT8 W8A8 (as llmcompressor writes for scheme W8A8 with ignore=[lm_head]):
    int8 weights with a per-output-channel symmetric scale; activations quantized dynamically per
    token (symmetric int8) at run time. The reference emulates vLLM's arithmetic exactly in f32:
    s_x = max|x| / 127, x_q = round_half_even(x / s_x), y = (x_q @ w_q^T) * s_x * s_w."""
    cfg, model = random_llama(name)
    linear_names = quantized_linears(model)
    state = {}
    for n, m in model.named_modules():
        if n in linear_names:
            w = m.weight.data.float()
            s_w = (w.abs().amax(dim=1, keepdim=True) / 127.0).bfloat16().float()
            state[n + ".weight"] = torch.round(w / s_w).clamp(-128, 127).to(torch.int8)
            state[n + ".weight_scale"] = s_w.bfloat16()
    for n, p in model.state_dict().items():
        if n not in state and not any(n == l + ".weight" for l in linear_names):
            state[n] = p.bfloat16()
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(d, "model.safetensors"))
    conf = cfg.to_dict()
    conf["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "int-quantized", "quantization_status": "compressed",
        "ignore": ["lm_head"],
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel", "dynamic": False},
            "input_activations": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True},
            "output_activations": None}},
    }
    conf["torch_dtype"] = "bfloat16"
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)
    # the non-quantized tensors as the file holds them (bf16), then the emulated forward in f32
    write_golden(emulate_w8a8(model, state), cfg, d, name, "w8a8 (compressed-tensors int-quantized)",
                 "tests/golden/make_golden.py (make_w8a8: exact emulation of dynamic per-token W8A8)")


if __name__ == "__main__":
    for n, s in CASES.items():
        if len(sys.argv) == 1 or n in sys.argv[1:]:
            make(n, s)
    if len(sys.argv) == 1 or "tiny-w8a8" in sys.argv[1:]:
        make_w8a8()
    if len(sys.argv) == 1 or "tiny-w8a8-llmcompressor" in sys.argv[1:]:
        make_w8a8_llmcompressor()
    if len(sys.argv) == 1 or "tiny-q4-k-m" in sys.argv[1:]:
        make_kquants()
    if len(sys.argv) == 1 or "tiny-rope-freqs" in sys.argv[1:]:
        make_rope_freqs()
    for mix in MIX_CASES:
        if len(sys.argv) == 1 or "tiny-" + mix.replace("_", "-") in sys.argv[1:]:
            make_mix(mix)
