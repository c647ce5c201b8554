/**
 * `kl_cov`: KL-Cov (arXiv 2505.22617), verl CA:1555-1632.
 *
 * d = lp − olp (no ±20 clamp); r = exp(d); ℓ = −A·r everywhere (no clipping). Over the valid tokens,
 * cov = (A − mean A)·(lp − mean lp) (plain means over the N valid tokens); the k = max(1, ⌊N·ratio⌋) tokens with the
 * largest cov get ℓ = −A·r + ppoKlCoef·|d| (∂|d|/∂d = sign(d), 0 at d = 0). Nothing when N = 0.
 *
 * **Tie rule (verl leaves it to torch.topk):** tokens with equal covariance at the cut are taken lowest row-major
 * index first.
 *
 * Metrics: only `actor/ppo_kl` = masked mean of |d| (absolute value, as verl reports it).
 *
 * @module
 */
import { MASKED_MEAN_EPS } from '../aggregate.js';
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { ConfigError } from '../errors.js';
import { scratch, topKMaskInto } from './common.js';
import { registerBuiltin } from './registry.js';
import { type RowsInput, type RowsKernel, type RowsOutput, endRow, rowsStrategy, setRangeSums } from './rows.js';
import { METRIC, type PolicyLossResult, type ResolvedBatch } from './types.js';

/**
 * kl_cov's selection: `out[k] = 1` for the max(1, ⌊N·ratio⌋) valid tokens with the largest covariance
 * (A − mean A)·(lp − mean lp) (plain means over the N valid tokens), ties lowest index first ({@link topKMaskInto});
 * 0 everywhere else (every entry of `out[0..n)` written). Returns N. The one selection of the CPU reference and the
 * WebGPU engine's host step.
 */
export function klCovSelectInto(adv: ArrayLike<number>, lp: ArrayLike<number>, mask: ArrayLike<number>, n: number, ratio: number, out: { [i: number]: number }): number {
  let N = 0;
  let sumA = 0;
  let sumLp = 0;
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    N++;
    sumA += adv[k] as number;
    sumLp += lp[k] as number;
  }
  if (N === 0) {
    for (let k = 0; k < n; k++) out[k] = 0;
    return 0;
  }
  const meanA = sumA / N;
  const meanLp = sumLp / N;
  const cov = scratch('klCovCov', n); // read only at valid positions
  for (let k = 0; k < n; k++) if (mask[k] !== 0) cov[k] = ((adv[k] as number) - meanA) * ((lp[k] as number) - meanLp);
  topKMaskInto(cov, mask, n, Math.max(1, Math.floor(N * ratio)), out);
  return N;
}

/**
 * The kl_cov loss of a range of whole rows, with the row kernels' inputs and outputs (`rows.ts`): per valid token
 * ℓ = −A·r (+ ppoKlCoef·|d| where `klSelect` is 1), ∂ℓ/∂lp = −A·r (+ ppoKlCoef·sign(d)), times the IS weight, the row
 * sums and the gradient chain `rowCoef_i · w · ∂ℓ/∂lp`; `sums` = [nValid, Σ|d|, 0, 0] (verl reports the masked mean
 * of |d| as ppo_kl). The reference and the two-thread path both run it, so they agree bit for bit.
 */
export const klCovRows: RowsKernel = Object.assign(
  (input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput): void => {
    const { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
    const sel = input.klSelect ?? null;
    const { grad, lossMat } = out;
    const klCoef = config.ppoKlCoef;
    let nValid = 0;
    let absDSum = 0; // Σ |d| over valid positions, in index order (masked_mean in `metrics`)
    for (let i = 0; i < rows; i++) {
      const coef = rowCoef ? (rowCoef[i] as number) : 1;
      let rs = 0;
      for (let k = i * T, end = k + T; k < end; k++) {
        if (mask[k] === 0) {
          grad[k] = 0;
          continue;
        }
        nValid++;
        const d = (lp[k] as number) - (olp[k] as number);
        absDSum += Math.abs(d);
        const a = adv[k] as number;
        const r = Math.exp(d);
        let l = -a * r;
        let g = -a * r;
        if (sel !== null && sel[k] !== 0) {
          l = l + klCoef * Math.abs(d);
          g = g + klCoef * Math.sign(d);
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
    setRangeSums(out, nValid, absDSum, 0, 0);
  },
  { metrics: (sums: Float64Array): Record<string, number> => ({ [METRIC.ppoKl]: (sums[1] as number) / ((sums[0] as number) + MASKED_MEAN_EPS) }) },
);

/** kl_cov's ratio check, as verl asserts it (the CPU reference, the two-thread path and the WebGPU engine). */
export function checkKlCovRatio(config: Pick<ResolvedPolicyLossConfig, 'klCovRatio'>): void {
  if (!(config.klCovRatio > 0)) throw new ConfigError(`klCovRatio must be > 0 for kl_cov (verl asserts it), got ${config.klCovRatio}`, 'klCovRatio');
}

/** The `kl_cov` strategy; default aggregation `token-mean`. */
export function klCovLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  checkKlCovRatio(config);
  const n = batch.B * batch.T;
  const sel = scratch('klCovSel', n);
  klCovSelectInto(batch.advantages, batch.logProbs, batch.mask, n, config.klCovRatio, sel);
  return rowsStrategy(klCovRows, batch, config, 'token-mean', undefined, sel);
}

registerBuiltin({ name: 'kl_cov', cpu: klCovLossStrategy, defaultAggMode: 'token-mean', kernel: 'kl_cov' });
