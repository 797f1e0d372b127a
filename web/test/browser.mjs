// Browser tests: the wasm engine on WebGPU in real headless Chromium (SwiftShader adapter: no
// shader-f16, so the packed-bf16 path). Build first (web/build.sh); run: node web/test/browser.mjs
//  1. a tiny golden checkpoint (tests/data) gives transformers' greedy tokens, as the native run does;
//  2. a corrupt model file shows a visible error and the page keeps working;
//  3. the default SmolLM2 answers the default question.
// Screenshots and a JSON report land in target/browser-test/.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
const out = path.join(root, 'target', 'browser-test');
fs.mkdirSync(out, { recursive: true });

const server = await serve(0);
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const report = {};
let failed = false;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) failed = true;
}

try {
  const page = await browser.newPage();
  // (404s are expected: the page probes for optional tokenizer files)
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('404')) console.log('  [page error]', m.text().split('\n')[0]); });
  page.on('pageerror', (e) => console.log('  [page exception]', e.message));
  await page.goto(base);
  await page.waitForFunction(() => window.inferno && window.inferno.ready, null, { timeout: 60_000 });
  const adapterText = await page.textContent('#adapter');
  check('WebGPU adapter', !adapterText.includes('no WebGPU') && !adapterText.includes('no adapter'), adapterText);

  // 1. tiny golden checkpoints: exact greedy tokens; the second one with a 16 KiB binding limit,
  //    so its weights are split into row chunks as on adapters with WebGPU's default 128 MiB
  for (const [name, maxBinding] of [['tiny-gqa-bf16', 0], ['tiny-headdim24-f32', 16384]]) {
    const golden = JSON.parse(fs.readFileSync(path.join(root, 'tests', 'data', name, 'golden.json'), 'utf8'));
    const info = await page.evaluate(([n, mb]) => window.inferno.loadSafetensorsUrl('data/' + n, { maxBinding: mb }), [name, maxBinding]);
    const ids = await page.evaluate(([p, n]) => window.inferno.greedyIds(p, n), [golden.prompt, golden.greedy.length]);
    const same = ids.filter((t, i) => t === golden.greedy[i]).length;
    report[name] = { info, ids, want: golden.greedy };
    check(`${name} greedy tokens (${info.activations} on ${info.adapter} (${info.device_type}), subgroups ${info.subgroups}, embedding in ${info.weight_chunks} chunk(s))`,
      JSON.stringify(ids) === JSON.stringify(golden.greedy) && (maxBinding === 0 || info.weight_chunks > 1),
      `${same}/${golden.greedy.length} equal`);
  }
  // the same checkpoint through the SafeTensors file picker
  {
    const dir = path.join(root, 'tests', 'data', 'tiny-gqa-bf16');
    const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8'));
    await page.evaluate(() => { document.getElementById('status').textContent = ''; });
    await page.setInputFiles('#st-files', ['config.json', 'model.safetensors'].map((f) => path.join(dir, f)));
    await page.waitForFunction(() => document.getElementById('status').textContent.includes('model.safetensors loaded') ||
      document.getElementById('error').textContent, null, { timeout: 60_000 });
    const ids = await page.evaluate(([p, n]) => window.inferno.greedyIds(p, n), [golden.prompt, golden.greedy.length]);
    check('SafeTensors through the file picker', JSON.stringify(ids) === JSON.stringify(golden.greedy), await page.textContent('#status'));
  }
  await page.screenshot({ path: path.join(out, 'tiny.png') });

  // 2. a corrupt model: visible error, no dead tab
  const err = await page.evaluate(async () => {
    try {
      await window.inferno.loadGgufBytes(new Uint8Array([71, 71, 85, 70, 3, 0, 0, 0, 1, 2, 3]), 'corrupt.gguf');
      return 'loaded?!';
    } catch (e) {
      return document.getElementById('error').textContent;
    }
  });
  check('corrupt file shows an error', err.includes('corrupt.gguf'), err);
  await page.screenshot({ path: path.join(out, 'error.png') });

  // 3. the default model answers
  if (fs.existsSync(path.join(root, '.models', 'SmolLM2-135M-Instruct.Q4_1.gguf'))) {
    const t0 = Date.now();
    // with WebGPU's default 128 MiB binding limit (the adapter here offers more)
    const info = await page.evaluate(() => window.inferno.loadGgufUrl('models/SmolLM2-135M-Instruct.Q4_1.gguf', { maxBinding: 128 << 20 }));
    const loadS = (Date.now() - t0) / 1000;
    const g = await page.evaluate(() => window.inferno.generate('What is the capital of France?', 40, 0));
    report.smollm2 = { info, load_s: loadS, ...g };
    check(`SmolLM2 answers (${g.tok_s.toFixed(2)} tok/s, first token ${(g.ttft_ms / 1000).toFixed(1)} s, load ${loadS.toFixed(1)} s)`,
      g.text === 'The capital of France is Paris.', JSON.stringify(g.text));
    await page.screenshot({ path: path.join(out, 'smollm2.png') });
  } else {
    check('SmolLM2 present (run tests/fetch-smollm2.sh)', false);
  }
} catch (e) {
  check('browser test ran', false, e.stack || String(e));
} finally {
  fs.writeFileSync(path.join(out, 'report.json'), JSON.stringify(report, null, 1));
  await browser.close();
  server.close();
}
console.log(`screenshots and report: ${out}`);
process.exit(failed ? 1 : 0);
