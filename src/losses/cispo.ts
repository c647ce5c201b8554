/**
 * `cispo`: clipped IS-weight policy optimisation (MiniMax-M1), verl CA:1721-1779.
 *
 * r = exp(clamp(lp − olp, ±20)); rc = clip(r, 1−εl, 1+εh), detached; ℓ = −sg[rc]·A·lp. The gradient −rc·A flows
 * for every token, clipped ones included. Metrics: `actor/pg_clipfrac` = mean [r ≠ rc], `actor/ppo_kl` on the
 * clamped log-ratio, `actor/pg_clipfrac_lower` = 0.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { LOG_RATIO_CLAMP } from './common.js';
import { registerBuiltin } from './registry.js';
import { type RowsInput, type RowsOutput, endRow, rowsStrategy, setRangeSums } from './rows.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** {@link LOG_RATIO_CLAMP} as a module-local literal V8 folds into the loop (as in vanilla.ts). */
const CLAMP: typeof LOG_RATIO_CLAMP = 20;

/**
 * The cispo loss of a range of whole rows in one pass (`vanillaRows`' inputs and outputs): per token ℓ = −rc·A·lp
 * and ∂ℓ/∂lp = −rc·A (rc = the clipped ratio, detached), the IS weight, the row sum and the gradient chain;
 * `sums` = [nValid, klSum, nClipped, 0]. The reference and the two-thread path both run it.
 */
export function cispoRows(input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput): void {
  const { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
  const { grad, lossMat } = out;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  for (let i = 0; i < rows; i++) {
    const coef = rowCoef ? (rowCoef[i] as number) : 1;
    const rowEnd = (i + 1) * T;
    let rs = 0;
    for (let k = i * T; k < rowEnd; k++) {
      if (mask[k] === 0) {
        grad[k] = 0;
        continue;
      }
      nValid++;
      const lpk = lp[k] as number;
      const raw = lpk - (olp[k] as number);
      const d = raw < -CLAMP ? -CLAMP : raw > CLAMP ? CLAMP : raw; // clampLogRatio, inlined (see vanilla.ts)
      klSum += -d;
      const r = Math.exp(d);
      const rc = r < lo ? lo : r > hi ? hi : r;
      if (r !== rc) nClipped++;
      const a = adv[k] as number;
      let l = -rc * a * lpk;
      let g = -rc * a;
      if (w !== null) {
        const wk = w[k] as number;
        l *= wk;
        g *= wk;
      }
      if (lossMat !== null) lossMat[k] = l;
      rs += l;
      grad[k] = coef * g;
    }
    endRow(out, i, T, coef, rs);
  }
  setRangeSums(out, nValid, klSum, nClipped, 0);
}

/** The `cispo` strategy; default aggregation `token-mean`. */
export function cispoLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  return rowsStrategy(cispoRows, batch, config, 'token-mean');
}

registerBuiltin({ name: 'cispo', cpu: cispoLossStrategy, defaultAggMode: 'token-mean', kernel: 'cispo' });
