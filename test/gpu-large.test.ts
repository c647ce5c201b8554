/**
 * Large batches on WebGPU against the CPU reference: 8M tokens (every gradient entry compared), and a batch
 * above one storage binding (> 2^25 float32 per input, split into binding windows, rows straddling the cut).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Engine, policyLoss, type PolicyLossConfig } from '../src/index.js';
import { GPU_TOL, isClose } from './helpers/fixtures.js';
import { getTestEngine, syntheticBatch } from './helpers/gpu.js';

const { engine, reason } = await getTestEngine();
afterAll(() => engine?.destroy());

/** Compare without building a message per element; S = max(1, max |exp|) as the fixtures' rule. */
function gradClose(got: ArrayLike<number>, exp: (k: number) => number, n: number, what: string): void {
  let s = 1;
  for (let k = 0; k < n; k++) s = Math.max(s, Math.abs(exp(k)));
  let bad = -1;
  let worst = 0;
  for (let k = 0; k < n; k++) {
    const e = exp(k);
    const err = Math.abs((got[k] as number) - e) - GPU_TOL.rtol * Math.abs(e) - GPU_TOL.atolRel * s;
    if (err > worst) {
      worst = err;
      bad = k;
    }
  }
  if (bad >= 0) throw new Error(`${what}[${bad}]: got ${got[bad]}, expected ${exp(bad)}`);
}

function metricsClose(got: Record<string, number>, exp: Record<string, number>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(exp).sort());
  for (const [k, v] of Object.entries(exp)) expect(isClose(got[k]!, v, GPU_TOL, 1), `${k}: ${got[k]} vs ${v}`).toBe(true);
}

const DAPO: PolicyLossConfig = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3, lossAggMode: 'token-mean' };

describe.skipIf(!engine)(`large batches (${engine ? 'webgpu' : `skipped: ${reason}`})`, () => {
  const e = engine as Engine;

  it('8M tokens (2048 × 4096), DAPO vanilla token-mean: loss, metrics and every gradient entry', async () => {
    const [B, T] = [2048, 4096];
    const s = syntheticBatch(B, T, 8);
    const batch = { oldLogProbs: s.olp, logProbs: s.lp, advantages: s.adv, responseMask: s.mask, shape: [B, T] as const };
    const g = await e.policyLoss('vanilla', batch, DAPO);
    const c = policyLoss('vanilla', batch, DAPO);
    expect(isClose(g.loss, c.loss, GPU_TOL, 1), `loss ${g.loss} vs ${c.loss}`).toBe(true);
    metricsClose(g.metrics, c.metrics);
    gradClose(g.grad, (k) => c.grad[k] as number, B * T, 'grad');
  });

  it('36M tokens (> 2^25 per input, 12000 × 3000): vanilla seq-mean-token-mean over two binding windows', async () => {
    // Ten copies of one 1200-row block: every mean-type aggregate equals the block's, the gradient is the
    // block's divided by 10, so the CPU reference runs on the block only. 2^25 falls inside row 11184.
    const [Bb, T, copies] = [1200, 3000, 10];
    const nb = Bb * T;
    const blk = syntheticBatch(Bb, T, 36);
    const B = Bb * copies;
    const n = B * T;
    expect(n).toBeGreaterThan(2 ** 25);
    const rep = (a: Float32Array): Float32Array => {
      const out = new Float32Array(n);
      for (let c = 0; c < copies; c++) out.set(a, c * nb);
      return out;
    };
    const big = { oldLogProbs: rep(blk.olp), logProbs: rep(blk.lp), advantages: rep(blk.adv), responseMask: rep(blk.mask), shape: [B, T] as const };
    const small = { oldLogProbs: blk.olp, logProbs: blk.lp, advantages: blk.adv, responseMask: blk.mask, shape: [Bb, T] as const };
    const grad = new Float32Array(n);
    // (gspo's row pass and every other mode over binding windows: test/gpu-engine.test.ts, small windows)
    for (const [mode, cfg] of [['vanilla', { ...DAPO, lossAggMode: 'seq-mean-token-mean' }]] as [string, PolicyLossConfig][]) {
      const g = await e.policyLoss(mode, big, cfg, { gradInto: grad });
      const c = policyLoss(mode, small, cfg);
      expect(isClose(g.loss, c.loss, GPU_TOL, 1), `${mode} loss ${g.loss} vs ${c.loss}`).toBe(true);
      metricsClose(g.metrics, c.metrics);
      gradClose(grad, (k) => (c.grad[k % nb] as number) / copies, n, `${mode} grad`);
    }
  });
});
