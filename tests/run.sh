#!/usr/bin/env bash
# The whole test suite (what .ci/run calls): fetch the default model, build once, run every test
# tier on the local Vulkan adapter (lavapipe on a machine without a GPU), check the wasm build,
# lint, docs and the browser demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-1}
tests/setup.sh --dev
tests/fetch-smollm2.sh >/dev/null
cargo build --all-targets --locked
cargo test --locked -- --test-threads=2
cargo check --locked --lib --target wasm32-unknown-unknown
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib
cargo fmt --all -- --check
echo "all tests passed"
