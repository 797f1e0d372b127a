#!/usr/bin/env bash
# One command from a fresh checkout to a chat answer: installs a Vulkan driver if none is there
# (lavapipe when the machine has no GPU), fetches SmolLM2-135M-Instruct (98 MB, cached in .models/),
# builds the `inferno` CLI and asks the model a question.
#   examples/quickstart.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
model=$(tests/fetch-smollm2.sh)
cargo build --release --bin inferno
exec target/release/inferno run -m "$model" -p "${1:-What is the capital of France?}" -n 128
