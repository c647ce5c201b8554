/**
 * Loss aggregation: verl's `agg_loss` (core_algos.py) for the four `loss_agg_mode`s, with its global-batch
 * arguments, and the masked mean used by every metric. The CPU float64 reference; the WebGPU kernels reduce the
 * same way (see `shaders/reduce.wgsl`).
 *
 * Every mode is linear in the loss matrix with a per-row coefficient, so the gradient d loss / d ℓ_it is
 * `m_it · rowCoef_i`: that is what {@link aggregateRows} returns, and what the policy losses chain through.
 *
 * @module
 */
import { ShapeError } from './errors.js';
import { type GlobalBatchInfo, type LossAggMode, checkLossAggMode } from './config/policyLoss.js';
import { type FloatArray, type Matrix, type MatrixInput, type Shape2D, checkFiniteAtValid, expectShape, rowLengths, toMask, toMatrix } from './matrix.js';

/** verl's `masked_mean` epsilon (TF:287-301). */
export const MASKED_MEAN_EPS = 1e-8;
/** verl's per-sequence epsilon in `seq-mean-token-mean`. */
export const SEQ_MEAN_EPS = 1e-8;

/** An aggregation with its gradient in factored form: d loss / d ℓ_it = m_it · rowCoef[i]. */
export interface RowAggregation {
  /** The aggregated loss. */
  loss: number;
  /** Per-row gradient coefficient. */
  rowCoef: Float64Array;
}

/**
 * The per-row coefficients of an aggregation mode, given the row lengths L_i: loss = Σ_i rowCoef_i · Σ_t m·ℓ.
 * An all-masked batch gives all-zero coefficients (verl would divide 0 by 0; see the README).
 */
export function aggregationCoefficients(
  lengths: Float64Array,
  cols: number,
  mode: LossAggMode,
  gbi: GlobalBatchInfo = {},
): Float64Array {
  const rows = lengths.length;
  const coef = new Float64Array(rows);
  const dp = gbi.dpSize ?? 1;
  switch (mode) {
    case 'token-mean': {
      let n = 0;
      for (let i = 0; i < rows; i++) n += lengths[i] as number;
      const denom = gbi.batchNumTokens ?? n;
      if (n === 0 || denom === 0) return coef;
      coef.fill(dp / denom);
      return coef;
    }
    case 'seq-mean-token-sum':
    case 'seq-mean-token-mean': {
      let nonEmpty = 0;
      for (let i = 0; i < rows; i++) if ((lengths[i] as number) > 0) nonEmpty++;
      const g = gbi.globalBatchSize ?? nonEmpty;
      if (nonEmpty === 0 || g === 0) return coef;
      for (let i = 0; i < rows; i++) {
        const li = lengths[i] as number;
        if (li <= 0) continue;
        coef[i] = mode === 'seq-mean-token-sum' ? dp / g : dp / (g * (li + SEQ_MEAN_EPS));
      }
      return coef;
    }
    case 'seq-mean-token-sum-norm': {
      const k = gbi.lossScaleFactor ?? cols;
      if (k === 0) return coef;
      coef.fill(1 / k);
      return coef;
    }
  }
}

/**
 * The aggregated loss from per-row sums s_i = Σ_t m·ℓ and the mode's row coefficients, in row order: Σ_i c_i·s_i,
 * computed as (Σ_i s_i)·c for the modes whose coefficient is shared by every row (token-mean, sum-norm). Rows
 * with coefficient 0 contribute nothing (their sums are not read). {@link aggregateRows}, the fused vanilla pass and
 * the two-thread path all finish with this, so their losses agree bit for bit.
 */
export function combineRowSums(rowSums: ArrayLike<number>, rowCoef: Float64Array, mode: LossAggMode): number {
  const shared = mode === 'token-mean' || mode === 'seq-mean-token-sum-norm';
  let loss = 0;
  for (let i = 0; i < rowCoef.length; i++) {
    const c = rowCoef[i] as number;
    if (c === 0) continue;
    const s = rowSums[i] as number;
    loss += shared ? s : s * c;
  }
  return shared ? loss * (rowCoef[0] ?? 0) : loss;
}

/**
 * The chain rule fused into {@link aggregateRows}: with it, the same pass that sums row i also writes
 * `grad[k] = rowCoef_i · dLoss[k]` at valid positions and 0 elsewhere (every entry of `grad` is written).
 */
export interface RowChain {
  /** ∂ℓ_it/∂x_it, read only at valid positions. */
  readonly dLoss: FloatArray;
  /** The `[rows·cols]` output, d loss / d x. */
  readonly grad: Float64Array;
}

/**
 * Aggregate a loss matrix (already validated, row-major) with the mask. Masked positions are never read into
 * the sum, so any value there (even NaN) is ignored. With `chain`, the gradient d loss / d x = rowCoef · dLoss is
 * written in the same pass (one read of the loss matrix instead of two passes).
 */
export function aggregateRows(
  lossMat: FloatArray,
  mask: FloatArray,
  rows: number,
  cols: number,
  mode: LossAggMode,
  gbi: GlobalBatchInfo = {},
  lengths: Float64Array = rowLengths({ data: mask, rows, cols }),
  chain?: RowChain,
): RowAggregation {
  const rowCoef = aggregationCoefficients(lengths, cols, mode, gbi);
  const rowSums = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = rowCoef[i] as number;
    if (c === 0) {
      chain?.grad.fill(0, i * cols, (i + 1) * cols);
      continue;
    }
    let s = 0;
    if (chain) {
      const { dLoss, grad } = chain;
      for (let j = 0, k = i * cols; j < cols; j++, k++) {
        if (mask[k] !== 0) {
          s += lossMat[k] as number;
          grad[k] = c * (dLoss[k] as number);
        } else grad[k] = 0;
      }
    } else {
      for (let j = 0, k = i * cols; j < cols; j++, k++) if (mask[k] !== 0) s += lossMat[k] as number;
    }
    rowSums[i] = s;
  }
  return { loss: combineRowSums(rowSums, rowCoef, mode), rowCoef };
}

/** Options of {@link aggLoss}. */
export interface AggLossOptions {
  /**
   * A caller-owned `[B·T]` array to write the gradient into (every entry is written, zeros at masked positions);
   * the result's `grad` is then this very array. Reusing one array across calls avoids fresh memory.
   */
  gradInto?: Float64Array;
}

/** Result of {@link aggLoss}. */
export interface AggLossResult {
  /** The aggregated loss. */
  loss: number;
  /** d loss / d lossMat, flat row-major `[B·T]`, zero at masked positions (`options.gradInto` when given). */
  grad: Float64Array;
}

/**
 * verl's `agg_loss(loss_mat, loss_mask, loss_agg_mode, dp_size, batch_num_tokens, global_batch_size,
 * loss_scale_factor)`, with the gradient d loss / d lossMat.
 *
 * @param lossMat - per-token losses `[B][T]` (nested, or flat with `shape`)
 * @param mask - 0/1 mask `[B][T]`
 * @param lossAggMode - one of {@link LOSS_AGG_MODES}
 * @param globalBatchInfo - verl's global normalisers; omitted = aggregate over this batch alone
 * @param shape - `[B, T]`, required when the inputs are flat
 * @param options - `gradInto`: reuse a caller's gradient array
 */
export function aggLoss(
  lossMat: MatrixInput,
  mask: MatrixInput,
  lossAggMode: LossAggMode,
  globalBatchInfo?: GlobalBatchInfo,
  shape?: Shape2D,
  options: AggLossOptions = {},
): AggLossResult {
  const mode = checkLossAggMode(lossAggMode);
  const m = toMask(mask, 'mask', shape);
  const l = toMatrix(lossMat, 'lossMat', shape ?? [m.rows, m.cols]);
  expectShape(l, m.rows, m.cols, 'lossMat');
  checkFiniteAtValid(l, m, 'lossMat');
  const { loss, rowCoef } = aggregateRows(l.data, m.data, m.rows, m.cols, mode, globalBatchInfo ?? {});
  return { loss, grad: expandRowCoef(rowCoef, m, options.gradInto) };
}

/**
 * d loss / d ℓ as a dense `[B·T]` array: m_it · rowCoef_i.
 *
 * @param into - write into this array (length `rows·cols`, every entry written) instead of a fresh one
 */
export function expandRowCoef(rowCoef: Float64Array, mask: Matrix, into?: Float64Array): Float64Array {
  const { rows, cols, data } = mask;
  const g = into ? checkGradInto(into, rows * cols) : new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const c = rowCoef[i] as number;
    for (let j = 0, k = i * cols; j < cols; j++, k++) g[k] = c !== 0 && data[k] !== 0 ? c : 0;
  }
  return g;
}

/**
 * Check a caller's `gradInto` array: a `Float64Array` of exactly `n` entries, else a {@link ShapeError}
 * naming `gradInto`. Returns it.
 */
export function checkGradInto(into: Float64Array, n: number): Float64Array {
  if (!(into instanceof Float64Array)) throw new ShapeError('gradInto: must be a Float64Array', 'gradInto');
  if (into.length !== n) throw new ShapeError(`gradInto: length ${into.length} does not match B·T = ${n}`, 'gradInto');
  return into;
}

/**
 * Check a caller's output array given in place of a fresh one (`advantagesInto`, `klInto`, …): a `Float64Array` of at
 * least `n` entries, else a {@link ShapeError} naming `field`. Returns it.
 */
export function checkInto(into: Float64Array, n: number, field: string): Float64Array {
  if (!(into instanceof Float64Array)) throw new ShapeError(`${field} must be a Float64Array`, field);
  if (into.length < n) throw new ShapeError(`${field}: length ${into.length} is less than B·T = ${n}`, field);
  return into;
}

/** verl's `masked_mean(v, m)` = Σ m·v / (Σ m + 1e-8); masked positions are never read. */
export function maskedMean(v: ArrayLike<number>, mask: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let k = 0; k < mask.length; k++) {
    if (mask[k] !== 0) {
      s += v[k] as number;
      n += 1;
    }
  }
  return s / (n + MASKED_MEAN_EPS);
}
