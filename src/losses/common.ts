/**
 * The step every token-level policy loss ends with: apply the rollout IS weights, aggregate with the mode, and
 * chain the aggregation's gradient into d loss / d logProbs.
 *
 * @module
 */
import { aggregateRows } from '../aggregate.js';
import type { LossAggMode, ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { rowLengths } from '../matrix.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/**
 * Finish a token-level loss.
 *
 * @param batch - the validated batch
 * @param config - the resolved config (its `lossAggMode`, when set, overrides `defaultMode`)
 * @param lossMat - ℓ_it, owned by the caller and modified in place (IS weights applied)
 * @param dLoss - ∂ℓ_it/∂lp_it, owned by the caller and modified in place
 * @param defaultMode - the strategy's own aggregation mode
 * @param metrics - the strategy's metrics
 * @param aggMask - the mask to aggregate with, when it differs from the response mask (eighty-twenty)
 */
export function finishTokenLoss(
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  lossMat: Float64Array,
  dLoss: Float64Array,
  defaultMode: LossAggMode,
  metrics: Record<string, number>,
  aggMask?: Float64Array,
): PolicyLossResult {
  const { B, T, rolloutIsWeights: w } = batch;
  const mask = aggMask ?? batch.mask;
  const lengths = aggMask ? rowLengths({ data: aggMask, rows: B, cols: T }) : batch.lengths;
  if (w) {
    for (let k = 0; k < lossMat.length; k++) {
      if (mask[k] === 0) continue;
      lossMat[k] = (lossMat[k] as number) * (w[k] as number);
      dLoss[k] = (dLoss[k] as number) * (w[k] as number);
    }
  }
  const mode = config.lossAggMode ?? defaultMode;
  const { loss, rowCoef } = aggregateRows(lossMat, mask, B, T, mode, config.globalBatchInfo, lengths);
  const grad = new Float64Array(B * T);
  for (let i = 0; i < B; i++) {
    const c = rowCoef[i] as number;
    if (c === 0) continue;
    for (let j = 0, k = i * T; j < T; j++, k++) if (mask[k] !== 0) grad[k] = c * (dLoss[k] as number);
  }
  return { loss, grad, metrics };
}

/** verl's log-ratio clamp (±20) used by vanilla, sapo, cispo and the rollout IS weights. */
export const LOG_RATIO_CLAMP = 20;

/**
 * Indices of the `k` largest `values`, ties broken by the lower index first; returned in selection order.
 * `indices` are the candidate positions (e.g. the flat indices of the valid tokens), `values[i]` belongs to
 * `indices[i]`.
 */
export function topKByValue(values: ArrayLike<number>, indices: readonly number[], k: number): number[] {
  const order = indices.map((_, i) => i);
  order.sort((x, y) => {
    const vx = values[x] as number;
    const vy = values[y] as number;
    if (vx > vy) return -1;
    if (vx < vy) return 1;
    return (indices[x] as number) - (indices[y] as number);
  });
  return order.slice(0, Math.min(k, order.length)).map((i) => indices[i] as number);
}
