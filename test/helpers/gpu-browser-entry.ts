/**
 * Browser entry of test/gpu-browser.test.ts: bundled with esbuild, run in headless Chromium, it creates a
 * WebGPU engine from navigator.gpu, runs a few losses against the CPU reference in the page and writes the
 * outcome into document.title ("RESULT {json}" or "ERROR message").
 */
import { createEngine } from '../../src/gpu/index.js';
import { policyLoss } from '../../src/losses/index.js';
import type { PolicyLossConfig } from '../../src/config/policyLoss.js';

async function main(): Promise<void> {
  const engine = await createEngine({ backend: 'webgpu' });
  const [B, T] = [5, 37];
  const n = B * T;
  const olp = new Float32Array(n);
  const lp = new Float32Array(n);
  const adv = new Float32Array(n);
  const mask = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    olp[k] = -1 - 0.7 * Math.abs(Math.sin(k * 1.3));
    lp[k] = olp[k]! + 0.3 * Math.sin(k * 0.7);
    adv[k] = Math.cos(Math.floor(k / T) * 2.1);
    mask[k] = k % T < T - 3 * Math.floor(k / T) ? 1 : 0;
  }
  const batch = { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, shape: [B, T] as const };
  const runs: [string, PolicyLossConfig][] = [
    ['vanilla', { clipRatioHigh: 0.28 }],
    ['gspo', { clipRatioLow: 3e-3, clipRatioHigh: 4e-3 }],
    ['sapo', {}],
    ['geo_mean', {}],
  ];
  const out: Record<string, { loss: number; ref: number; maxGradErr: number }> = {};
  for (const [mode, cfg] of runs) {
    const g = await engine.policyLoss(mode, batch, cfg);
    const c = policyLoss(mode, batch, cfg);
    let e = 0;
    for (let k = 0; k < n; k++) e = Math.max(e, Math.abs((g.grad[k] as number) - (c.grad[k] as number)));
    out[mode] = { loss: g.loss, ref: c.loss, maxGradErr: e };
  }
  const result = { backend: engine.backend, reason: engine.reason, subgroups: engine.gpu?.subgroups ?? null, out };
  engine.destroy();
  document.title = `RESULT ${JSON.stringify(result)}`;
}

main().catch((err: unknown) => {
  document.title = `ERROR ${(err as Error).message}`;
});
