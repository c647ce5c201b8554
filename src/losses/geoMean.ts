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

/** geo_mean's per-sequence denominator epsilon (L_i + 1e-8). */
export const GEO_MEAN_EPS = 1e-8;
/** geo_mean's epsilon inside log(w + 1e-10) for the IS weights' geometric mean. */
export const GEO_MEAN_LOG_W_EPS = 1e-10;

/** The `geo_mean` strategy; its own aggregation ('row-mean': plain mean of per-sequence losses over B rows). */
export function geoMeanLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { B, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w } = batch;
  const n = B * T;
  const epsL = config.clipRatioLow;
  const epsH = config.clipRatioHigh;
  const grad = batch.gradInto ?? new Float64Array(n);
  const dStarGrad = scratch('dLoss', n); // read only where the mask is 1
  // masked_mean metrics, accumulated inline in index order
  let nValid = 0;
  let klSum = 0;
  let nClipHi = 0;
  let nClipLo = 0;
  let loss = 0;
  for (let i = 0; i < B; i++) {
    let sumD = 0;
    let sumA = 0;
    let sumLogW = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      if (mask[k] === 0) continue;
      nValid++;
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
      dStarGrad[k] = sgn * gm;
      sumA += a;
      if (w) sumLogW += Math.log((w[k] as number) + GEO_MEAN_LOG_W_EPS);
    }
    const denom = (batch.lengths[i] as number) + GEO_MEAN_EPS;
    const rho = Math.exp(sumD / denom);
    const aHat = sumA / denom;
    const seqW = w ? Math.exp(sumLogW / denom) : 1;
    const li = -aHat * rho * seqW;
    loss += li;
    // ∂ℓ_i/∂lp_t = ℓ_i · (1/denom) · ∂d*_t/∂d_t, then the 1/B of the mean.
    const c = B > 0 ? li / denom / B : 0;
    for (let j = 0, k = i * T; j < T; j++, k++) grad[k] = mask[k] !== 0 ? c * (dStarGrad[k] as number) : 0;
  }
  loss = B > 0 ? loss / B : 0;
  const metrics = clipMetrics(nValid, klSum, nClipHi, nClipLo);
  return { loss: loss + 0, grad, metrics };
}

registerBuiltin({ name: 'geo_mean', cpu: geoMeanLossStrategy, defaultAggMode: 'row-mean', kernel: 'geo_mean' });
