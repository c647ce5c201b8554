/**
 * The host-side selection steps of clip_cov, kl_cov and eighty-twenty, run in float64 on the (float32) inputs
 * before the GPU token pass. They are data-dependent top-k / candidate choices over the whole batch: the
 * engine uploads their outcome (clip_cov: a 0/1 `corr` folded into the weights; kl_cov: a 0/1 KL selection;
 * eighty-twenty: a 0/1 aggregation mask). Batches on the GPU must be read back for these modes. (eighty-twenty
 * selects on the GPU itself, shaders/topk.wgsl, unless it has IS weights or per-row coefficients.)
 *
 * @module
 */

import { clipCovZeroed } from '../losses/clipCov.js';
import { scratch, topKByValue } from '../losses/common.js';
import { selectTopEntropy } from '../losses/eightyTwenty.js';
import { klCovSelectInto } from '../losses/klCov.js';

/** Indices of the `k` largest `values[idx[j]]` (ties: lower index first), in ascending order; `topKByValue` on them. */
export function topKIndices(values: ArrayLike<number>, idx: Uint32Array, k: number): Uint32Array {
  return Uint32Array.from(topKByValue(Array.from(idx, (j) => values[j] as number), Array.from(idx), k));
}

/** Inputs of the selections: flat `[B·T]` arrays. */
export interface SelectionInputs {
  oldLogProbs: ArrayLike<number>;
  logProbs: ArrayLike<number>;
  advantages: ArrayLike<number>;
  mask: ArrayLike<number>;
  n: number;
}

/**
 * clip_cov's `corr` (verl CA:1450-1552): 0 for up to n_clip = max(⌊ratio·Σm⌋, 1) unclipped valid tokens whose
 * covariance (A − mean A)(lp − mean lp) (masked means with verl's 1e-8) lies strictly within (lb, ub), else 1.
 * The choice is the CPU reference's own ({@link clipCovZeroed}, with its seeded draw), so both backends zero the
 * same tokens. Returns corr and the number zeroed.
 */
export function clipCovCorr(
  x: SelectionInputs,
  lo: number,
  hi: number,
  ratio: number,
  lb: number,
  ub: number,
  seed: number,
): { corr: Float32Array; zeroed: number } {
  const { oldLogProbs: olp, logProbs: lp, advantages: adv, mask, n } = x;
  // which valid tokens the clip already took (the reference gets these from its loss pass)
  const clipped = scratch('clipCovCorrClipped', n);
  for (let k = 0; k < n; k++) {
    if (mask[k] === 0) continue;
    const a = adv[k] as number;
    const r = Math.exp((lp[k] as number) - (olp[k] as number));
    clipped[k] = -a * (r < lo ? lo : r > hi ? hi : r) > -a * r ? 1 : 0;
  }
  const { chosen } = clipCovZeroed(adv, lp, mask, n, clipped, { clipCovRatio: ratio, clipCovLb: lb, clipCovUb: ub, clipCovSeed: seed });
  const corr = new Float32Array(n).fill(1);
  for (const k of chosen) corr[k] = 0;
  return { corr, zeroed: chosen.length };
}

/**
 * kl_cov's selection (verl CA:1555-1632) as a fresh 0/1 array: {@link klCovSelectInto}, the CPU reference's own.
 */
export function klCovSelection(x: SelectionInputs, ratio: number): Float32Array {
  const sel = new Float32Array(x.n);
  klCovSelectInto(x.advantages, x.logProbs, x.mask, x.n, ratio, sel);
  return sel;
}

/**
 * eighty-twenty's aggregation mask (SPEC §11): the k = `eightyTwentyCount`(N, ρ) valid tokens of highest
 * entropy, lowest index first on ties (as the CPU reference); all 0 when N = 0. Written into `out` (its first n
 * entries) when given.
 */
export function topEntropyMask(entropy: ArrayLike<number>, mask: ArrayLike<number>, n: number, rho: number, out: Float32Array = new Float32Array(n)): Float32Array {
  return selectTopEntropy(entropy, mask, rho, out.length === n ? out : out.subarray(0, n)) as Float32Array;
}
