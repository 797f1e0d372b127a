#!/usr/bin/env bash
# Installs what is missing on a fresh Debian/Ubuntu machine: the Vulkan loader and Mesa's
# lavapipe (a Vulkan GPU on the CPU, used when there is no real GPU), and with `--dev` the
# tools the test suite needs (wasm, macOS and Windows targets, clippy, rustfmt, Chromium and Node.js for the browser test).
set -euo pipefail
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
need=()
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need+=(libvulkan1)
ls /usr/share/vulkan/icd.d/ 2>/dev/null | grep -q . || need+=(mesa-vulkan-drivers)
if [ "${1:-}" = "--dev" ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v npm >/dev/null || need+=(nodejs npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${1:-}" = "--dev" ]; then
  # wasm32 (the browser), and the Metal and DX12 targets the library is compile-checked for
  for t in wasm32-unknown-unknown aarch64-apple-darwin x86_64-pc-windows-msvc; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  done
  rustup component list --installed | grep -q clippy || rustup component add clippy
  rustup component list --installed | grep -q rustfmt || rustup component add rustfmt
fi
