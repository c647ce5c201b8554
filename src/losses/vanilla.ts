/**
 * `vanilla`: PPO clip with DAPO's decoupled clip-higher (εl, εh) and dual-clip (c), verl CA:1159-1250.
 *
 * ℓ = where(A < 0, min(−A·c, max(−A·r, −A·clip(r, 1−εl, 1+εh))), max(−A·r, −A·clip(r, 1−εl, 1+εh))),
 * r = exp(clamp(lp − olp, ±20)). Gradients follow torch: clamp passes on its bounds, max/min split 50/50 on ties.
 *
 * @module
 */
import { maskedMean } from '../aggregate.js';
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { LOG_RATIO_CLAMP, finishTokenLoss } from './common.js';
import { registerBuiltin } from './registry.js';
import { METRIC, type PolicyLossResult, type ResolvedBatch } from './types.js';

/** The per-token pass of the vanilla loss: ℓ, ∂ℓ/∂lp and the metrics (over the response mask). */
export interface TokenPass {
  lossMat: Float64Array;
  dLoss: Float64Array;
  metrics: Record<string, number>;
}

/** The per-token part of `vanilla` (shared with `eighty-twenty` and `bypass_mode`); `mask` defaults to the response mask. */
export function vanillaTokenPass(batch: ResolvedBatch, config: ResolvedPolicyLossConfig, mask: Float64Array = batch.mask): TokenPass {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv } = batch;
  const n = batch.B * batch.T;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const c = config.clipRatioC;
  const lossMat = new Float64Array(n);
  const dLoss = new Float64Array(n);
  const negD = new Float64Array(n);
  const clipped = new Float64Array(n);
  const clippedLower = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    const raw = (lp[k] as number) - (olp[k] as number);
    const d = raw < -LOG_RATIO_CLAMP ? -LOG_RATIO_CLAMP : raw > LOG_RATIO_CLAMP ? LOG_RATIO_CLAMP : raw;
    const dd = raw >= -LOG_RATIO_CLAMP && raw <= LOG_RATIO_CLAMP ? 1 : 0;
    negD[k] = -d;
    const a = adv[k] as number;
    const r = Math.exp(d);
    const l1 = -a * r;
    const g1 = -a * r * dd;
    const rc = r < lo ? lo : r > hi ? hi : r;
    const l2 = -a * rc;
    const g2 = r >= lo && r <= hi ? g1 : 0;
    let lc: number;
    let gc: number;
    if (l1 > l2) {
      lc = l1;
      gc = g1;
    } else if (l2 > l1) {
      lc = l2;
      gc = g2;
      clipped[k] = 1;
    } else {
      lc = l1;
      gc = 0.5 * (g1 + g2);
    }
    if (a < 0) {
      const l3 = -a * c;
      if (lc > l3) clippedLower[k] = 1;
      if (l3 < lc) {
        lossMat[k] = l3;
        dLoss[k] = 0;
      } else if (lc < l3) {
        lossMat[k] = lc;
        dLoss[k] = gc;
      } else {
        lossMat[k] = lc;
        dLoss[k] = 0.5 * gc;
      }
    } else {
      lossMat[k] = lc;
      dLoss[k] = gc;
    }
  }
  const metrics = {
    [METRIC.pgClipfrac]: maskedMean(clipped, mask),
    [METRIC.ppoKl]: maskedMean(negD, mask),
    [METRIC.pgClipfracLower]: maskedMean(clippedLower, mask),
  };
  return { lossMat, dLoss, metrics };
}

/** The `vanilla` strategy (PPO / DAPO clip-higher / dual-clip); default aggregation `token-mean`. */
export function vanillaLoss(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { lossMat, dLoss, metrics } = vanillaTokenPass(batch, config);
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', metrics);
}

registerBuiltin({ name: 'vanilla', cpu: vanillaLoss, defaultAggMode: 'token-mean', kernel: 'vanilla' });
