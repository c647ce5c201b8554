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
import { finishTokenLoss, scratch, topKMaskInto } from './common.js';
import { registerBuiltin } from './registry.js';
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

/** The `kl_cov` strategy; default aggregation `token-mean`. */
export function klCovLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv, mask } = batch;
  const n = batch.B * batch.T;
  if (!(config.klCovRatio > 0)) throw new ConfigError(`klCovRatio must be > 0 for kl_cov (verl asserts it), got ${config.klCovRatio}`, 'klCovRatio');
  const coef = config.ppoKlCoef;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  let absDSum = 0; // Σ |d| over valid positions, in index order (masked_mean below)
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    const d = (lp[k] as number) - (olp[k] as number);
    absDSum += Math.abs(d);
    const a = adv[k] as number;
    const r = Math.exp(d);
    lossMat[k] = -a * r;
    dLoss[k] = -a * r;
  }
  const sel = scratch('klCovSel', n);
  const nValid = klCovSelectInto(adv, lp, mask, n, config.klCovRatio, sel);
  for (let k = 0; k < n; k++) {
    if (sel[k] === 0) continue;
    const d = (lp[k] as number) - (olp[k] as number);
    lossMat[k] = (lossMat[k] as number) + coef * Math.abs(d);
    dLoss[k] = (dLoss[k] as number) + coef * Math.sign(d);
  }
  const metrics = { [METRIC.ppoKl]: absDSum / (nValid + MASKED_MEAN_EPS) };
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', metrics);
}

registerBuiltin({ name: 'kl_cov', cpu: klCovLossStrategy, defaultAggMode: 'token-mean', kernel: 'kl_cov' });
