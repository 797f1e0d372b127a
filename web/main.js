// The demo page: load a model (default SmolLM2 from this server, a picked .gguf, or a SafeTensors
// directory by URL), then stream generated text. window.inferno exposes the same steps to tests.
import init, { WebEngine } from './pkg/inferno_web.js';

const $ = (id) => document.getElementById(id);
let engine = null;

function showError(e) {
  const msg = (e && e.message) || String(e);
  $('error').textContent = 'Error: ' + msg;
  $('status').textContent = 'failed';
  console.error(e);
  return msg;
}

// Fetches a URL into one Uint8Array, reporting progress (no second copy is kept).
async function fetchBytes(url, label) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  if (!total || !res.body) return new Uint8Array(await res.arrayBuffer());
  const out = new Uint8Array(total);
  const reader = res.body.getReader();
  let done = 0;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    out.set(value, done);
    done += value.length;
    $('progress').value = done / total;
    $('status').textContent = `downloading ${label}: ${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
  }
  return out;
}

async function optionalText(url) {
  const res = await fetch(url);
  return res.ok ? await res.text() : undefined;
}

function loaded(e, label, t0) {
  engine = e;
  const info = JSON.parse(e.info());
  $('adapter').textContent = `${info.adapter} (${info.backend}), activations ${info.activations}` +
    (info.shader_f16 ? '' : ' — no shader-f16: packed-bf16 path') + `, max binding ${(info.max_binding / 2 ** 20).toFixed(1)} MiB`;
  $('status').textContent = `${label} loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s — ` +
    `${info.layers} layers, GPU memory: weights ${(info.weights_bytes / 1e6).toFixed(1)} MB, KV ${(info.kv_bytes / 1e6).toFixed(1)} MB`;
  $('progress').value = 1;
  $('go').disabled = !info.has_tokenizer;
  return info;
}

// opts: { forceBf16, maxBinding (bytes; 0 = the adapter's limit) }
async function loadGgufBytes(bytes, name, opts = {}) {
  $('error').textContent = '';
  $('status').textContent = `uploading ${name} to the GPU…`;
  const t0 = performance.now();
  try {
    engine?.free();
    engine = null;
    return loaded(await WebEngine.fromGguf(bytes, name, 2048, !!opts.forceBf16, opts.maxBinding || 0), name, t0);
  } catch (e) {
    throw new Error(showError(e));
  }
}

async function loadGgufUrl(url, opts = {}) {
  try {
    const bytes = await fetchBytes(url, url.split('/').pop());
    return await loadGgufBytes(bytes, url.split('/').pop(), opts);
  } catch (e) {
    throw new Error(showError(e));
  }
}

async function loadSafetensorsUrl(base, opts = {}) {
  $('error').textContent = '';
  const t0 = performance.now();
  try {
    const config = await (await fetch(`${base}/config.json`)).text();
    const weights = await fetchBytes(`${base}/model.safetensors`, 'model.safetensors');
    const tokRes = await fetch(`${base}/tokenizer.json`);
    const tok = tokRes.ok ? new Uint8Array(await tokRes.arrayBuffer()) : undefined;
    const tokCfg = await optionalText(`${base}/tokenizer_config.json`);
    engine?.free();
    engine = null;
    return loaded(await WebEngine.fromSafetensors(config, weights, tok, tokCfg, 256, !!opts.forceBf16, opts.maxBinding || 0), base, t0);
  } catch (e) {
    throw new Error(showError(e));
  }
}

// SafeTensors from picked files: config.json + model.safetensors (+ tokenizer.json, tokenizer_config.json).
async function loadSafetensorsFiles(files, opts = {}) {
  $('error').textContent = '';
  const t0 = performance.now();
  try {
    const byName = Object.fromEntries(Array.from(files).map((f) => [f.name, f]));
    const weights = Array.from(files).filter((f) => f.name.endsWith('.safetensors'));
    if (!byName['config.json']) throw new Error('pick config.json with the weights');
    if (weights.length !== 1) throw new Error(`pick exactly one .safetensors file (got ${weights.length}; sharded checkpoints load by URL)`);
    const config = await byName['config.json'].text();
    const tok = byName['tokenizer.json'] ? new Uint8Array(await byName['tokenizer.json'].arrayBuffer()) : undefined;
    const tokCfg = byName['tokenizer_config.json'] ? await byName['tokenizer_config.json'].text() : undefined;
    $('status').textContent = `uploading ${weights[0].name} to the GPU…`;
    const bytes = new Uint8Array(await weights[0].arrayBuffer());
    engine?.free();
    engine = null;
    return loaded(await WebEngine.fromSafetensors(config, bytes, tok, tokCfg, 2048, !!opts.forceBf16, opts.maxBinding || 0), weights[0].name, t0);
  } catch (e) {
    throw new Error(showError(e));
  }
}

async function generate(text, maxTokens = 128, temperature = 0) {
  if (!engine) throw new Error('no model loaded');
  $('output').textContent = '';
  $('error').textContent = '';
  const prompt = engine.chatPrompt(text);
  const t0 = performance.now();
  let first = 0, pieces = 0;
  try {
    const summary = JSON.parse(await engine.generate(prompt, maxTokens, temperature, 1, (piece) => {
      if (!first) first = performance.now();
      pieces++;
      $('output').textContent += piece;
    }));
    const end = performance.now();
    summary.ttft_ms = first ? first - t0 : end - t0;
    summary.tok_s = summary.tokens > 1 && first ? (summary.tokens - 1) / ((end - first) / 1000) : 0;
    $('stats').textContent = `${summary.prompt_tokens} prompt tokens, first token after ${(summary.ttft_ms / 1000).toFixed(2)} s, ` +
      `${summary.tokens} tokens at ${summary.tok_s.toFixed(2)} tok/s (${summary.finish})`;
    return summary;
  } catch (e) {
    throw new Error(showError(e));
  }
}

window.inferno = {
  loadGgufUrl, loadGgufBytes, loadSafetensorsUrl, loadSafetensorsFiles, generate,
  greedyIds: async (ids, n) => Array.from(await engine.greedyIds(Uint32Array.from(ids), n)),
  info: () => JSON.parse(engine.info()),
};

$('load-default').onclick = () => loadGgufUrl('models/SmolLM2-135M-Instruct.Q4_1.gguf').catch(() => {});
$('file').onchange = async (ev) => {
  const f = ev.target.files[0];
  if (f) loadGgufBytes(new Uint8Array(await f.arrayBuffer()), f.name).catch(() => {});
};
$('st-files').onchange = (ev) => loadSafetensorsFiles(ev.target.files).catch(() => {});
$('go').onclick = () => generate($('prompt').value, Number($('max').value), Number($('temp').value)).catch(() => {});

try {
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  await init();
  const adapter = await navigator.gpu.requestAdapter();
  $('adapter').textContent = adapter ? 'WebGPU available — load a model' : 'WebGPU: no adapter';
  window.inferno.ready = true;
} catch (e) {
  showError(e);
  window.inferno.ready = true;
}
