/**
 * Row kernels: a token-level policy loss over a range of whole rows in one pass (ℓ, ∂ℓ/∂lp, IS weight, row sum and
 * the aggregation's gradient chain, no per-token intermediate arrays), and {@link rowsStrategy}, the strategy built
 * on one. `vanillaRows` (also eighty-twenty), `sapoRows`, `gspoRows`, `cispoRows` and `gpgRows` are row kernels; the single-thread reference
 * and the two-thread path (`parallel.ts`) run the same kernels, so they agree bit for bit.
 *
 * @module
 */
import { aggregationCoefficients, combineRowSums } from '../aggregate.js';
import type { LossAggMode, ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray } from '../matrix.js';
import { clipMetrics } from './common.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';

/** The inputs of a {@link RowsKernel}: every array indexed from the range's first row. */
export interface RowsInput {
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
  /** Rollout IS weights multiplying ℓ and ∂ℓ/∂lp, `rows·T`, or null. */
  rolloutIsWeights: FloatArray | null;
  /** The aggregation's per-row coefficients of these rows (`aggregationCoefficients`), or null for 1 everywhere. */
  rowCoef: Float64Array | null;
  /**
   * An aggregation mask within `mask` (eighty-twenty's selection), or null for `mask` itself: valid positions
   * outside it still count in the metrics but add nothing to the row sums and get a zero gradient.
   */
  aggMask?: FloatArray | null;
  /** kl_cov's selection over the whole batch (1 where the KL term applies, `rows·T`), or null (other kernels ignore it). */
  klSelect?: FloatArray | null;
}

/** The outputs of a {@link RowsKernel}. */
export interface RowsOutput {
  /** `rowCoef_i · w · ∂ℓ/∂lp`, `rows·T`: every entry written (0 at masked positions and in rows with coefficient 0). */
  grad: Float64Array;
  /** When given, `w·ℓ` at valid positions (other entries untouched). */
  lossMat: Float64Array | null;
  /** When given, Σ_t m·w·ℓ per row in index order (0 for a row with coefficient 0), for `combineRowSums`. */
  rowSums: Float64Array | null;
  /** `[nValid, klSum, nClipped, nClippedLower]` of the range (one running sum each, in index order; a strategy without
   * a clip writes 0 for the counts it does not have). */
  sums: Float64Array;
}

/**
 * A row kernel's end of row i (width T): a row with coefficient 0 gets a zero gradient and a row sum of 0 (what
 * `combineRowSums` expects: an empty or weightless row adds nothing, even if its terms are not finite), any other
 * row the sum `rs` of its terms. One per row, so the per-token loop stays call-free.
 */
export function endRow(out: RowsOutput, i: number, T: number, coef: number, rs: number): void {
  if (coef === 0) out.grad.fill(0, i * T, (i + 1) * T);
  if (out.rowSums !== null) out.rowSums[i] = coef === 0 ? 0 : rs;
}

/** A row kernel's range sums: `[nValid, klSum, nClipped, nClippedLower]` ({@link RowsOutput.sums}). */
export function setRangeSums(out: RowsOutput, nValid: number, klSum: number, nClipped: number, nClippedLower: number): void {
  out.sums[0] = nValid;
  out.sums[1] = klSum;
  out.sums[2] = nClipped;
  out.sums[3] = nClippedLower;
}

/**
 * A row kernel (see the module comment). `metrics` turns the summed `sums` into the strategy's metrics when they are
 * not verl's three clip metrics ({@link rowsMetrics}).
 */
export type RowsKernel = ((input: RowsInput, config: ResolvedPolicyLossConfig, out: RowsOutput) => void) & {
  metrics?: (sums: Float64Array) => Record<string, number>;
};

/** A row kernel's metrics from its summed `sums`: its own `metrics`, else verl's three clip metrics. */
export function rowsMetrics(kernel: RowsKernel, sums: Float64Array): Record<string, number> {
  return kernel.metrics ? kernel.metrics(sums) : clipMetrics(sums[0] as number, sums[1] as number, sums[2] as number, sums[3] as number);
}

/**
 * The strategy of a row kernel: the aggregation's per-row coefficients (`config.lossAggMode`, else `defaultMode`) from
 * the row lengths — of `aggMask` when given (eighty-twenty's selection), else of the response mask — the kernel over
 * every row, the row sums combined in row order ({@link combineRowSums}) and verl's three clip metrics.
 */
export function rowsStrategy(
  kernel: RowsKernel,
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  defaultMode: LossAggMode,
  agg?: { mask: FloatArray; lengths: Float64Array },
  klSelect?: FloatArray,
): PolicyLossResult {
  const { B, T } = batch;
  const mode = config.lossAggMode ?? defaultMode;
  const rowCoef = aggregationCoefficients(agg ? agg.lengths : batch.lengths, T, mode, config.globalBatchInfo);
  const grad = batch.gradInto ?? new Float64Array(B * T);
  const rowSums = new Float64Array(B);
  const sums = new Float64Array(4);
  const { oldLogProbs, logProbs, advantages, mask, rolloutIsWeights } = batch;
  kernel({ rows: B, T, oldLogProbs, logProbs, advantages, mask, rolloutIsWeights, rowCoef, aggMask: agg?.mask ?? null, klSelect: klSelect ?? null }, config, { grad, lossMat: null, rowSums, sums });
  return { loss: combineRowSums(rowSums, rowCoef, mode), grad, metrics: rowsMetrics(kernel, sums) };
}
