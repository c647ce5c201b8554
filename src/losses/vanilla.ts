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
import { LOG_RATIO_CLAMP, RATIO_BLOCK, clipMetrics } from './common.js';
import { registerBuiltin } from './registry.js';
import { type RowsInput, type RowsOutput, endRow, rowsStrategy, setRangeSums } from './rows.js';
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

/**
 * {@link LOG_RATIO_CLAMP} as a module-local literal (its type pins it to the shared constant): V8 folds it into the
 * loop's comparisons; reading the imported binding instead made {@link vanillaRows} ~25 % slower (15 vs 12 ns/token).
 */
const CLAMP: typeof LOG_RATIO_CLAMP = 20;

/** The ratios of one block (module-level: the pass is synchronous and single-threaded per thread). */
const ratioBlock = new Float64Array(RATIO_BLOCK);

/**
 * {@link vanillaTokenPass} into caller arrays: writes `lossMat[k]` wherever `mask[k]` is non-zero (other entries are
 * left as they were) and `dLoss[k]` everywhere (0 where the mask is 0), and returns the metrics, accumulated inline
 * in index order (the same sums, in the same order, as `maskedMean` over per-token arrays, so bit-identical).
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
 * {@link vanillaTokenPassInto} returning the raw metric sums instead of the means (the per-token form of
 * {@link vanillaRows}, with every row coefficient 1). Same writes to `lossMat` / `dLoss`.
 */
export function vanillaTokenSumsInto(
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  mask: FloatArray,
  lossMat: Float64Array,
  dLoss: Float64Array,
): VanillaTokenSums {
  const sums = new Float64Array(4);
  const { B, T, oldLogProbs, logProbs, advantages } = batch;
  vanillaRows({ rows: B, T, oldLogProbs, logProbs, advantages, mask, rolloutIsWeights: null, rowCoef: null }, config, { grad: dLoss, lossMat, rowSums: null, sums });
  return { nValid: sums[0] as number, klSum: sums[1] as number, nClipped: sums[2] as number, nClippedLower: sums[3] as number };
}

/**
 * The vanilla loss of a range of whole rows in one pass: per token ℓ and ∂ℓ/∂lp (verl's formula, torch's
 * gradient conventions), the IS weight, the row sum and the gradient chain `rowCoef_i · w · ∂ℓ/∂lp`, with no
 * per-token intermediate arrays. The single-thread reference ({@link vanillaLoss}), the two-thread path's threads
 * and the token pass shared with eighty-twenty and bypass_mode all run this, so they agree bit for bit.
 * Per block of {@link RATIO_BLOCK} tokens the ratios come first (the loop of `clampedRatioBlock`, inlined), leaving
 * the main loop call-free; the clamp of `clampLogRatio` / `clampLogRatioGrad` is inlined too.
 */
export function vanillaRows(input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput): void {
  const { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef } = input;
  const agg = input.aggMask ?? null;
  const { grad, lossMat } = out;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const c = config.clipRatioC;
  const clampAt = CLAMP;
  const block = RATIO_BLOCK;
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  let nClippedLower = 0;
  const e = ratioBlock;
  for (let i = 0; i < rows; i++) {
    const coef = rowCoef ? (rowCoef[i] as number) : 1;
    const rowEnd = (i + 1) * T;
    let rs = 0;
    for (let k0 = i * T; k0 < rowEnd; k0 += block) {
      const k1 = Math.min(rowEnd, k0 + block);
      // the block's ratios first (clampedRatioBlock's loop, inlined here: calling it cost ~2 ns/token more)
      for (let k = k0; k < k1; k++) {
        if (mask[k] === 0) continue;
        const raw = (lp[k] as number) - (olp[k] as number);
        e[k - k0] = Math.exp(raw < -clampAt ? -clampAt : raw > clampAt ? clampAt : raw);
      }
      for (let k = k0; k < k1; k++) {
        if (mask[k] === 0) {
          grad[k] = 0;
          continue;
        }
        nValid++;
        const raw = (lp[k] as number) - (olp[k] as number);
        const d = raw < -clampAt ? -clampAt : raw > clampAt ? clampAt : raw;
        const dd = raw >= -clampAt && raw <= clampAt ? 1 : 0;
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
        let l = lc;
        let g = gc;
        if (a < 0) {
          const l3 = -a * c;
          if (lc > l3) nClippedLower++;
          if (l3 < lc) {
            l = l3;
            g = 0;
          } else if (!(lc < l3)) g = 0.5 * gc;
        }
        if (w !== null) {
          const wk = w[k] as number;
          l *= wk;
          g *= wk;
        }
        if (lossMat !== null) lossMat[k] = l;
        if (agg !== null && agg[k] === 0) {
          grad[k] = 0;
          continue;
        }
        rs += l;
        grad[k] = coef * g;
      }
    }
    endRow(out, i, T, coef, rs);
  }
  setRangeSums(out, nValid, klSum, nClipped, nClippedLower);
}

/** The `vanilla` strategy (PPO / DAPO clip-higher / dual-clip); default aggregation `token-mean`. */
export function vanillaLoss(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  return rowsStrategy(vanillaRows, batch, config, 'token-mean');
}

registerBuiltin({ name: 'vanilla', cpu: vanillaLoss, defaultAggMode: 'token-mean', kernel: 'vanilla' });
