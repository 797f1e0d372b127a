#!/usr/bin/env bash
# The server tests: the official `openai` Python client against `inferno serve` on the default
# model (in a venv made here, from PyPI), then the chat page in headless Chromium.
#   tests/serve/run.sh [INFERNO_BINARY]   (default target/debug/inferno)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug/inferno}
model=$(tests/fetch-smollm2.sh)
venv=target/serve-venv
if ! "$venv/bin/python" -c "import openai, httpx" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.50,<3" httpx
fi
"$venv/bin/python" tests/serve/test_openai.py "$bin" "$model"
# the chat page
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund --silent)
port=18432
"$bin" serve -m "$model" --port $port -c 512 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
node web/test/chat_page.mjs "http://127.0.0.1:$port/"
kill -TERM $pid; wait $pid
trap - EXIT
echo "server tests passed"
