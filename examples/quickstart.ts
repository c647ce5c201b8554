/**
 * Quick start: the seed's three strategies (DAPO eighty-twenty, GSPO, SAPO) on one small batch, on the float64
 * CPU reference and on the engine (WebGPU when an adapter exists, else the CPU), side by side.
 *
 * Run: npx tsx examples/quickstart.ts
 */
import { createEngine, dapoLoss, gspoLoss, policyLoss, presets, sapoLoss, type PolicyLossBatch } from '../src/index.js';

// Two responses of a prompt group, right-padded to T = 4: log-probs under the rollout (old) and current policy,
// GRPO advantages broadcast over each response, the per-token entropy the 80/20 mode selects on.
const batch: PolicyLossBatch = {
  oldLogProbs: [[-1.0, -2.0, -0.5, -3.0], [-1.0, -1.0, -1.0, -1.0]],
  logProbs: [[-0.5, -2.5, -0.5, -0.5], [-1.2, -0.9, -1.0, 0.0]],
  advantages: [[1, 1, 1, 1], [-1, -1, -1, -1]],
  responseMask: [[1, 1, 1, 0], [1, 1, 1, 1]],
  entropy: [[2.1, 0.3, 1.7, 0.0], [0.2, 2.5, 0.9, 1.1]],
};

const show = (name: string, r: { loss: number; grad: ArrayLike<number>; metrics: Record<string, number> }): void => {
  const grad = Array.from(r.grad, (g) => g.toFixed(4)).join(' ');
  console.log(`${name.padEnd(22)} loss ${r.loss.toFixed(6)}  grad [${grad}]`);
  console.log(`${''.padEnd(22)} ${JSON.stringify(r.metrics)}`);
};

console.log('CPU float64 reference (the seed strategies with their defaults):');
show('dapoLoss (80/20)', dapoLoss(batch));
show('gspoLoss', gspoLoss(batch));
show('sapoLoss', sapoLoss(batch));
show("policyLoss('vanilla')", policyLoss('vanilla', batch, { clipRatioLow: 0.2, clipRatioHigh: 0.28 }));

const engine = await createEngine({ backend: 'auto' });
console.log(`\nengine: ${engine.backend} (${engine.reason})`);
try {
  for (const name of ['dapo', 'gspo', 'sapo'] as const) {
    const p = presets[name];
    show(`engine ${p.lossMode}`, await engine.policyLoss(p.lossMode, batch, p.policyLoss));
  }
} finally {
  engine.destroy();
}
