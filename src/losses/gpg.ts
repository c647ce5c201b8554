/**
 * `gpg`: Group Policy Gradient, verl CA:1414-1447. ℓ = −lp·A (no ratio, no old policy); ∂ℓ/∂lp = −A.
 * The metrics dict is empty, as in verl.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** The `gpg` strategy (plain REINFORCE-style −lp·A); default aggregation `token-mean`; no metrics. */
export function gpgLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { logProbs: lp, advantages: adv, mask } = batch;
  const n = batch.B * batch.T;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    const a = adv[k] as number;
    lossMat[k] = -(lp[k] as number) * a;
    dLoss[k] = -a;
  }
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', {});
}

registerBuiltin({ name: 'gpg', cpu: gpgLossStrategy, defaultAggMode: 'token-mean', kernel: 'gpg' });
