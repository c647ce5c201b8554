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
import { clipMetrics, finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** GSPO's upper cap on the combined sequence log-ratio (verl clamps `log_seq_importance_ratio` at max 10). */
export const GSPO_LOG_RATIO_CAP = 10;

/**
 * The `gspo` strategy (sequence-level importance ratio, GSPO-token gradient); default aggregation
 * `seq-mean-token-mean`. Metrics: `actor/pg_clipfrac` (strict [L2 > L1]), `actor/ppo_kl` (on the unclamped
 * log-ratio), `actor/pg_clipfrac_lower` = 0.
 */
export function gspoLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { B, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask } = batch;
  const n = B * T;
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  // masked_mean metrics, accumulated inline in index order
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  for (let i = 0; i < B; i++) {
    let s = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      if (mask[k] === 0) continue;
      const d = (lp[k] as number) - (olp[k] as number);
      nValid++;
      klSum += -d;
      s += d;
    }
    const sLog = s / Math.max(batch.lengths[i] as number, 1);
    const logst = sLog > GSPO_LOG_RATIO_CAP ? GSPO_LOG_RATIO_CAP : sLog;
    const pass = sLog <= GSPO_LOG_RATIO_CAP ? 1 : 0; // clamp(max=10) passes the gradient at the bound
    const st = Math.exp(logst);
    const stc = st < lo ? lo : st > hi ? hi : st;
    const inBand = st >= lo && st <= hi ? 1 : 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      if (mask[k] === 0) continue;
      const a = adv[k] as number;
      const l1 = -a * st;
      const l2 = -a * stc;
      const g1 = -a * st * pass;
      const g2 = g1 * inBand;
      if (l1 > l2) {
        lossMat[k] = l1;
        dLoss[k] = g1;
      } else if (l2 > l1) {
        lossMat[k] = l2;
        dLoss[k] = g2;
        nClipped++;
      } else {
        lossMat[k] = l1;
        dLoss[k] = 0.5 * (g1 + g2);
      }
    }
  }
  const metrics = clipMetrics(nValid, klSum, nClipped, 0);
  return finishTokenLoss(batch, config, lossMat, dLoss, 'seq-mean-token-mean', metrics);
}

registerBuiltin({ name: 'gspo', cpu: gspoLossStrategy, defaultAggMode: 'seq-mean-token-mean', kernel: 'gspo' });
