/**
 * `vanilla`: PPO clip with DAPO's decoupled clip-higher (εl, εh) and dual-clip (c), verl CA:1159-1250.
 *
 * ℓ = where(A < 0, min(−A·c, max(−A·r, −A·clip(r, 1−εl, 1+εh))), max(−A·r, −A·clip(r, 1−εl, 1+εh))),
 * r = exp(clamp(lp − olp, ±20)). Gradients follow torch: clamp passes on its bounds, max/min split 50/50 on ties.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray } from '../matrix.js';
import { clampLogRatio, clampLogRatioGrad, RATIO_BLOCK, clampedRatioBlock, clipMetrics, finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** The per-token pass of the vanilla loss: ℓ, ∂ℓ/∂lp and the metrics (over the response mask). */
export interface TokenPass {
  /** ℓ_it (0 at positions outside the mask). */
  lossMat: Float64Array;
  /** ∂ℓ_it/∂lp_it (0 at positions outside the mask). */
  dLoss: Float64Array;
  /** `actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower` over the mask. */
  metrics: Record<string, number>;
}

/**
 * The per-token part of `vanilla` (shared with `eighty-twenty` and `bypass_mode`); `mask` defaults to the response
 * mask. Returns fresh arrays (the strategies themselves use scratch arrays through {@link vanillaTokenPassInto}).
 */
export function vanillaTokenPass(batch: ResolvedBatch, config: ResolvedPolicyLossConfig, mask: FloatArray = batch.mask): TokenPass {
  const n = batch.B * batch.T;
  const lossMat = new Float64Array(n);
  const dLoss = new Float64Array(n);
  const metrics = vanillaTokenPassInto(batch, config, mask, lossMat, dLoss);
  return { lossMat, dLoss, metrics };
}

/** The ratios of one block (module-level: the pass is synchronous and single-threaded). */
const ratioBlock = new Float64Array(RATIO_BLOCK);

/**
 * {@link vanillaTokenPass} into caller arrays: writes `lossMat[k]` and `dLoss[k]` wherever `mask[k]` is non-zero
 * (other entries are left as they were) and returns the metrics, accumulated inline in index order (the same sums,
 * in the same order, as `maskedMean` over per-token arrays, so bit-identical).
 *
 * Per block of {@link RATIO_BLOCK} tokens: the ratios first ({@link clampedRatioBlock}), then the call-free clip loop.
 */
export function vanillaTokenPassInto(
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  mask: FloatArray,
  lossMat: Float64Array,
  dLoss: Float64Array,
): Record<string, number> {
  const { nValid, klSum, nClipped, nClippedLower } = vanillaTokenSumsInto(batch, config, mask, lossMat, dLoss);
  return clipMetrics(nValid, klSum, nClipped, nClippedLower); // verl's masked_mean: Σ m·v / (Σ m + 1e-8)
}

/** The raw sums behind the vanilla metrics (over the mask), before verl's masked-mean division. */
export interface VanillaTokenSums {
  /** Σ m (valid positions). */
  nValid: number;
  /** Σ m·(olp − lp) after the ±20 clamp, in index order. */
  klSum: number;
  /** Valid positions where the clipped term won. */
  nClipped: number;
  /** Valid positions cut by the dual-clip bound c. */
  nClippedLower: number;
}

/**
 * {@link vanillaTokenPassInto} returning the raw metric sums instead of the means (the two-thread path adds the
 * sums of its row ranges before dividing). Same writes to `lossMat` / `dLoss`.
 */
export function vanillaTokenSumsInto(
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  mask: FloatArray,
  lossMat: Float64Array,
  dLoss: Float64Array,
): VanillaTokenSums {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv } = batch;
  const n = batch.B * batch.T;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const c = config.clipRatioC;
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  let nClippedLower = 0;
  const e = ratioBlock;
  for (let k0 = 0; k0 < n; k0 += RATIO_BLOCK) {
    const k1 = Math.min(n, k0 + RATIO_BLOCK);
    clampedRatioBlock(lp, olp, mask, k0, k1, e);
    for (let k = k0; k < k1; k++) {
      if (mask[k] === 0) continue;
      nValid++;
      const raw = (lp[k] as number) - (olp[k] as number);
      const d = clampLogRatio(raw);
      const dd = clampLogRatioGrad(raw);
      klSum += -d;
      const a = adv[k] as number;
      const r = e[k - k0] as number;
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
        nClipped++;
      } else {
        lc = l1;
        gc = 0.5 * (g1 + g2);
      }
      if (a < 0) {
        const l3 = -a * c;
        if (lc > l3) nClippedLower++;
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
  }
  return { nValid, klSum, nClipped, nClippedLower };
}

/** The `vanilla` strategy (PPO / DAPO clip-higher / dual-clip); default aggregation `token-mean`. */
export function vanillaLoss(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const n = batch.B * batch.T;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  const metrics = vanillaTokenPassInto(batch, config, batch.mask, lossMat, dLoss);
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', metrics);
}

registerBuiltin({ name: 'vanilla', cpu: vanillaLoss, defaultAggMode: 'token-mean', kernel: 'vanilla' });
