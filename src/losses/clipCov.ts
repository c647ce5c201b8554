/**
 * `clip_cov`: Clip-Cov (arXiv 2505.22617, "The Entropy Mechanism of RL for Reasoning LMs"), verl CA:1450-1552.
 *
 * r = exp(lp − olp) (no ±20 clamp); L1 = −A·r, L2 = −A·clip(r, 1−εl, 1+εh). Over the batch,
 * cov = (A − mean_m A)·(lp − mean_m lp) (masked means with verl's 1e-8); tokens that are valid, not already clipped
 * ([L2 > L1]) and have `clipCovLb < cov < clipCovUb` are candidates; up to n_clip = max(⌊ratio·Σm⌋, 1) of them get
 * corr = 0 (loss and gradient zeroed). ℓ = max(L1, L2)·corr, no dual-clip.
 *
 * **Deterministic choice (differs from verl).** When there are more candidates than n_clip, verl picks a random
 * subset with an unseeded `torch.randperm`. lumirag-rl draws the same kind of subset (uniform, without
 * replacement) with a seeded PRNG: a partial Fisher–Yates shuffle of the candidates, in row-major order, driven by
 * mulberry32(`config.clipCovSeed`, default 0). The same batch and seed always give the same result; pass a
 * different seed per step for fresh draws. With candidates ≤ n_clip every candidate is zeroed, exactly as verl.
 *
 * @module
 */
import { MASKED_MEAN_EPS, maskedMean } from '../aggregate.js';
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { ConfigError } from '../errors.js';
import { mulberry32 } from '../random.js';
import { finishTokenLoss, scratch } from './common.js';
import { registerBuiltin } from './registry.js';
import { METRIC, type PolicyLossResult, type ResolvedBatch } from './types.js';

/**
 * The flat indices clip_cov zeroes: every candidate when there are at most `nClip`, else a uniform random subset
 * of `nClip` drawn with mulberry32(`seed`) (partial Fisher–Yates over the candidates in row-major order), returned
 * in ascending order. The candidates are the first `count` entries of `candidates` (all of them by default).
 */
export function clipCovSelect(candidates: ArrayLike<number>, nClip: number, seed: number, count = candidates.length): number[] {
  if (count <= nClip) return Array.from({ length: count }, (_, i) => candidates[i] as number);
  const pool = scratch('clipCovPool', count); // only the first nClip entries are ever read back
  for (let i = 0; i < count; i++) pool[i] = candidates[i] as number;
  const rand = mulberry32(seed);
  for (let i = 0; i < nClip; i++) {
    const j = i + Math.floor(rand() * (count - i));
    const t = pool[i] as number;
    pool[i] = pool[j] as number;
    pool[j] = t;
  }
  return Array.from(pool.subarray(0, nClip)).sort((x, y) => x - y);
}

/**
 * The tokens clip_cov zeroes: the valid tokens not already clipped (`clipped[k] = 0`) whose covariance
 * (A − mean A)·(lp − mean lp) (masked means with verl's 1e-8) lies strictly within (`clipCovLb`, `clipCovUb`) are
 * candidates, and {@link clipCovSelect} picks up to n_clip = max(⌊`clipCovRatio`·N⌋, 1) of them. Returns them in
 * ascending order and N, the valid tokens. The one choice of the CPU reference and the WebGPU engine's host step.
 */
export function clipCovZeroed(
  adv: ArrayLike<number>,
  lp: ArrayLike<number>,
  mask: ArrayLike<number>,
  n: number,
  clipped: ArrayLike<number>,
  config: Pick<ResolvedPolicyLossConfig, 'clipCovRatio' | 'clipCovLb' | 'clipCovUb' | 'clipCovSeed'>,
): { chosen: number[]; nValid: number } {
  const meanA = maskedMean(adv, mask);
  const meanLp = maskedMean(lp, mask);
  let nValid = 0;
  const candidates = scratch('clipCovCand', n);
  let nCand = 0;
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    nValid += 1;
    if (clipped[k] !== 0) continue;
    const cov = ((adv[k] as number) - meanA) * ((lp[k] as number) - meanLp);
    if (cov > config.clipCovLb && cov < config.clipCovUb) candidates[nCand++] = k;
  }
  const nClip = Math.max(Math.floor(config.clipCovRatio * nValid), 1);
  return { chosen: clipCovSelect(candidates, nClip, config.clipCovSeed, nCand), nValid };
}

/** clip_cov's ratio check, as verl asserts it (the CPU reference and the WebGPU engine). */
export function checkClipCovRatio(config: Pick<ResolvedPolicyLossConfig, 'clipCovRatio'>): void {
  if (!(config.clipCovRatio > 0)) throw new ConfigError(`clipCovRatio must be > 0 for clip_cov (verl asserts it), got ${config.clipCovRatio}`, 'clipCovRatio');
}

/** The `clip_cov` strategy; default aggregation `token-mean`. Metrics: `actor/pg_clipfrac` (zeroed fraction), `actor/ppo_kl`. */
export function clipCovLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv, mask } = batch;
  const n = batch.B * batch.T;
  checkClipCovRatio(config);
  const lo = 1 - config.clipRatioLow;
  const hi = 1 + config.clipRatioHigh;
  const lossMat = scratch('lossMat', n);
  const dLoss = scratch('dLoss', n);
  let klSum = 0; // Σ −d over valid positions, in index order (masked_mean below)
  // scratch, not fresh arrays: fresh memory cost more than the strategy here (read only at valid positions)
  const clippedOrigin = scratch('clipCovClipped', n);
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    const d = (lp[k] as number) - (olp[k] as number);
    klSum += -d;
    const a = adv[k] as number;
    const r = Math.exp(d);
    const l1 = -a * r;
    const l2 = -a * (r < lo ? lo : r > hi ? hi : r);
    const g1 = -a * r;
    const g2 = r >= lo && r <= hi ? g1 : 0;
    clippedOrigin[k] = 0;
    if (l1 > l2) {
      lossMat[k] = l1;
      dLoss[k] = g1;
    } else if (l2 > l1) {
      lossMat[k] = l2;
      dLoss[k] = g2;
      clippedOrigin[k] = 1;
    } else {
      lossMat[k] = l1;
      dLoss[k] = 0.5 * (g1 + g2);
    }
  }
  const { chosen, nValid } = clipCovZeroed(adv, lp, mask, n, clippedOrigin, config);
  for (const k of chosen) {
    lossMat[k] = 0;
    dLoss[k] = 0;
  }
  const metrics = {
    // maskedMean of the 0/1 zeroed indicator: every chosen token is valid, so its sum is their count
    [METRIC.pgClipfrac]: chosen.length / (nValid + MASKED_MEAN_EPS),
    [METRIC.ppoKl]: klSum / (nValid + MASKED_MEAN_EPS),
  };
  return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', metrics);
}

registerBuiltin({ name: 'clip_cov', cpu: clipCovLossStrategy, defaultAggMode: 'token-mean', kernel: 'clip_cov' });
