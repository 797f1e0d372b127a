#!/usr/bin/env python3
"""Load generator for `inferno serve` (or any OpenAI-compatible server): N concurrent streams of
streaming completions; reports aggregate generated tok/s and p50/p99 time to first token and
inter-token latency. Python's standard library only (runs on the GPU machine as it is).

    python3 tests/serve/loadgen.py URL STREAMS [REQUESTS_PER_STREAM] [MAX_TOKENS] [PROMPT_WORDS]
    python3 tests/serve/loadgen.py http://127.0.0.1:8080 32 2 128 64

Every request asks for MAX_TOKENS tokens at temperature 0 (a random-weight model may end one
early at an end-of-sequence token; the counts are the tokens actually streamed).
"""
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse


def stream_one(url, prompt, max_tokens):
    """(tokens, ttft s, [inter-token gaps s]) of one streamed completion."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    times = []
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        c = json.loads(line[6:])["choices"][0]
        if c.get("text"):
            times.append(time.perf_counter())
    conn.close()
    if not times:
        return 0, None, []
    return len(times), times[0] - t0, [b - a for a, b in zip(times, times[1:])]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")


def main():
    url, streams = sys.argv[1], int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    words = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    results, lock = [], threading.Lock()

    def worker(i):
        for k in range(per):
            prompt = f"Request {i}.{k}: " + " ".join(f"word{(i * 7 + k * 3 + j) % 97}" for j in range(words))
            out = stream_one(url, prompt, max_tokens)
            with lock:
                results.append(out)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r[0] for r in results)
    ttft = [r[1] for r in results if r[1] is not None]
    itl = [g for r in results for g in r[2]]
    print(json.dumps({"streams": streams, "requests": len(results), "tokens": tokens, "wall_s": round(wall, 2),
                      "aggregate_tok_s": round(tokens / wall, 1),
                      "ttft_p50_ms": round(1e3 * pct(ttft, 50), 1), "ttft_p99_ms": round(1e3 * pct(ttft, 99), 1),
                      "itl_p50_ms": round(1e3 * pct(itl, 50), 2), "itl_p99_ms": round(1e3 * pct(itl, 99), 2)}))


if __name__ == "__main__":
    main()
