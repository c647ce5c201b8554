/**
 * The WebGPU engine in a real browser: the library bundled for the browser (esbuild, platform 'browser'),
 * loaded by headless Chromium (/usr/bin/chromium, WebGPU through its SwiftShader adapter) driven by
 * playwright-core. Checks that the bundle does not pull in the Node `webgpu` package and that the kernels
 * agree with the CPU reference inside the page. Skipped, with the reason, where Chromium is not installed.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';

const CHROMIUM = process.env.LUMIRAG_CHROMIUM ?? '/usr/bin/chromium';
const here = dirname(fileURLToPath(import.meta.url));
const skipReason = existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (set LUMIRAG_CHROMIUM or apt-get install chromium)`;
// CI (LUMIRAG_REQUIRE_GPU=1, where .ci/run installs chromium) must run this test: there a missing browser fails.
if (skipReason && process.env.LUMIRAG_REQUIRE_GPU === '1') throw new Error(`LUMIRAG_REQUIRE_GPU=1 but ${skipReason}`);
if (skipReason) console.warn(`[gpu-browser skipped] ${skipReason}`);

describe.skipIf(skipReason !== null)(`WebGPU in headless Chromium (${skipReason ?? CHROMIUM})`, () => {
  it('the browser bundle runs the kernels from navigator.gpu and matches the CPU reference', async () => {
    const bundle = await build({
      entryPoints: [join(here, 'helpers', 'gpu-browser-entry.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
      // package.json's "sideEffects": false would let esbuild drop src/losses/index.ts's registering imports
      // (the CPU reference's strategies); the page compares against them, so keep every module's side effects.
      ignoreAnnotations: true,
    });
    const js = bundle.outputFiles[0]!.text;
    expect(js).not.toMatch(/(from|import\(|require\()\s*["'](webgpu|node:[a-z_/]+)["']/);
    const html = '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/bundle.js"></script>';
    const server: Server = createServer((req, res) => {
      const isJs = req.url === '/bundle.js';
      res.writeHead(200, { 'content-type': isJs ? 'text/javascript' : 'text/html' });
      res.end(isJs ? js : html);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu', '--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => /^(RESULT|ERROR) /.test(document.title), undefined, { timeout: 60_000 });
      const title = await page.title();
      expect(title.startsWith('RESULT '), title).toBe(true);
      const r = JSON.parse(title.slice(7)) as { backend: string; reason: string; out: Record<string, { loss: number; ref: number; maxGradErr: number }> };
      expect(r.backend).toBe('webgpu');
      for (const [mode, v] of Object.entries(r.out)) {
        expect(Math.abs(v.loss - v.ref), `${mode} loss ${v.loss} vs ${v.ref}`).toBeLessThan(1e-4 * Math.abs(v.ref) + 1e-5);
        expect(v.maxGradErr, `${mode} grad`).toBeLessThan(1e-5);
      }
      console.log(`browser: ${r.reason}`);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
