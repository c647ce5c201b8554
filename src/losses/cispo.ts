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
import { RATIO_BLOCK, clampLogRatio, clampedRatioBlock, clipMetrics, finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** The ratios of one block (module-level: the pass is synchronous and single-threaded). */
const ratioBlock = new Float64Array(RATIO_BLOCK);

/** The `cispo` strategy; default aggregation `token-mean`. */
export function cispoLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv, mask } = batch;
  const n = batch.B * batch.T;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  const e = ratioBlock;
  for (let k0 = 0; k0 < n; k0 += RATIO_BLOCK) {
    const k1 = Math.min(n, k0 + RATIO_BLOCK);
    clampedRatioBlock(lp, olp, mask, k0, k1, e); // r first, so this loop is call-free
    for (let k = k0; k < k1; k++) {
      if (mask[k] === 0) continue;
      nValid++;
      const raw = (lp[k] as number) - (olp[k] as number);
      const d = clampLogRatio(raw);
      klSum += -d;
      const r = e[k - k0] as number;
      const rc = r < lo ? lo : r > hi ? hi : r;
      if (r !== rc) nClipped++;
      const a = adv[k] as number;
      lossMat[k] = -rc * a * (lp[k] as number);
      dLoss[k] = -rc * a;
    }
  }
  const metrics = clipMetrics(nValid, klSum, nClipped, 0);
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', metrics);
}

registerBuiltin({ name: 'cispo', cpu: cispoLossStrategy, defaultAggMode: 'token-mean', kernel: 'cispo' });
