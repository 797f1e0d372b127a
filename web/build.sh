#!/usr/bin/env bash
# Builds the browser demo into web/pkg: the wasm module and its JS glue.
# Needs the wasm32 target and wasm-bindgen-cli matching web/Cargo.toml's wasm-bindgen (0.2.130);
# both are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q "0.2.130"; then
  cargo install --locked wasm-bindgen-cli --version 0.2.130
fi
cargo build --locked --release -p inferno-web --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/inferno_web.wasm"
ls -la web/pkg
