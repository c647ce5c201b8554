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
 * The entries of `indices` whose `values` are the `k` largest (exact top-k), ties at the cut broken by the lowest
 * index first. `values[i]` belongs to `indices[i]`; values must not be NaN. Returned in ascending index order.
 * O(n log n) through a native typed-array sort of the values, then one pass.
 */
export function topKByValue(values: ArrayLike<number>, indices: readonly number[], k: number): number[] {
  const n = indices.length;
  const kk = Math.min(Math.max(0, Math.floor(k)), n);
  if (kk === 0) return [];
  const sorted = new Float64Array(n);
  for (let i = 0; i < n; i++) sorted[i] = values[i] as number;
  sorted.sort();
  const cut = sorted[n - kk] as number; // the k-th largest value
  const atCut: number[] = [];
  const out = new Float64Array(kk);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    if (v > cut) out[o++] = indices[i] as number;
    else if (v === cut) atCut.push(indices[i] as number);
  }
  const ties = Float64Array.from(atCut).sort();
  for (let t = 0; o < kk; t++) out[o++] = ties[t] as number;
  return Array.from(out.sort());
}
