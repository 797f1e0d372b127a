#!/usr/bin/env python3
"""`inferno serve` driven by the official `openai` client (and raw HTTP for what the client hides):
chat and completions, streaming and not, models, errors in OpenAI's shape, 16 concurrent greedy
requests equal to the same requests run alone (also with int8 decode under --deterministic),
overload and recovery, a client that disconnects
mid-stream, API keys, SIGTERM. Run by tests/serve/run.sh (which makes the venv):

    python3 tests/serve/test_openai.py INFERNO_BINARY MODEL.gguf
"""
import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import openai

BIN, MODEL = sys.argv[1], sys.argv[2]
PORT = int(os.environ.get("INFERNO_TEST_PORT", "18431"))


SERVERS = []


class Server:
    def __init__(self, *args, port=PORT, env_extra=None):
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.pop("INFERNO_API_KEY", None)
        env.update(env_extra or {})
        self.proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-c", "512", *args],
                                     stderr=subprocess.PIPE, text=True, env=env)
        SERVERS.append(self.proc)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("server exited: " + self.proc.stderr.read())
            time.sleep(0.3)
        raise SystemExit("server did not become healthy")

    def stop(self):
        """SIGTERM: the server finishes and exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        assert rc == 0, f"exit status {rc}: {self.proc.stderr.read()}"


T0 = time.time()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok ({time.time() - T0:.0f} s):", what, flush=True)


def error_of(r):
    body = r.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


PROMPTS = ["What is the capital of France?", "Name a primary color.", "What is 2 + 2?", "Say hello in Spanish."]


def check_concurrent(s, client, what):
    """16 concurrent greedy requests (4 slots, so they queue and join the batch as slots free),
    half streamed: each equals the same request run alone."""
    alone = {}
    for p in PROMPTS:
        alone[p] = client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}],
                                                  temperature=0, max_tokens=24).choices[0].message.content

    def one(i):
        p = PROMPTS[i % len(PROMPTS)]
        if i % 2:
            out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}],
                                                 temperature=0, max_tokens=24).choices[0].message.content
        else:
            text, done = [], False
            with httpx.stream("POST", s.url + "/v1/chat/completions", timeout=600, json={
                    "messages": [{"role": "user", "content": p}], "temperature": 0, "max_tokens": 24,
                    "stream": True}) as r:
                for line in r.iter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        c = json.loads(line[6:])["choices"][0]
                        text.append(c["delta"].get("content") or "")
            assert done, "stream ended without [DONE]"
            out = "".join(text)
        return p, out

    t0 = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(16)))
    same = sum(out == alone[p] for p, out in results)
    check(same == 16,
          f"16 concurrent greedy requests equal their single runs{what} ({same}/16, {time.time() - t0:.0f} s)")


def main():
    s = Server()
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=600)

    models = client.models.list()
    check(len(models.data) == 1 and models.data[0].object == "model", f"models: {models.data[0].id}")
    check(client.models.retrieve(models.data[0].id).id == models.data[0].id, "models.retrieve")
    try:
        client.models.retrieve("no-such-model")
        check(False, "an unknown model must be a 404")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "models.retrieve of an unknown model: 404")

    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPTS[0]}],
                                       temperature=0, max_tokens=40)
    check(r.choices[0].message.content == "The capital of France is Paris.", f"chat: {r.choices[0].message.content!r}")
    check(r.choices[0].finish_reason == "stop" and r.usage.completion_tokens > 0
          and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage}")

    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPTS[0]}],
                                            temperature=0, max_tokens=40, stream=True,
                                            stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    check("".join(pieces) == "The capital of France is Paris." and finish == "stop" and usage is not None,
          f"streamed chat {''.join(pieces)!r}, usage {usage}")

    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPTS[0]}],
                                       temperature=0, max_tokens=3, logprobs=True, top_logprobs=2)
    lp = r.choices[0].logprobs.content
    check(r.choices[0].finish_reason == "length" and len(lp) == 3 and len(lp[0].top_logprobs) == 2
          and lp[0].logprob <= 0 and lp[0].token == lp[0].top_logprobs[0].token, "max_tokens=3: length, logprobs")

    r = client.completions.create(model="m", prompt="The capital of France is", temperature=0, max_tokens=8,
                                  stop=["."])
    check(len(r.choices[0].text) > 0 and "." not in r.choices[0].text and r.choices[0].finish_reason == "stop",
          f"completion with a stop string: {r.choices[0].text!r}")
    r = client.completions.create(model="m", prompt="Once upon a time", temperature=0.8, seed=3, max_tokens=8)
    r2 = client.completions.create(model="m", prompt="Once upon a time", temperature=0.8, seed=3, max_tokens=8)
    check(r.choices[0].text == r2.choices[0].text, "seeded sampling repeats")

    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], top_p=2)
        check(False, "top_p 2 must fail")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "top_p" in str(e), "top_p=2 is a 400 naming top_p")

    # 16 concurrent greedy requests (4 slots, so they queue and join the batch as slots free):
    # each equals the same request run alone
    check_concurrent(s, client, "")
    check(httpx.get(s.url + "/health").status_code == 200, "healthy after the burst")

    # errors in OpenAI's shape, and the server keeps serving
    post = lambda body, **kw: httpx.post(s.url + "/v1/chat/completions", content=body, timeout=600, **kw)
    r = post(b"{not json")
    check(r.status_code == 400 and "JSON" in error_of(r)["message"], "malformed JSON: 400")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}))
    check(r.status_code == 400 and error_of(r)["type"] == "invalid_request_error", "wrong type: 400")
    r = post(json.dumps({"messages": "hi"}))
    check(r.status_code == 400, "messages of the wrong type: 400")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 2}))
    check(r.status_code == 400 and error_of(r)["param"] == "n", "n=2: 400")
    r = post(b"x" * (5 << 20))
    check(r.status_code == 413, "a 5 MiB body: 413")
    r = post(json.dumps({"messages": [{"role": "user", "content": "word " * 2000}]}))
    check(r.status_code == 400 and error_of(r)["code"] == "context_length_exceeded", "prompt over the context: 400")
    r = httpx.get(s.url + "/v1/nothing")
    check(r.status_code == 404 and error_of(r), "unknown path: 404")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "unknown_field": 1}))
    check(r.status_code == 200, "unknown fields are ignored")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}))
    check(r.status_code == 400 and error_of(r)["param"] == "max_tokens", "max_tokens=-1: 400 naming max_tokens")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}))
    check(r.status_code == 400 and error_of(r)["param"] == "response_format", "a JSON output mode: 400 (not ignored)")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "required"}))
    check(r.status_code == 400 and error_of(r)["param"] == "tool_choice", "a required tool call: 400")
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], tools=tools,
                                       max_tokens=2)
    check(r.choices[0].message.content is not None, "tools with tool_choice auto: answered in text")
    r = client.completions.create(model="m", prompt="The capital of France is", temperature=0, max_tokens=1,
                                  logit_bias={"504": 100})
    check(r.choices[0].text == "The", f"logit_bias +100 on token 504 ('The') picks it: {r.choices[0].text!r}")
    r = post(json.dumps({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"99999999": 1}}))
    check(r.status_code == 400 and error_of(r)["param"] == "logit_bias", "logit_bias outside the vocabulary: 400")
    ids = client.completions.create(model="m", prompt="The capital of France is", temperature=0, max_tokens=6)
    by_ids = client.completions.create(model="m", prompt=[504, 3575, 282, 4649, 314], temperature=0, max_tokens=6,
                                       echo=True, logprobs=1)
    lp = by_ids.choices[0].logprobs
    check(by_ids.choices[0].text.startswith("The capital of France is") and by_ids.usage.prompt_tokens == 5
          and lp.text_offset[0] == len("The capital of France is")
          and by_ids.choices[0].text == "The capital of France is" + ids.choices[0].text,
          f"a prompt of token ids, echoed, with text offsets: {by_ids.choices[0].text!r}")

    # a client that disconnects mid-stream frees its slot
    with httpx.stream("POST", s.url + "/v1/completions", timeout=600, json={
            "prompt": "Count from one to one hundred:", "max_tokens": 400, "stream": True}) as r:
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
    deadline, busy = time.time() + 60, None
    while time.time() < deadline:
        m = httpx.get(s.url + "/metrics").text
        busy = next(l for l in m.splitlines() if l.startswith("inferno_busy_slots "))
        if busy.endswith(" 0"):
            break
        time.sleep(0.2)
    check(busy.endswith(" 0"), "disconnected client's slot is freed")
    m = httpx.get(s.url + "/metrics").text
    check("inferno_requests_total{status=\"200\"}" in m and "inferno_time_to_first_token_seconds_count" in m,
          "metrics in Prometheus text")
    s.stop()
    check(True, "SIGTERM: exit 0")

    # int8 decode (every GGUF model's on GPUs; forced here on the software adapter) turns the
    # last-bit differences of prompts cut otherwise than in single runs into other tokens;
    # --deterministic cuts them alike
    s = Server("--deterministic", env_extra={"INFERNO_FORCE_INT8_DOT": "1"})
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=600)
    check_concurrent(s, client, " with int8 decode and --deterministic")
    s.stop()

    # overload: one slot, a queue of one; a burst gets 503 with Retry-After, then it recovers
    s = Server("--parallel", "1", "--max-queue", "1", "--api-key", "sekrit")
    h = {"Authorization": "Bearer sekrit"}
    r = httpx.post(s.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    check(r.status_code == 401 and error_of(r)["type"] == "authentication_error", "missing API key: 401")
    r = httpx.get(s.url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    check(r.status_code == 401, "wrong API key: 401")
    body = {"prompt": "Tell me a long story.", "max_tokens": 40, "temperature": 0}
    with cf.ThreadPoolExecutor(6) as ex:
        codes = list(ex.map(lambda _: httpx.post(s.url + "/v1/completions", json=body, headers=h, timeout=600), range(6)))
    statuses = sorted(r.status_code for r in codes)
    busy = [r for r in codes if r.status_code == 503]
    check(200 in statuses and busy and all(r.headers.get("retry-after") for r in busy),
          f"overload: {statuses} (503 with Retry-After)")
    r = httpx.post(s.url + "/v1/completions", json={**body, "max_tokens": 4}, headers=h, timeout=600)
    check(r.status_code == 200, "recovers after the burst")
    s.stop()
    print("all server tests passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in SERVERS:
            if p.poll() is None:
                p.kill()
