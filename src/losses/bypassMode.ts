/**
 * `bypass_mode`: verl's `compute_policy_loss_bypass_mode` (core_algos.py), where the trainer passes the rollout
 * log-probs as `oldLogProbs`. Under no_grad it runs the rollout correction of `config.rolloutCorrection` with
 * log-ratio lp − olp (π_current / π_rollout), then dispatches on `lossType`:
 * - `ppo_clip` (default): the `vanilla` loss over the rejection-modified mask, with **no** IS weights (the PPO ratio
 *   already is the IS ratio);
 * - `reinforce`: verl's `compute_policy_loss_reinforce`, ℓ = −A·lp·w with w the detached IS weights (or 1 when
 *   `rolloutIs` is null), aggregated over the rejection-modified mask; `actor/ppo_kl` = masked_mean(olp − lp).
 *
 * The `rollout_corr/*` diagnostics are merged into the metrics. `batch.rolloutIsWeights` is ignored, as in verl
 * (the weights are computed here). Default aggregation: `token-mean` (bypass_mode's own default in verl; the
 * `seq-mean-token-sum` default of the REINFORCE function is never reached through bypass_mode).
 *
 * @module
 */
import { MASKED_MEAN_EPS } from '../aggregate.js';
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray } from '../matrix.js';
import { finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import { checkRolloutCorrectionConfig, rolloutCorrectionArrays } from './rolloutCorrection.js';
import { METRIC, type PolicyLossResult, type ResolvedBatch } from './types.js';
import { vanillaTokenPassInto } from './vanilla.js';

/** A per-token pass: ℓ and ∂ℓ/∂lp in scratch arrays (valid only where the pass's mask is 1), and its metrics. */
interface ScratchPass {
  lossMat: Float64Array;
  dLoss: Float64Array;
  metrics: Record<string, number>;
}

/**
 * The REINFORCE per-token pass: ℓ = −A·lp and ∂ℓ/∂lp = −A over `mask` (into scratch arrays), and verl's
 * `actor/ppo_kl` = masked_mean(olp − lp), accumulated inline in index order.
 */
function reinforceTokenPass(batch: ResolvedBatch, mask: FloatArray): ScratchPass {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv } = batch;
  const n = batch.B * batch.T;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  let nValid = 0;
  let klSum = 0;
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    nValid++;
    const negA = -(adv[k] as number);
    lossMat[k] = negA * (lp[k] as number);
    dLoss[k] = negA;
    klSum += -((lp[k] as number) - (olp[k] as number));
  }
  return { lossMat, dLoss, metrics: { [METRIC.ppoKl]: klSum / (nValid + MASKED_MEAN_EPS) } };
}

/** The vanilla per-token pass over `mask`, into scratch arrays. */
function vanillaScratchPass(batch: ResolvedBatch, config: ResolvedPolicyLossConfig, mask: FloatArray): ScratchPass {
  const n = batch.B * batch.T;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  return { lossMat, dLoss, metrics: vanillaTokenPassInto(batch, config, mask, lossMat, dLoss) };
}

/**
 * The `bypass_mode` strategy. An all-masked batch returns loss 0, a zero gradient and the inner loss's metrics
 * (verl raises a ValueError there). The rollout-correction configuration is validated on every call
 * ({@link UnknownModeError} / {@link ConfigError} naming `rolloutCorrection.*`).
 */
export function bypassModeLoss(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const rc = config.rolloutCorrection;
  const { B, T } = batch;
  checkRolloutCorrectionConfig(rc);
  const reinforce = rc.lossType === 'reinforce';
  let valid = 0;
  for (let k = 0; k < batch.mask.length; k++) if (batch.mask[k] !== 0) valid++;
  if (valid === 0) {
    const pass = reinforce ? reinforceTokenPass(batch, batch.mask) : vanillaScratchPass(batch, config, batch.mask);
    const grad = batch.gradInto ?? new Float64Array(B * T);
    if (batch.gradInto) grad.fill(0);
    return { loss: 0, grad, metrics: pass.metrics };
  }
  // verl: old_log_prob=log_prob (π_current), rollout_log_prob=old_log_prob, under no_grad
  const corr = rolloutCorrectionArrays(batch.logProbs, batch.oldLogProbs, batch.mask, B, T, rc);
  const effMask = corr.mask;
  let result: PolicyLossResult;
  if (reinforce) {
    const pass = reinforceTokenPass(batch, effMask);
    result = finishTokenLoss({ ...batch, rolloutIsWeights: corr.weights }, config, pass.lossMat, pass.dLoss, 'token-mean', pass.metrics, effMask);
  } else {
    const pass = vanillaScratchPass(batch, config, effMask);
    result = finishTokenLoss({ ...batch, rolloutIsWeights: null }, config, pass.lossMat, pass.dLoss, 'token-mean', pass.metrics, effMask);
  }
  Object.assign(result.metrics, corr.metrics);
  return result;
}

registerBuiltin({ name: 'bypass_mode', cpu: bypassModeLoss, defaultAggMode: 'token-mean' });
