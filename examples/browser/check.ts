/**
 * Checks examples/browser/index.html in headless Chromium (Debian's `chromium`, WebGPU through its SwiftShader),
 * driven by playwright-core. Serves the repository root on 127.0.0.1 and waits for the title the page writes.
 *
 * Run: npm run build && npx tsx examples/browser/check.ts   (CHROMIUM=/path/to/chromium to override)
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json', '.wgsl': 'text/plain' };
const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
  let file = join(root, path);
  if (!file.startsWith(root)) return void res.writeHead(403).end();
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!existsSync(file)) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath, args: ['--enable-unsafe-webgpu', '--no-sandbox'] });
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  await page.goto(`http://127.0.0.1:${port}/examples/browser/`);
  await page.waitForFunction(() => /^(ok|mismatch|error)/.test(document.title), undefined, { timeout: 60_000 });
  const title = await page.title();
  console.log(await page.locator('#out').textContent());
  console.log(`title: ${title}`);
  process.exitCode = title.startsWith('ok') ? 0 : 1;
} finally {
  await browser.close();
  server.close();
}
