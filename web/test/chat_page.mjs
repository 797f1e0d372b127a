// The chat page that `inferno serve` serves at / (src/serve/chat.html), in headless Chromium:
// type a question, send, see the streamed answer; then a second turn. A screenshot lands in
// target/browser-test/serve-chat.png. Run by tests/serve/run.sh: node web/test/chat_page.mjs URL
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'target', 'browser-test');
fs.mkdirSync(out, { recursive: true });
const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic'],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#input', 'What is the capital of France?');
  await page.click('#send');
  await page.waitForFunction(() => document.body.dataset.done, null, { timeout: 600_000 });
  const first = await page.textContent('#answer-1');
  console.log(`${first.includes('Paris') ? 'ok  ' : 'FAIL'} streamed answer: ${JSON.stringify(first)}`);
  failed ||= !first.includes('Paris');
  await page.fill('#input', 'And of Germany?');
  await page.click('#send');
  await page.waitForFunction(() => document.body.dataset.done === '4' || document.body.dataset.done === 'error', null, { timeout: 600_000 });
  const second = await page.textContent('#answer-3');
  console.log(`${second.length > 0 ? 'ok  ' : 'FAIL'} second turn: ${JSON.stringify(second)}`);
  failed ||= second.length === 0;
  await page.screenshot({ path: path.join(out, 'serve-chat.png'), fullPage: true });
} catch (e) {
  console.log('FAIL', e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
