#!/usr/bin/env bash
# The whole test suite (what .ci/run calls): fetch the default model, build once, run every test
# tier on the local Vulkan adapter (lavapipe on a machine without a GPU), lint and docs, then build
# the browser demo and run it in headless Chromium on WebGPU, then the OpenAI-compatible server
# against the official `openai` client and its chat page in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-1}
# lavapipe (libwayland) complains on every GPU context when this names no directory; the CLI
# handles it itself (and tests/cli.rs checks that without the variable)
if [ ! -d "${XDG_RUNTIME_DIR:-/nonexistent}" ]; then
  export XDG_RUNTIME_DIR; XDG_RUNTIME_DIR=$(mktemp -d)
fi
# each step's wall time goes to stderr, so a slow CI run says where its time went
step() { local t=$SECONDS; "$@"; echo "[run.sh] $(( SECONDS - t )) s: $*" >&2; }
step tests/setup.sh --dev
step tests/fetch-smollm2.sh >/dev/null
# one build serves the tests and the lints: clippy's driver compiles the workspace's crates (it is
# rustc with clippy's lints), so warnings of either fail the build and no second `cargo clippy`
# pass over every dependency is needed (~260 s cold on 2 cores)
export RUSTC_WORKSPACE_WRAPPER="$PWD/tests/clippy-rustc.sh"
step cargo build --workspace --all-targets --locked
step cargo test --workspace --locked -- --test-threads=2
unset RUSTC_WORKSPACE_WRAPPER
# the other platforms are compiled (not run) here: Metal, DX12 (WebGPU in the browser: the demo's
# build below compiles the library for wasm32, and the browser test runs it)
# (one cargo for both targets: their dependencies build side by side on the 2 cores)
step cargo check --locked --lib --target aarch64-apple-darwin --target x86_64-pc-windows-msvc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib
step cargo fmt --all -- --check
step web/build.sh
(cd web && npm ci --no-audit --no-fund --silent)
step node web/test/browser.mjs
step tests/serve/run.sh target/debug/inferno
echo "all tests passed"
