/**
 * `geo_mean`: Geometric-Mean Policy Optimization (GMPO, arXiv 2507.20673), verl CA:1635-1718.
 *
 * d = lp − olp (no ±20 clamp); the clip is in log space: dc = clamp(d, −εl, εh); d* = sgn·min(sgn·d, sgn·dc)
 * with sgn = sign(A) (A > 0: min(d, dc); A < 0: max(d, dc); A = 0: 0). Per sequence
 * ρ_i = exp(Σ_t m·d* / (L_i + 1e-8)), Â_i = Σ_t m·A / (L_i + 1e-8), ℓ_i = −Â_i·ρ_i (times the geometric mean of
 * the IS weights, exp(Σ_t m·log(w + 1e-10) / (L_i + 1e-8)), when given). loss = Σ_i ℓ_i / B, a plain mean over
 * all B rows, fully masked rows included as 0.
 *
 * Aggregation: like verl, `geo_mean` always uses this row mean ('row-mean'); `config.lossAggMode` and
 * `config.globalBatchInfo` are ignored (a per-sequence loss has no token aggregation to choose).
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { clipMetrics, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';
import { type RowsInput, type RowsOutput, setRangeSums } from './rows.js';

/** geo_mean's per-sequence denominator epsilon (L_i + 1e-8). */
export const GEO_MEAN_EPS = 1e-8;
/** geo_mean's epsilon inside log(w + 1e-10) for the IS weights' geometric mean. */
export const GEO_MEAN_LOG_W_EPS = 1e-10;

/**
 * The geo_mean loss of a range of whole rows, with the row kernels' inputs and outputs (`rows.ts`): per row ℓ_i and
 * the gradient `rowCoef_i · ℓ_i / (L_i + 1e-8) · ∂d*_t/∂d_t` at its valid tokens, with `rowCoef_i` the row's share of
 * the mean (1/B). `rowSums[i]` = ℓ_i (the loss is Σ_i ℓ_i / B, summed in row order by the caller); `sums` = [nValid,
 * klSum, nClipped (A > 0), nClippedLower (A < 0)]. The reference and the two-thread path both run it, so they agree
 * bit for bit.
 */
export function geoMeanRows(input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput): void {
  const { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
  const { grad } = out;
  const epsL = config.clipRatioLow;
  const epsH = config.clipRatioHigh;
  const dStarGrad = scratch('geoRow', T); // one row's ∂d*/∂d, read only where the mask is 1
  // masked_mean metrics, accumulated inline in index order
  let nValid = 0;
  let klSum = 0;
  let nClipHi = 0;
  let nClipLo = 0;
  for (let i = 0; i < rows; i++) {
    let sumD = 0;
    let sumA = 0;
    let sumLogW = 0;
    let len = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      if (mask[k] === 0) continue;
      len++;
      const d = (lp[k] as number) - (olp[k] as number);
      klSum += -d;
      const a = adv[k] as number;
      const dc = d < -epsL ? -epsL : d > epsH ? epsH : d;
      const inBand = d >= -epsL && d <= epsH ? 1 : 0;
      if (d !== dc) {
        if (a > 0) nClipHi++;
        else if (a < 0) nClipLo++;
      }
      const sgn = a > 0 ? 1 : a < 0 ? -1 : 0;
      // min(sgn·d, sgn·dc): torch splits the gradient 50/50 on a tie; ∂(sgn·dc)/∂d = sgn·inBand.
      const x = sgn * d;
      const y = sgn * dc;
      let m: number;
      let gm: number;
      if (x < y) {
        m = x;
        gm = sgn;
      } else if (y < x) {
        m = y;
        gm = sgn * inBand;
      } else {
        m = x;
        gm = 0.5 * (sgn + sgn * inBand);
      }
      sumD += sgn * m;
      dStarGrad[j] = sgn * gm;
      sumA += a;
      if (w) sumLogW += Math.log((w[k] as number) + GEO_MEAN_LOG_W_EPS);
    }
    nValid += len;
    const denom = len + GEO_MEAN_EPS;
    const rho = Math.exp(sumD / denom);
    const aHat = sumA / denom;
    const seqW = w ? Math.exp(sumLogW / denom) : 1;
    const li = -aHat * rho * seqW;
    // ∂ℓ_i/∂lp_t = ℓ_i · (1/denom) · ∂d*_t/∂d_t, times the row's share of the mean
    const c = rowCoef ? (li / denom) * (rowCoef[i] as number) : li / denom;
    for (let j = 0, k = i * T; j < T; j++, k++) grad[k] = mask[k] !== 0 ? c * (dStarGrad[j] as number) : 0;
    if (out.rowSums !== null) out.rowSums[i] = li;
  }
  setRangeSums(out, nValid, klSum, nClipHi, nClipLo);
}

/** geo_mean's loss from its rows' ℓ_i: the plain mean over all B rows, summed in row order (−0 becomes 0). */
export function geoMeanCombine(rowSums: Float64Array, B: number): number {
  let loss = 0;
  for (let i = 0; i < B; i++) loss += rowSums[i] as number;
  return (B > 0 ? loss / B : 0) + 0;
}

/** geo_mean's per-row coefficients: each row's share 1/B of the plain mean. */
export function geoMeanRowCoef(B: number): Float64Array {
  return new Float64Array(B).fill(B > 0 ? 1 / B : 0);
}

/** The `geo_mean` strategy; its own aggregation ('row-mean': plain mean of per-sequence losses over B rows). */
export function geoMeanLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { B, T, oldLogProbs, logProbs, advantages, mask, rolloutIsWeights } = batch;
  const grad = batch.gradInto ?? new Float64Array(B * T);
  const rowSums = scratch('geoRowSums', B);
  const sums = new Float64Array(4);
  geoMeanRows(
    { rows: B, T, oldLogProbs, logProbs, advantages, mask, rolloutIsWeights, rowCoef: geoMeanRowCoef(B) },
    config,
    { grad, lossMat: null, rowSums, sums },
  );
  return { loss: geoMeanCombine(rowSums, B), grad, metrics: clipMetrics(sums[0] as number, sums[1] as number, sums[2] as number, sums[3] as number) };
}

registerBuiltin({ name: 'geo_mean', cpu: geoMeanLossStrategy, defaultAggMode: 'row-mean', kernel: 'geo_mean' });
