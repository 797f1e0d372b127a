#!/usr/bin/env python3
"""Random blocks of every GGUF block type the engine reads, with gguf-py's dequantization of them:
tests/data/quants.json ({type: {"bytes": hex, "values": [...]}}). The Rust tests check the CPU
dequantizer (src/model/gguf.rs) against these values; the kernel tests then check the GPU decoders
against the CPU dequantizer.

Blocks are random bytes whose f16 scale fields are set to sane values (uniform in [0.002, 0.02],
either sign for the scale d), so every quant, scale and sign bit is exercised without infinities.

    pip install gguf numpy
    python3 tests/golden/make_quant_fixtures.py
"""
import json, os
import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES, quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quants.json")

# type -> byte offsets of its f16 scale fields inside one block
SCALES = {
    "Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ4_NL": [0], "IQ4_XS": [0],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0], "IQ1_S": [0],
    "IQ1_M": [],  # its f16 scale is spread over the top nibbles of the 4 u16 at byte 48: set_iq1m_scale
    "TQ1_0": [52], "TQ2_0": [64],
    "MXFP4": [],  # an E8M0 exponent byte at 0: set in main
    "NVFP4": [],  # four unsigned E4M3 scale bytes: random bytes are all finite
}


def set_iq1m_scale(data, values):
    """Writes f16 `values` (one per block) into IQ1_M blocks: nibble i of the f16 goes into the top
    nibble of the u16 at byte 48 + 2i."""
    bits = values.astype(np.float16).view(np.uint16)
    for i in range(4):
        word = data[:, 48 + 2 * i:50 + 2 * i].copy().view(np.uint16).reshape(-1)
        word = (word & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12)
        data[:, 48 + 2 * i:50 + 2 * i] = word.astype(np.uint16).view(np.uint8).reshape(-1, 2)


def main():
    rng = np.random.default_rng(20261202)
    out = {}
    for name, offsets in SCALES.items():
        qtype = T[name]
        block, size = GGML_QUANT_SIZES[qtype]
        nblocks = 5 if block == 256 else 9  # odd counts: blocks at every alignment of their byte size
        data = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
        for i, o in enumerate(offsets):
            v = rng.uniform(0.002, 0.02, size=nblocks)
            if i == 0:
                v *= rng.choice([-1.0, 1.0], size=nblocks)
            data[:, o:o + 2] = v.astype(np.float16).view(np.uint8).reshape(nblocks, 2)
        if name == "IQ1_M":
            set_iq1m_scale(data, rng.uniform(0.002, 0.02, size=nblocks) * rng.choice([-1.0, 1.0], size=nblocks))
        if name == "MXFP4":
            data[:, 0] = rng.integers(115, 130, size=nblocks)  # 2^-12 .. 2^3, and 0 / 1 below
            data[0, 0], data[1, 0] = 0, 1  # the two exponents ggml decodes as subnormals
        values = quants.dequantize(data.reshape(1, -1), qtype).reshape(-1)
        assert values.size == nblocks * block and np.isfinite(values).all()
        out[name] = {"bytes": data.tobytes().hex(), "values": [float(x) for x in values]}
        print(name, nblocks, "blocks")
    with open(OUT, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
