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
import { type GlobalBatchInfo, type LossAggMode, checkLossAggMode } from './config/policyLoss.js';
import { type Matrix, type MatrixInput, type Shape2D, checkFiniteAtValid, expectShape, rowLengths, toMask, toMatrix } from './matrix.js';

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
 * Aggregate a loss matrix (already validated, row-major) with the mask. Masked positions are never read into
 * the sum, so any value there (even NaN) is ignored.
 */
export function aggregateRows(
  lossMat: Float64Array,
  mask: Float64Array,
  rows: number,
  cols: number,
  mode: LossAggMode,
  gbi: GlobalBatchInfo = {},
  lengths: Float64Array = rowLengths({ data: mask, rows, cols }),
): RowAggregation {
  const rowCoef = aggregationCoefficients(lengths, cols, mode, gbi);
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const c = rowCoef[i] as number;
    if (c === 0) continue;
    let s = 0;
    for (let j = 0, k = i * cols; j < cols; j++, k++) if (mask[k] !== 0) s += lossMat[k] as number;
    loss += mode === 'token-mean' || mode === 'seq-mean-token-sum-norm' ? s : s * c;
  }
  if (mode === 'token-mean' || mode === 'seq-mean-token-sum-norm') loss *= rowCoef[0] ?? 0;
  return { loss, rowCoef };
}

/** Result of {@link aggLoss}. */
export interface AggLossResult {
  /** The aggregated loss. */
  loss: number;
  /** d loss / d lossMat, flat row-major `[B·T]`, zero at masked positions. */
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
 */
export function aggLoss(
  lossMat: MatrixInput,
  mask: MatrixInput,
  lossAggMode: LossAggMode,
  globalBatchInfo?: GlobalBatchInfo,
  shape?: Shape2D,
): AggLossResult {
  const mode = checkLossAggMode(lossAggMode);
  const m = toMask(mask, 'mask', shape);
  const l = toMatrix(lossMat, 'lossMat', shape ?? [m.rows, m.cols]);
  expectShape(l, m.rows, m.cols, 'lossMat');
  checkFiniteAtValid(l, m, 'lossMat');
  const { loss, rowCoef } = aggregateRows(l.data, m.data, m.rows, m.cols, mode, globalBatchInfo ?? {});
  return { loss, grad: expandRowCoef(rowCoef, m) };
}

/** d loss / d ℓ as a dense `[B·T]` array: m_it · rowCoef_i. */
export function expandRowCoef(rowCoef: Float64Array, mask: Matrix): Float64Array {
  const { rows, cols, data } = mask;
  const g = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const c = rowCoef[i] as number;
    if (c === 0) continue;
    for (let j = 0, k = i * cols; j < cols; j++, k++) if (data[k] !== 0) g[k] = c;
  }
  return g;
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
