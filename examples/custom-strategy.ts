/**
 * A custom policy-loss strategy, registered with `registerPolicyLoss` and run through `policyLoss` like the
 * built-ins: here plain REINFORCE, ℓ = −A·lp.
 *
 * Run: npx tsx examples/custom-strategy.ts
 */
import { aggregateRows, policyLoss, registerPolicyLoss, type PolicyLossStrategy } from '../src/index.js';

/** REINFORCE: ℓ_t = −A_t·lp_t, so ∂ℓ/∂lp = −A; aggregated with the configured mode (token-mean by default). */
const reinforce: PolicyLossStrategy = (batch, config) => {
  const { B, T, logProbs, advantages, mask, lengths } = batch;
  const lossMat = new Float64Array(B * T);
  for (let k = 0; k < B * T; k++) lossMat[k] = -advantages[k]! * logProbs[k]!;
  const { loss, rowCoef } = aggregateRows(lossMat, mask, B, T, config.lossAggMode ?? 'token-mean', config.globalBatchInfo, lengths);
  const grad = new Float64Array(B * T);
  for (let i = 0; i < B; i++) for (let j = 0; j < T; j++) if (mask[i * T + j]) grad[i * T + j] = -advantages[i * T + j]! * rowCoef[i]!;
  return { loss, grad, metrics: { 'actor/reinforce_tokens': lengths.reduce((a, b) => a + b, 0) } };
};

registerPolicyLoss('reinforce', reinforce);

const batch = {
  oldLogProbs: [[-1.0, -2.0, -0.5], [-1.0, -1.0, 0]],
  logProbs: [[-0.9, -2.1, -0.4], [-1.2, -0.8, 0]],
  advantages: [[1, 1, 1], [-1, -1, 0]],
  responseMask: [[1, 1, 1], [1, 1, 0]],
};
const res = policyLoss('reinforce', batch, { lossAggMode: 'seq-mean-token-mean' });
console.log('loss', res.loss.toFixed(6), 'grad', Array.from(res.grad, (g) => g.toFixed(4)).join(' '), res.metrics);
