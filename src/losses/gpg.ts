/**
 * `gpg`: Group Policy Gradient, verl CA:1414-1447. ℓ = −lp·A (no ratio, no old policy); ∂ℓ/∂lp = −A.
 * The metrics dict is empty, as in verl.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { registerBuiltin } from './registry.js';
import { type RowsInput, type RowsKernel, type RowsOutput, endRow, rowsStrategy, setRangeSums } from './rows.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/**
 * The gpg loss of a range of whole rows in one pass (`vanillaRows`' inputs and outputs): ℓ = −lp·A·w and
 * ∂ℓ/∂lp = −A·w at valid positions, the row sums and the gradient chain `rowCoef_i · ∂ℓ/∂lp`; `sums` = [nValid, 0,
 * 0, 0] and no metrics (verl's gpg returns an empty dict). The reference and the two-thread path both run it.
 */
export const gpgRows: RowsKernel = Object.assign(
  (input: RowsInput, _config: ResolvedPolicyLossConfig, out: RowsOutput): void => {
    const { rows, T, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
    const { grad, lossMat } = out;
    let nValid = 0;
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
        const a = adv[k] as number;
        let l = -(lp[k] as number) * a;
        let g = -a;
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
    setRangeSums(out, nValid, 0, 0, 0);
  },
  { metrics: (): Record<string, number> => ({}) },
);

/** The `gpg` strategy (plain REINFORCE-style −lp·A); default aggregation `token-mean`; no metrics. */
export function gpgLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  return rowsStrategy(gpgRows, batch, config, 'token-mean');
}

registerBuiltin({ name: 'gpg', cpu: gpgLossStrategy, defaultAggMode: 'token-mean', kernel: 'gpg' });
