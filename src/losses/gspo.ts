/**
 * `gspo`: Group Sequence Policy Optimization (arXiv 2507.18071), verl CA:1253-1326, in its GSPO-token form.
 *
 * s_i = exp(Σ_t m·(lp − olp) / max(L_i, 1)) (no ±20 clamp on the token log-ratio); the per-token ratio is
 * st = exp(min(lp − sg[lp] + sg[log s_i], 10)), so its value is s_i (capped at e^10) and ∂st/∂lp_t = st (0 above
 * the cap). ℓ = max(−A·st, −A·clip(st, 1−εl, 1+εh)); no dual-clip. Aggregated with `seq-mean-token-mean` unless
 * `config.lossAggMode` is set (verl ignores the passed mode; we honour an explicit one).
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';
import { type RowsInput, type RowsOutput, endRow, rowsStrategy, setRangeSums } from './rows.js';

/** GSPO's upper cap on the combined sequence log-ratio (verl clamps `log_seq_importance_ratio` at max 10). */
export const GSPO_LOG_RATIO_CAP = 10;

/**
 * The gspo loss of a range of whole rows, with `vanillaRows`' inputs and outputs: per row the sequence ratio
 * s_i from the mean log-ratio over the row's valid tokens, then per token ℓ and ∂ℓ/∂lp, the IS weight, the row sum and
 * the gradient chain `rowCoef_i · w · ∂ℓ/∂lp` (`sums` = [nValid, klSum, nClipped, 0]). The reference and the two-thread
 * path both run it, so they agree bit for bit.
 */
export function gspoRows(input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput): void {
  const { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
  const { grad, lossMat } = out;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  // masked_mean metrics, accumulated inline in index order
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  for (let i = 0; i < rows; i++) {
    const coef = rowCoef ? (rowCoef[i] as number) : 1;
    const rowStart = i * T;
    const rowEnd = rowStart + T;
    let s = 0;
    let len = 0;
    for (let k = rowStart; k < rowEnd; k++) {
      if (mask[k] === 0) continue;
      const d = (lp[k] as number) - (olp[k] as number);
      len++;
      klSum += -d;
      s += d;
    }
    nValid += len;
    const sLog = s / Math.max(len, 1);
    const logst = sLog > GSPO_LOG_RATIO_CAP ? GSPO_LOG_RATIO_CAP : sLog;
    const pass = sLog <= GSPO_LOG_RATIO_CAP ? 1 : 0; // clamp(max=10) passes the gradient at the bound
    const st = Math.exp(logst);
    const stc = st < lo ? lo : st > hi ? hi : st;
    const inBand = st >= lo && st <= hi ? 1 : 0;
    let rs = 0;
    for (let k = rowStart; k < rowEnd; k++) {
      if (mask[k] === 0) {
        grad[k] = 0;
        continue;
      }
      const a = adv[k] as number;
      const l1 = -a * st;
      const l2 = -a * stc;
      const g1 = -a * st * pass;
      const g2 = g1 * inBand;
      let l: number;
      let g: number;
      if (l1 > l2) {
        l = l1;
        g = g1;
      } else if (l2 > l1) {
        l = l2;
        g = g2;
        nClipped++;
      } else {
        l = l1;
        g = 0.5 * (g1 + g2);
      }
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

/** The `gspo` strategy; default aggregation `seq-mean-token-mean`. */
export function gspoLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  return rowsStrategy(gspoRows, batch, config, 'seq-mean-token-mean');
}

registerBuiltin({ name: 'gspo', cpu: gspoLossStrategy, defaultAggMode: 'seq-mean-token-mean', kernel: 'gspo' });
