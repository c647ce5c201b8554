/**
 * The row-range kernel of the two-thread CPU path ({@link createParallelPolicyLoss}): the vanilla token pass, the
 * rollout IS weights and the gradient chain for a contiguous range of whole rows, with the per-row loss sums and the
 * raw metric sums left for the caller to combine. Pure (no Node imports): run by the main thread on its own range and
 * by each worker on a staged copy of its range.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray } from '../matrix.js';
import { scratch } from './common.js';
import type { ResolvedBatch } from './types.js';
import { vanillaTokenSumsInto } from './vanilla.js';

/** The inputs of {@link vanillaRowsKernel}: every array indexed from this range's first row. */
export interface RowsKernelInput {
  /** Rows in the range. */
  rows: number;
  /** Padded row width T. */
  T: number;
  /** Behaviour log-probs, `rows·T`. */
  oldLogProbs: FloatArray;
  /** Current log-probs, `rows·T`. */
  logProbs: FloatArray;
  /** Advantages, `rows·T`. */
  advantages: FloatArray;
  /** 0/1 mask, `rows·T`. */
  mask: FloatArray;
  /** Rollout IS weights, `rows·T`, or null. */
  rolloutIsWeights: FloatArray | null;
  /** The aggregation's per-row coefficients of these rows (`aggregationCoefficients`). */
  rowCoef: Float64Array;
}

/** The outputs of {@link vanillaRowsKernel}. */
export interface RowsKernelOutput {
  /** d loss / d lp of these rows, `rows·T` (every entry written). */
  grad: Float64Array;
  /** Σ_t m·ℓ per row (0 for a row with coefficient 0). */
  rowSums: Float64Array;
  /** `[nValid, klSum, nClipped, nClippedLower]` of the range. */
  sums: Float64Array;
}

/** Positions per chunk of rows: the chunk's per-token intermediates stay in cache between the two passes. */
const CHUNK_TOKENS = 8192;

/**
 * The vanilla loss of a range of rows, with the same operations in the same order as the single-thread reference
 * (`vanillaLoss` → `finishTokenLoss` → `aggregateRows`) for every token and every row, so `grad` and `rowSums` are
 * bit-identical to it. Runs in chunks of whole rows (about {@link CHUNK_TOKENS} positions): the token pass
 * (`vanillaTokenSumsInto`, the reference's own function) into small scratch arrays, then the IS weights and the
 * row sums + gradient chain while those are still in cache. `sums[1]` (Σ kl) is added chunk by chunk, so it may
 * differ from the reference's single running sum in the last bits; the counts are exact.
 */
export function vanillaRowsKernel(input: RowsKernelInput, config: ResolvedPolicyLossConfig, out: RowsKernelOutput): void {
  const { rows, T, rolloutIsWeights: w, rowCoef } = input;
  const { grad, rowSums, sums } = out;
  const chunkRows = Math.max(1, Math.floor(CHUNK_TOKENS / Math.max(1, T)));
  const lossMat = scratch('parallelLossMat', Math.min(rows, chunkRows) * T);
  const dLoss = scratch('parallelDLoss', Math.min(rows, chunkRows) * T);
  let nValid = 0;
  let klSum = 0;
  let nClipped = 0;
  let nClippedLower = 0;
  for (let i0 = 0; i0 < rows; i0 += chunkRows) {
    const i1 = Math.min(rows, i0 + chunkRows);
    const k0 = i0 * T;
    const k1 = i1 * T;
    const mask = input.mask.subarray(k0, k1);
    const batch: ResolvedBatch = {
      B: i1 - i0,
      T,
      oldLogProbs: input.oldLogProbs.subarray(k0, k1),
      logProbs: input.logProbs.subarray(k0, k1),
      advantages: input.advantages.subarray(k0, k1),
      mask,
      lengths: EMPTY, // not read by the token pass
      rolloutIsWeights: null,
      entropy: null,
    };
    const s = vanillaTokenSumsInto(batch, config, mask, lossMat, dLoss);
    nValid += s.nValid;
    klSum += s.klSum;
    nClipped += s.nClipped;
    nClippedLower += s.nClippedLower;
    const n = k1 - k0;
    if (w) {
      for (let k = 0; k < n; k++) {
        if (mask[k] === 0) continue;
        lossMat[k] = (lossMat[k] as number) * (w[k0 + k] as number);
        dLoss[k] = (dLoss[k] as number) * (w[k0 + k] as number);
      }
    }
    for (let i = i0; i < i1; i++) {
      const c = rowCoef[i] as number;
      if (c === 0) {
        grad.fill(0, i * T, (i + 1) * T);
        rowSums[i] = 0;
        continue;
      }
      let rs = 0;
      for (let j = 0, k = (i - i0) * T, g = i * T; j < T; j++, k++, g++) {
        if (mask[k] !== 0) {
          rs += lossMat[k] as number;
          grad[g] = c * (dLoss[k] as number);
        } else grad[g] = 0;
      }
      rowSums[i] = rs;
    }
  }
  sums[0] = nValid;
  sums[1] = klSum;
  sums[2] = nClipped;
  sums[3] = nClippedLower;
}

const EMPTY = new Float64Array(0);
