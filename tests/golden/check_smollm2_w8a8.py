#!/usr/bin/env python3
"""Manual check of W8A8 on a real model (needs `pip install llmcompressor`, which brings torch;
CI does not run it): SmolLM2-135M converted from the default GGUF to bf16 SafeTensors by
`inferno convert`, quantized by llmcompressor (QuantizationModifier W8A8, ignore lm_head), then
greedy tokens of inferno (`inferno run --raw`) against an exact emulation of vLLM's W8A8 arithmetic
on the same stored int8 weights (make_golden.emulate_w8a8).

    python3 tests/golden/check_smollm2_w8a8.py [path/to/inferno]    # from the repository root
"""
import json, os, shutil, subprocess, sys, tempfile
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import emulate_w8a8

inferno = sys.argv[1] if len(sys.argv) > 1 else "target/release/inferno"
gguf = ".models/SmolLM2-135M-Instruct.Q4_1.gguf"
work = tempfile.mkdtemp()
src, dst = os.path.join(work, "bf16"), os.path.join(work, "w8a8")
subprocess.run([inferno, "convert", "-m", gguf, "-o", src], check=True)
model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]))
model.save_pretrained(dst, save_compressed=True)
tok = AutoTokenizer.from_pretrained(src)
tok.save_pretrained(dst)
ref = emulate_w8a8(AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval(),
                   load_file(os.path.join(dst, "model.safetensors")))
for prompt in ["The capital of France is", "def fibonacci(n):"]:
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = ref.generate(ids, max_new_tokens=16, do_sample=False)
        logits = ref(out).logits[0, ids.shape[1] - 1:-1]
    want = tok.decode(out[0, ids.shape[1]:])
    top2 = logits.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    got = subprocess.run([inferno, "run", "-m", dst, "--raw", "-p", prompt, "-n", "16", "--temp", "0"],
                         check=True, capture_output=True, text=True).stdout
    got = got[:len(want)]
    agree = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), len(want))
    print(json.dumps({"prompt": prompt, "emulation": want, "inferno": got, "equal_chars": agree,
                      "min_margin": round(min(margins), 3), "margins": [round(m, 3) for m in margins]}))
shutil.rmtree(work)
