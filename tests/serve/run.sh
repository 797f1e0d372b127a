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
"$venv/bin/python" -c "
import sys, time, httpx
for _ in range(600):
    try:
        if httpx.get('http://127.0.0.1:$port/health', timeout=2).status_code == 200: sys.exit(0)
    except httpx.HTTPError: pass
    time.sleep(0.5)
sys.exit('the server did not become healthy')"
node web/test/chat_page.mjs "http://127.0.0.1:$port/"
kill -TERM $pid; wait $pid
trap - EXIT
echo "server tests passed"
