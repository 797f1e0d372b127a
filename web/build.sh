#!/usr/bin/env bash
# Builds the browser demo into web/pkg: the wasm module and its JS glue.
# Needs the wasm32 target and wasm-bindgen-cli matching the wasm-bindgen in Cargo.lock;
# both are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The version must equal web/Cargo.lock's wasm-bindgen. `--locked` first (the tool's own tested
# lock file); when a crate that lock pins has been yanked from crates.io since, resolve afresh.
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if ! wasm-bindgen --version 2>/dev/null | grep -qF "$want"; then
  cargo install --locked wasm-bindgen-cli --version "$want" ||
    { echo "wasm-bindgen-cli's lock file is stale; installing with fresh resolution" >&2
      cargo install wasm-bindgen-cli --version "$want"; }
fi
cargo build --locked --release -p inferno-web --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/inferno_web.wasm"
ls -la web/pkg
