/**
 * Rollout correction: verl's `verl/trainer/ppo/rollout_corr_helper.py` on the float64 CPU reference.
 *
 * Given the log-probs of the policy being trained (`logProbs`, verl's `old_log_prob` argument of the helper) and of
 * the rollout policy (`rolloutLogProbs`), with log_ratio = logProbs − rolloutLogProbs:
 * - truncated importance-sampling weights (`rolloutIs` = `'token'` | `'sequence'`), optionally batch-normalised;
 * - a rejection mask from divergence filters (`rolloutRs` = `'token_k1'`, `'seq_mean_k3'`, … or a comma-separated
 *   chain of them, all of which must pass);
 * - verl's diagnostics (IS weight statistics, rejection statistics, perplexities, KL, k3 KL, χ²) under the exact
 *   `rollout_corr/*` metric names.
 *
 * Float32 details reproduced on purpose (verl builds these tensors in float32, the torch default dtype):
 * sequence-level IS fractions compare against `log(float32(threshold))` computed in float32, and every
 * `bool.float().mean()` fraction over sequences is a float32 mean.
 *
 * @module
 */
import type { RolloutCorrectionConfig } from '../config/policyLoss.js';
import { ConfigError, ShapeError, UnknownModeError, ValueError } from '../errors.js';
import { type FloatArray, type Matrix, type MatrixInput, type Shape2D, checkFiniteAtValid, expectShape, isNested, nestedShape, rowLengths, toMask, toMatrix } from '../matrix.js';
import { LOG_RATIO_CLAMP, clampLogRatio, scratch } from './common.js';

/** verl's `SAFETY_BOUND`: log-ratios are clamped to ±20 before exponentiating. */
const SAFETY_BOUND = LOG_RATIO_CLAMP;
const EPS = 1e-8;

/** The IS weight levels verl accepts (`rollout_is`). */
export const ROLLOUT_IS_LEVELS = ['token', 'sequence'] as const;
/** An IS weight level. */
export type RolloutIsLevel = (typeof ROLLOUT_IS_LEVELS)[number];

/** The rejection-sampling options verl accepts (`SUPPORTED_ROLLOUT_RS_OPTIONS`), in a stable order. */
export const ROLLOUT_RS_OPTIONS = [
  'token_k1',
  'token_k2',
  'token_k3',
  'seq_sum_k1',
  'seq_sum_k2',
  'seq_sum_k3',
  'seq_mean_k1',
  'seq_mean_k2',
  'seq_mean_k3',
  'seq_max_k2',
  'seq_max_k3',
] as const;
/** One rejection-sampling option. */
export type RolloutRsOption = (typeof ROLLOUT_RS_OPTIONS)[number];

/** Metrics of the rollout correction: name → value (plain numbers, like verl's `.item()`). */
export type RolloutCorrectionMetrics = Record<string, number>;

// ---------------------------------------------------------------------------------------------------------------
// small reductions, each written as verl's torch expression
// ---------------------------------------------------------------------------------------------------------------

/**
 * Width (in doubles) of torch's `Vectorized<double>` on the machine that produced the fixtures (AVX2 / generic
 * 256-bit); it fixes the order of torch's CPU sums.
 */
const TORCH_VEC_WIDTH = 4;

/** c10's `CeilLog2`. */
function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  return Math.floor(Math.log2(x - 1)) + 1;
}

/**
 * torch's `multi_row_sum` (ATen SumKernel.cpp): 4 interleaved accumulators (`nrows`), 4 cascade levels; each item
 * is a vector of `w` lanes at `x[start + i·rowStride + k·colStride + lane]`.
 */
function multiRowSum(x: ArrayLike<number>, start: number, rowStride: number, colStride: number, w: number, size: number): Float64Array[] {
  const nrows = 4;
  const levels = 4;
  const levelPower = Math.max(4, Math.floor(ceilLog2(size) / levels));
  const levelStep = 2 ** levelPower;
  const levelMask = levelStep - 1;
  const acc: Float64Array[][] = Array.from({ length: levels }, () => Array.from({ length: nrows }, () => new Float64Array(w)));
  const load = (i: number, a: Float64Array[]): void => {
    const base = start + i * rowStride;
    for (let k = 0; k < nrows; k++) {
      const row = a[k] as Float64Array;
      for (let l = 0; l < w; l++) row[l] = (row[l] as number) + (x[base + k * colStride + l] as number);
    }
  };
  let i = 0;
  while (i + levelStep <= size) {
    for (let j = 0; j < levelStep; j++, i++) load(i, acc[0] as Float64Array[]);
    for (let j = 1; j < levels; j++) {
      for (let k = 0; k < nrows; k++) {
        const hi = (acc[j] as Float64Array[])[k] as Float64Array;
        const lo = (acc[j - 1] as Float64Array[])[k] as Float64Array;
        for (let l = 0; l < w; l++) {
          hi[l] = (hi[l] as number) + (lo[l] as number);
          lo[l] = 0;
        }
      }
      if ((i & (levelMask * 2 ** (j * levelPower))) !== 0) break;
    }
  }
  for (; i < size; i++) load(i, acc[0] as Float64Array[]);
  for (let j = 1; j < levels; j++) {
    for (let k = 0; k < nrows; k++) {
      const a0 = (acc[0] as Float64Array[])[k] as Float64Array;
      const aj = (acc[j] as Float64Array[])[k] as Float64Array;
      for (let l = 0; l < w; l++) a0[l] = (a0[l] as number) + (aj[l] as number);
    }
  }
  return acc[0] as Float64Array[];
}

/** torch's `row_sum`: `size` items of `w` lanes, `itemStride` apart, with 4-way ILP. */
function rowSum(x: ArrayLike<number>, start: number, itemStride: number, w: number, size: number): Float64Array {
  const ilp = 4;
  const sizeIlp = Math.floor(size / ilp);
  const partial = multiRowSum(x, start, itemStride * ilp, itemStride, w, sizeIlp);
  const p0 = partial[0] as Float64Array;
  for (let i = sizeIlp * ilp; i < size; i++) {
    for (let l = 0; l < w; l++) p0[l] = (p0[l] as number) + (x[start + i * itemStride + l] as number);
  }
  for (let k = 1; k < ilp; k++) {
    const pk = partial[k] as Float64Array;
    for (let l = 0; l < w; l++) p0[l] = (p0[l] as number) + (pk[l] as number);
  }
  return p0;
}

/**
 * `tensor.sum()` of `n` contiguous float64 values from `start`, in torch's CPU summation order (cascade_sum:
 * vectorised inner sum, or the scalar row sum when n < the vector width). Matters where verl's sums cancel.
 */
function torchSum(x: ArrayLike<number>, start = 0, n = x.length - start): number {
  const W = TORCH_VEC_WIDTH;
  if (n < W) return 0 + (rowSum(x, start, 1, 1, n)[0] as number);
  const vecSize = Math.floor(n / W);
  const vacc = rowSum(x, start, W, W, vecSize);
  let acc = 0;
  for (let k = vecSize * W; k < n; k++) acc += x[start + k] as number;
  for (let l = 0; l < W; l++) acc += vacc[l] as number;
  return 0 + acc;
}

/** `where(mask, v, 0) * mask`, the summand of verl_F.masked_sum. */
/**
 * A float64 temporary of length n for `slot` (the CPU losses' `scratch`, under this module's own slot names): the
 * same memory on every call, so the rollout correction does not page-fault fresh arrays each step (it ran at ~790
 * ns/token at 2^23 with fresh ones). Stale contents; never returned to a caller.
 */
function tmp(slot: string, n: number): Float64Array {
  return scratch(`rolloutCorrection.${slot}`, n);
}

function maskedTerms(v: ArrayLike<number>, mask: ArrayLike<number>): Float64Array {
  const out = tmp('terms', mask.length); // consumed by the caller before the next call
  for (let k = 0; k < mask.length; k++) out[k] = mask[k] === 0 ? 0 : (v[k] as number) * (mask[k] as number);
  return out;
}

/** verl_F.masked_mean(values, mask) over the whole batch, in torch's summation order. */
function maskedMean(v: ArrayLike<number>, mask: ArrayLike<number>): number {
  return torchSum(maskedTerms(v, mask)) / (torchSum(mask) + EPS);
}

/** verl_F.masked_sum(values, mask, axis=-1). */
function rowMaskedSum(v: FloatArray, mask: FloatArray, B: number, T: number): Float64Array {
  const terms = maskedTerms(v, mask);
  const out = new Float64Array(B);
  for (let i = 0; i < B; i++) out[i] = T === 1 ? 0 + (terms[i] as number) : torchSum(terms, i * T, T);
  return out;
}

/** verl_F.masked_mean(values, mask, axis=-1): Σ/(L_i + 1e-8), 0 for an empty row. */
function rowMaskedMean(v: FloatArray, mask: FloatArray, B: number, T: number, lengths: Float64Array): Float64Array {
  const s = rowMaskedSum(v, mask, B, T);
  for (let i = 0; i < B; i++) s[i] = (s[i] as number) / ((lengths[i] as number) + EPS);
  return s;
}

/** tensor.mean() (float64): the torch-ordered sum divided by n. */
function mean(v: ArrayLike<number>): number {
  return torchSum(v) / v.length;
}

/** torch.std (unbiased, N − 1). */
function stdUnbiased(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i] as number;
  m /= v.length;
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    const d = (v[i] as number) - m;
    s += d * d;
  }
  return Math.sqrt(s / (v.length - 1));
}

function maxOf(v: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < v.length; i++) if ((v[i] as number) > m) m = v[i] as number;
  return m;
}

function minOf(v: ArrayLike<number>): number {
  let m = Infinity;
  for (let i = 0; i < v.length; i++) if ((v[i] as number) < m) m = v[i] as number;
  return m;
}

/** max / min over the valid positions (verl's masked_fill(±inf) then max / min). */
function maskedMax(v: FloatArray, mask: FloatArray): number {
  let m = -Infinity;
  for (let k = 0; k < v.length; k++) if (mask[k] !== 0 && (v[k] as number) > m) m = v[k] as number;
  return m;
}

function maskedMin(v: FloatArray, mask: FloatArray): number {
  let m = Infinity;
  for (let k = 0; k < v.length; k++) if (mask[k] !== 0 && (v[k] as number) < m) m = v[k] as number;
  return m;
}

/** `bool_tensor.float().mean()`: a float32 mean of 0/1 values (exact count, one float32 division). */
function f32Fraction(count: number, n: number): number {
  return Math.fround(count / n);
}

/** `masked_mean(bool.float(), mask)`: a float64 masked mean of an indicator. */
function maskedFraction(pred: (k: number) => boolean, mask: FloatArray): number {
  let c = 0;
  let n = 0;
  for (let k = 0; k < mask.length; k++) {
    if (mask[k] === 0) continue;
    n += 1;
    if (pred(k)) c += 1;
  }
  return c / (n + EPS);
}

/** verl's clamped-variance std: sqrt(max(E[x²] − E[x]², 0)) over valid positions with x clamped to [lo, hi]. */
function clampedStd(v: FloatArray, mask: FloatArray, lo: number, hi: number, count: number): number {
  if (!(count > 1)) return 0;
  const c = tmp('stdC', v.length);
  const c2 = tmp('stdC2', v.length);
  for (let k = 0; k < v.length; k++) {
    const x = v[k] as number;
    const y = x < lo ? lo : x > hi ? hi : x;
    c[k] = y;
    c2[k] = y * y;
  }
  const m = maskedMean(c, mask);
  const variance = maskedMean(c2, mask) - m * m;
  return Math.sqrt(variance > 0 ? variance : 0);
}

function countValid(mask: FloatArray): number {
  let n = 0;
  for (let k = 0; k < mask.length; k++) if (mask[k] !== 0) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// IS weights
// ---------------------------------------------------------------------------------------------------------------

/** Options of {@link computeRolloutIsWeights} (verl's names in camelCase). */
export interface RolloutIsOptions {
  /** `'token'` (per-token ratio) or `'sequence'` (product of the token ratios of a row). */
  rolloutIs: RolloutIsLevel;
  /** Upper truncation of the weights (default 2.0); must be > 0. The lower diagnostic bound is its reciprocal. */
  rolloutIsThreshold?: number;
  /** Divide the truncated weights by their batch mean (over tokens, or over non-empty sequences). Default false. */
  rolloutIsBatchNormalize?: boolean;
}

/** Result of {@link computeRolloutIsWeights}. */
export interface RolloutIsResult {
  /** Detached weights, flat row-major `[B·T]`, 0 at masked positions; truncated, then batch-normalised if asked. */
  weights: Float64Array;
  /** `rollout_is_*` metrics (no `rollout_corr/` prefix), computed before truncation, as verl does. */
  metrics: RolloutCorrectionMetrics;
}

function checkIsLevel(level: unknown): RolloutIsLevel {
  if (level !== 'token' && level !== 'sequence') {
    throw new UnknownModeError('rolloutCorrection.rolloutIs', String(level), [...ROLLOUT_IS_LEVELS, 'null']);
  }
  return level;
}

function checkIsThreshold(t: unknown): number {
  if (typeof t !== 'number' || Number.isNaN(t)) {
    throw new ConfigError(`rolloutCorrection.rolloutIsThreshold must be a number, got ${String(t)}`, 'rolloutCorrection.rolloutIsThreshold');
  }
  if (!(t > 0)) {
    throw new ConfigError(`rolloutCorrection.rolloutIsThreshold must be positive, got ${t}`, 'rolloutCorrection.rolloutIsThreshold');
  }
  return t;
}

/**
 * verl's `compute_rollout_correction_weights` + `compute_is_metrics`: truncated IS weights from a log-ratio
 * log(π_train/π_rollout).
 *
 * token: w = exp(clamp(lr, ±20)); sequence: w = exp(clamp(Σ_t m·lr, ±20)) on every token of the row. Then w·m,
 * metrics, truncation at `rolloutIsThreshold`, and (optionally) division by the batch mean when that mean > 1e-8.
 *
 * @param logRatio - log π_train − log π_rollout, `[B][T]` (values at masked positions are ignored)
 * @param mask - the 0/1 response mask, `[B][T]`
 */
export function computeRolloutIsWeights(logRatio: Matrix, mask: Matrix, options: RolloutIsOptions): RolloutIsResult {
  expectShape(logRatio, mask.rows, mask.cols, 'logRatio');
  const level = checkIsLevel(options.rolloutIs);
  const thr = checkIsThreshold(options.rolloutIsThreshold ?? 2.0);
  const B = mask.rows;
  const T = mask.cols;
  const m = mask.data;
  const lr = logRatio.data;
  const n = B * T;
  const w = new Float64Array(n);
  let seqLogRatio: Float64Array | null = null;
  if (level === 'token') {
    for (let k = 0; k < n; k++) w[k] = m[k] === 0 ? 0 : Math.exp(clampLogRatio(lr[k] as number));
  } else {
    seqLogRatio = rowMaskedSum(lr, m, B, T);
    for (let i = 0; i < B; i++) {
      const wi = Math.exp(clampLogRatio(seqLogRatio[i] as number));
      for (let j = 0, k = i * T; j < T; j++, k++) w[k] = m[k] === 0 ? 0 : wi;
    }
  }
  if (countValid(m) === 0) throw new ValueError('responseMask must contain at least one valid token (1)', 'responseMask');

  // compute_is_metrics, on the weights before truncation
  const metrics: RolloutCorrectionMetrics = {};
  const lower = 1.0 / thr;
  if (seqLogRatio) {
    // verl: torch.log(torch.tensor(threshold)) is a float32 tensor
    const logUpper32 = Math.fround(Math.log(Math.fround(thr)));
    const logLower32 = Math.fround(Math.log(Math.fround(lower)));
    metrics.rollout_is_max = Math.exp(Math.min(maxOf(seqLogRatio), SAFETY_BOUND));
    metrics.rollout_is_min = Math.exp(minOf(seqLogRatio));
    metrics.rollout_is_mean = maskedMean(w, m);
    let hi = 0;
    let lo = 0;
    for (let i = 0; i < B; i++) {
      if ((seqLogRatio[i] as number) > logUpper32) hi++;
      if ((seqLogRatio[i] as number) < logLower32) lo++;
    }
    metrics.rollout_is_ratio_fraction_high = f32Fraction(hi, B);
    metrics.rollout_is_ratio_fraction_low = f32Fraction(lo, B);
  } else {
    metrics.rollout_is_mean = maskedMean(w, m);
    metrics.rollout_is_ratio_fraction_high = maskedFraction((k) => (w[k] as number) > thr, m);
    metrics.rollout_is_ratio_fraction_low = maskedFraction((k) => (w[k] as number) < lower, m);
    metrics.rollout_is_max = maskedMax(w, m);
    metrics.rollout_is_min = maskedMin(w, m);
  }
  const count = countValid(m);
  metrics.rollout_is_std = clampedStd(w, m, lower, thr, count);
  const wc = tmp('wc', n);
  for (let k = 0; k < n; k++) {
    const x = w[k] as number;
    wc[k] = x < lower ? lower : x > thr ? thr : x;
  }
  const meanEss = maskedMean(wc, m);
  const norm2 = tmp('norm2', n);
  for (let k = 0; k < n; k++) {
    const q = (wc[k] as number) / (meanEss + EPS);
    norm2[k] = q * q;
  }
  metrics.rollout_is_eff_sample_size = 1.0 / maskedMean(norm2, m);
  const lengths = rowLengths({ data: m, rows: B, cols: T });
  const seqMean = rowMaskedMean(w, m, B, T, lengths);
  metrics.rollout_is_seq_mean = mean(seqMean);
  metrics.rollout_is_seq_std = B > 1 ? stdUnbiased(seqMean) : 0.0;
  metrics.rollout_is_seq_max = maxOf(seqMean);
  metrics.rollout_is_seq_min = minOf(seqMean);
  let dev = -Infinity;
  let sHi = 0;
  let sLo = 0;
  for (let i = 0; i < B; i++) {
    const x = seqMean[i] as number;
    dev = Math.max(dev, Math.abs(x - 1.0));
    if (x > thr) sHi++;
    if (x < lower) sLo++;
  }
  metrics.rollout_is_seq_max_deviation = dev;
  metrics.rollout_is_seq_fraction_high = f32Fraction(sHi, B);
  metrics.rollout_is_seq_fraction_low = f32Fraction(sLo, B);

  // truncation (TIS), then optional batch normalisation
  for (let k = 0; k < n; k++) if ((w[k] as number) > thr) w[k] = thr;
  if (options.rolloutIsBatchNormalize) {
    let wMean: number;
    if (level === 'token') {
      wMean = maskedMean(w, m);
    } else {
      const seqW = rowMaskedMean(w, m, B, T, lengths);
      let s = 0;
      let c = 0;
      for (let i = 0; i < B; i++) {
        if ((lengths[i] as number) > 0) {
          s += seqW[i] as number;
          c += 1;
        }
      }
      wMean = s / Math.max(c, EPS);
    }
    if (wMean > EPS) {
      for (let k = 0; k < n; k++) w[k] = (w[k] as number) / wMean;
      metrics.rollout_is_batch_norm_factor = wMean;
    } else {
      metrics.rollout_is_batch_norm_factor = 1.0;
    }
  }
  return { weights: w, metrics };
}

// ---------------------------------------------------------------------------------------------------------------
// rejection sampling
// ---------------------------------------------------------------------------------------------------------------

/** One parsed rejection-sampling option with its bounds (k1 options: ratio bounds; others: an upper bound). */
export interface RolloutRsThreshold {
  /** The option. */
  option: RolloutRsOption;
  /** Lower ratio bound (k1 options only), else null. */
  lower: number | null;
  /** Upper bound: a ratio for k1 options, the divergence value otherwise. */
  upper: number;
}

const RS_FIELD = 'rolloutCorrection.rolloutRs';
const RS_THR_FIELD = 'rolloutCorrection.rolloutRsThreshold';

function parseThresholdNumber(s: string, option: string, spec: string): number {
  const t = s.trim().toLowerCase();
  let v: number;
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') v = Infinity;
  else v = t === '' ? Number.NaN : Number(t);
  if (Number.isNaN(v)) throw new ConfigError(`invalid numeric threshold '${spec}' for option '${option}'`, RS_THR_FIELD);
  return v;
}

/**
 * Parse `rolloutRs` (one option or a comma-separated chain, duplicates dropped) and `rolloutRsThreshold` as verl's
 * `_parse_rollout_rs_thresholds` does: one threshold shared by all options, or one per option, comma separated;
 * k1 options take `"lower_upper"` (ratio bounds) or a single upper bound u (lower = 1/u); other options take a single
 * positive upper bound.
 *
 * @throws {@link UnknownModeError} for an unknown option (listing the valid ones), {@link ConfigError} for a bad threshold
 */
export function parseRolloutRs(rolloutRs: string, rolloutRsThreshold: number | string | null | undefined): RolloutRsThreshold[] {
  if (typeof rolloutRs !== 'string') throw new ConfigError(`${RS_FIELD} must be a string (comma separated for several options), got ${String(rolloutRs)}`, RS_FIELD);
  const opts = rolloutRs.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (opts.length === 0) throw new ConfigError(`${RS_FIELD} must contain at least one option`, RS_FIELD);
  const options: RolloutRsOption[] = [];
  for (const o of opts) {
    if (!(ROLLOUT_RS_OPTIONS as readonly string[]).includes(o)) throw new UnknownModeError(RS_FIELD, o, ROLLOUT_RS_OPTIONS);
    if (!options.includes(o as RolloutRsOption)) options.push(o as RolloutRsOption);
  }
  if (rolloutRsThreshold === null || rolloutRsThreshold === undefined) {
    throw new ConfigError(`${RS_THR_FIELD} must be provided when ${RS_FIELD} is set`, RS_THR_FIELD);
  }
  let specs: string[];
  if (typeof rolloutRsThreshold === 'number') {
    if (Number.isNaN(rolloutRsThreshold)) throw new ConfigError(`${RS_THR_FIELD} must not be NaN`, RS_THR_FIELD);
    specs = [String(rolloutRsThreshold)];
  } else if (typeof rolloutRsThreshold === 'string') {
    specs = rolloutRsThreshold.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  } else {
    throw new ConfigError(`${RS_THR_FIELD} must be a string or a number, got ${typeof rolloutRsThreshold}`, RS_THR_FIELD);
  }
  if (specs.length === 0) throw new ConfigError(`${RS_THR_FIELD} must contain at least one threshold value`, RS_THR_FIELD);
  if (specs.length !== 1 && specs.length !== options.length) {
    throw new ConfigError(
      `${RS_THR_FIELD} expects one threshold shared by all options or exactly ${options.length} thresholds (got ${specs.length})`,
      RS_THR_FIELD,
    );
  }
  return options.map((option, idx) => {
    const spec = (specs.length === 1 ? specs[0] : specs[idx]) as string;
    if (option.endsWith('k1')) {
      let lower: number;
      let upper: number;
      const us = spec.indexOf('_');
      if (us >= 0) {
        lower = parseThresholdNumber(spec.slice(0, us), option, spec);
        upper = parseThresholdNumber(spec.slice(us + 1), option, spec);
      } else {
        upper = parseThresholdNumber(spec, option, spec);
        lower = 1.0 / upper;
      }
      if (lower <= 0 || upper <= 0) throw new ConfigError(`thresholds for option '${option}' must be positive, got ${spec}`, RS_THR_FIELD);
      return { option, lower, upper };
    }
    if (spec.includes('_')) {
      throw new ConfigError(`${RS_THR_FIELD} for option '${option}' must be a single upper bound without '_', got '${spec}'`, RS_THR_FIELD);
    }
    const upper = parseThresholdNumber(spec, option, spec);
    if (upper <= 0) throw new ConfigError(`threshold for option '${option}' must be positive, got ${spec}`, RS_THR_FIELD);
    return { option, lower: null, upper };
  });
}

/** Result of {@link computeRolloutRejectionMask}. */
export interface RolloutRsResult {
  /** The response mask with rejected tokens / sequences set to 0, flat row-major `[B·T]`. */
  mask: Float64Array;
  /** `rollout_rs_*` metrics (no `rollout_corr/` prefix). */
  metrics: RolloutCorrectionMetrics;
}

/**
 * verl's `compute_rollout_rejection_mask` + `compute_rs_metrics`: a hard trust region from divergence estimators of
 * the log-ratio lr (clamped to ±20): k1 = −lr, k2 = lr²/2, k3 = e^lr − 1 − lr, per token (`token_k*`) or per
 * sequence as the masked sum, mean or max (`seq_sum_k*`, `seq_mean_k*`, `seq_max_k*`). k1 options keep
 * log(lower) ≤ stat ≤ log(upper); the others keep stat ≤ upper. Every listed option must pass.
 *
 * @param logRatio - log π_train − log π_rollout, `[B][T]`
 * @param mask - the 0/1 response mask, `[B][T]`
 */
export function computeRolloutRejectionMask(
  logRatio: Matrix,
  mask: Matrix,
  rolloutRs: string,
  rolloutRsThreshold: number | string | null | undefined,
): RolloutRsResult {
  expectShape(logRatio, mask.rows, mask.cols, 'logRatio');
  const specs = parseRolloutRs(rolloutRs, rolloutRsThreshold);
  const B = mask.rows;
  const T = mask.cols;
  const m = mask.data;
  const n = B * T;
  if (B === 0) return { mask: new Float64Array(m), metrics: {} };
  const validCount = countValid(m);
  if (validCount === 0) throw new ValueError('responseMask must contain at least one valid token (1)', 'responseMask');
  const lr = logRatio.data;
  const k1 = tmp('rsK1', n);
  const k2 = tmp('rsK2', n);
  const k3 = tmp('rsK3', n);
  for (let k = 0; k < n; k++) {
    const x = clampLogRatio(lr[k] as number);
    k1[k] = -x;
    k2[k] = 0.5 * (x * x);
    k3[k] = Math.exp(x) - 1.0 - x;
  }
  const lengths = rowLengths({ data: m, rows: B, cols: T });
  const seqValid: boolean[] = Array.from(lengths, (l) => l > 0);
  const nSeqValid = seqValid.filter(Boolean).length;
  const combined = tmp('rsCombined', n).fill(1);
  const metrics: RolloutCorrectionMetrics = {};

  for (const { option, lower, upper } of specs) {
    const isK1 = option.endsWith('k1');
    const lowerLog = isK1 ? Math.log(lower as number) : null;
    const upperLog = isK1 ? Math.log(upper) : null;
    const stat = option.endsWith('k1') ? k1 : option.endsWith('k2') ? k2 : k3;
    const keepValue = (x: number): boolean => (isK1 ? x >= (lowerLog as number) && x <= (upperLog as number) : x <= upper);
    const keep = tmp('rsKeep', n); // every entry written below
    let perTokenStat: Float64Array;
    let perSeq: Float64Array | null = null;
    if (option.startsWith('token_')) {
      perTokenStat = stat;
      for (let k = 0; k < n; k++) keep[k] = keepValue(stat[k] as number) ? 1 : 0;
    } else {
      if (option.startsWith('seq_sum')) perSeq = rowMaskedSum(stat, m, B, T);
      else if (option.startsWith('seq_mean')) perSeq = rowMaskedMean(stat, m, B, T, lengths);
      else {
        perSeq = new Float64Array(B);
        for (let i = 0; i < B; i++) {
          let mx = -Infinity;
          for (let j = 0, k = i * T; j < T; j++, k++) if (m[k] !== 0 && (stat[k] as number) > mx) mx = stat[k] as number;
          perSeq[i] = mx === -Infinity ? 0 : mx;
        }
      }
      perTokenStat = tmp('rsPerToken', n);
      for (let i = 0; i < B; i++) {
        const s = perSeq[i] as number;
        const kv = keepValue(s) ? 1 : 0;
        for (let j = 0, k = i * T; j < T; j++, k++) {
          perTokenStat[k] = s;
          keep[k] = kv;
        }
      }
    }
    const level = option.startsWith('token_') ? 'token' : 'sequence';
    const upperM = isK1 ? (upperLog as number) : upper;
    const lowerM = isK1 ? (lowerLog as number) : 0.0;
    Object.assign(metrics, rsOptionMetrics(option, perTokenStat, perSeq, m, B, T, lengths, seqValid, level, upperM, lowerM, isK1, validCount));

    let seqRejected = 0;
    for (let k = 0; k < n; k++) combined[k] = (combined[k] as number) * (keep[k] as number);
    for (let i = 0; i < B; i++) {
      if (!seqValid[i]) continue;
      let rejected = false;
      for (let j = 0, k = i * T; j < T; j++, k++) if (m[k] !== 0 && keep[k] === 0) rejected = true;
      if (rejected) seqRejected++;
    }
    metrics[`rollout_rs_${option}_masked_fraction`] = maskedFraction((k) => keep[k] === 0, m);
    metrics[`rollout_rs_${option}_seq_masked_fraction`] = nSeqValid > 0 ? seqRejected / nSeqValid : 0.0;
  }

  metrics.rollout_rs_masked_fraction = maskedFraction((k) => combined[k] === 0, m);
  let seqHasMasked = 0;
  for (let i = 0; i < B; i++) {
    let any = false;
    for (let j = 0, k = i * T; j < T; j++, k++) if (m[k] !== 0 && !((combined[k] as number) > 0.5)) any = true;
    if (any) seqHasMasked++;
  }
  metrics.rollout_rs_seq_masked_fraction = f32Fraction(seqHasMasked, B);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = (m[k] as number) * (combined[k] as number);
  return { mask: out, metrics };
}

/** verl's `compute_rs_metrics` for one option. */
function rsOptionMetrics(
  option: string,
  stat: FloatArray,
  perSeq: Float64Array | null,
  m: FloatArray,
  B: number,
  T: number,
  lengths: Float64Array,
  seqValid: boolean[],
  level: 'token' | 'sequence',
  upper: number,
  lower: number,
  applyLower: boolean,
  validCount: number,
): RolloutCorrectionMetrics {
  const p = `rollout_rs_${option}`;
  const metrics: RolloutCorrectionMetrics = {};
  const seqValues = perSeq ?? rowMaskedMean(stat, m, B, T, lengths);
  const sv: number[] = [];
  for (let i = 0; i < B; i++) if (seqValid[i]) sv.push(seqValues[i] as number);
  metrics[`${p}_mean`] = maskedMean(stat, m);
  const seqLevel = level === 'sequence' && sv.length > 0;
  if (seqLevel) {
    metrics[`${p}_max`] = maxOf(sv);
    metrics[`${p}_min`] = minOf(sv);
  } else {
    metrics[`${p}_max`] = maskedMax(stat, m);
    metrics[`${p}_min`] = maskedMin(stat, m);
  }
  if (seqLevel) {
    metrics[`${p}_fraction_high`] = f32Fraction(sv.filter((x) => x > upper).length, sv.length);
    metrics[`${p}_fraction_low`] = applyLower ? f32Fraction(sv.filter((x) => x < lower).length, sv.length) : 0.0;
  } else {
    metrics[`${p}_fraction_high`] = maskedFraction((k) => (stat[k] as number) > upper, m);
    metrics[`${p}_fraction_low`] = applyLower ? maskedFraction((k) => (stat[k] as number) < lower, m) : 0.0;
  }
  metrics[`${p}_std`] = clampedStd(stat, m, applyLower ? lower : 0.0, upper, validCount);
  if (sv.length > 0) {
    metrics[`${p}_seq_mean`] = mean(sv);
    metrics[`${p}_seq_std`] = sv.length > 1 ? stdUnbiased(sv) : 0.0;
    metrics[`${p}_seq_max`] = maxOf(sv);
    metrics[`${p}_seq_min`] = minOf(sv);
    metrics[`${p}_seq_max_deviation`] = maxOf(sv.map((x) => Math.abs(x - 0.0)));
    metrics[`${p}_seq_fraction_high`] = f32Fraction(sv.filter((x) => x > upper).length, sv.length);
    if (applyLower) metrics[`${p}_seq_fraction_low`] = f32Fraction(sv.filter((x) => x < lower).length, sv.length);
  } else {
    for (const s of ['seq_mean', 'seq_std', 'seq_max', 'seq_min', 'seq_max_deviation', 'seq_fraction_high', 'seq_fraction_low']) {
      metrics[`${p}_${s}`] = 0.0;
    }
  }
  return metrics;
}

// ---------------------------------------------------------------------------------------------------------------
// off-policy diagnostics
// ---------------------------------------------------------------------------------------------------------------

/**
 * verl's `compute_offpolicy_metrics`: training / rollout perplexities (batch mean of per-sequence PPL), their log
 * difference, `kl` = mean(rollout − train), `k3_kl` = mean(e^lr − lr − 1), `chi2_token` = mean(ρ²) − 1 and
 * `chi2_seq` = mean_i exp(2·clamp(Σ_t lr)) − 1. Means over sequences include fully masked rows, as in verl.
 *
 * @param logProbs - log-probs of the policy being trained (verl's `old_log_prob` argument here)
 * @param rolloutLogProbs - log-probs of the rollout policy
 * @param mask - the 0/1 response mask
 */
export function computeOffPolicyMetrics(logProbs: Matrix, rolloutLogProbs: Matrix, mask: Matrix): RolloutCorrectionMetrics {
  const B = mask.rows;
  const T = mask.cols;
  expectShape(logProbs, B, T, 'logProbs');
  expectShape(rolloutLogProbs, B, T, 'rolloutLogProbs');
  const m = mask.data;
  if (countValid(m) === 0) throw new ValueError('responseMask must contain at least one valid token (1)', 'responseMask');
  const lp = logProbs.data;
  const rlp = rolloutLogProbs.data;
  const n = B * T;
  const lengths = rowLengths({ data: m, rows: B, cols: T });
  const metrics: RolloutCorrectionMetrics = {};
  const mTrain = rowMaskedMean(lp, m, B, T, lengths);
  metrics.training_ppl = mean(Array.from(mTrain, (x) => Math.exp(-x)));
  metrics.training_log_ppl = mean(Array.from(mTrain, (x) => -x));
  const diff = tmp('opDiff', n);
  const lr = tmp('opLr', n);
  const k3 = tmp('opK3', n);
  const rho2 = tmp('opRho2', n);
  for (let k = 0; k < n; k++) {
    const a = lp[k] as number;
    const b = rlp[k] as number;
    diff[k] = b - a;
    const r = a - b;
    lr[k] = r;
    k3[k] = Math.exp(r) - r - 1;
    const rho = Math.exp(clampLogRatio(r));
    rho2[k] = rho * rho;
  }
  metrics.kl = maskedMean(diff, m);
  metrics.k3_kl = maskedMean(k3, m);
  const mRollout = rowMaskedMean(rlp, m, B, T, lengths);
  metrics.rollout_ppl = mean(Array.from(mRollout, (x) => Math.exp(-x)));
  metrics.rollout_log_ppl = mean(Array.from(mRollout, (x) => -x));
  const logPplDiff = Array.from(mRollout, (x, i) => x - (mTrain[i] as number));
  metrics.log_ppl_diff = mean(logPplDiff);
  metrics.log_ppl_abs_diff = mean(logPplDiff.map(Math.abs));
  metrics.log_ppl_diff_max = maxOf(logPplDiff);
  metrics.log_ppl_diff_min = minOf(logPplDiff);
  metrics.ppl_ratio = mean(logPplDiff.map(Math.exp));
  metrics.chi2_token = maskedMean(rho2, m) - 1.0;
  const lrSum = rowMaskedSum(lr, m, B, T);
  metrics.chi2_seq = mean(Array.from(lrSum, (s) => Math.exp(2.0 * clampLogRatio(s)))) - 1.0;
  return metrics;
}

// ---------------------------------------------------------------------------------------------------------------
// the unified entry point
// ---------------------------------------------------------------------------------------------------------------

/** Input of {@link computeRolloutCorrection}: `[B][T]` nested arrays, or flat arrays with `shape`. */
export interface RolloutCorrectionInput {
  /** Log-probs of the policy being trained (π_train; verl's `old_log_prob` argument of the helper). */
  logProbs: MatrixInput;
  /** Log-probs of the rollout policy (π_rollout, e.g. vLLM's). */
  rolloutLogProbs: MatrixInput;
  /** 1 at valid response tokens, 0 at padding. */
  responseMask: MatrixInput;
  /** `[B, T]`; required when the fields are flat arrays. */
  shape?: Shape2D;
}

/** Result of {@link computeRolloutCorrection}. */
export interface RolloutCorrectionResult {
  /** Detached IS weights, flat `[B·T]` (0 at masked positions), or null when `rolloutIs` is null. */
  weights: Float64Array | null;
  /** The response mask after rejection sampling, flat `[B·T]` (a copy of the input mask when `rolloutRs` is null). */
  mask: Float64Array;
  /** Every diagnostic, keyed `rollout_corr/<name>` exactly as verl logs them. */
  metrics: RolloutCorrectionMetrics;
  /** `[B, T]`. */
  shape: Shape2D;
}

/**
 * Validate a {@link RolloutCorrectionConfig} without running it: the `rolloutIs` level, a positive
 * `rolloutIsThreshold` (when IS is on), the `rolloutRs` options and their `rolloutRsThreshold`, and `lossType`.
 *
 * @throws {@link UnknownModeError} for an unknown name (listing the valid ones), {@link ConfigError} for a bad value
 */
export function checkRolloutCorrectionConfig(config: RolloutCorrectionConfig): void {
  if (config == null || typeof config !== 'object') throw new ConfigError('rolloutCorrection must be an object', 'rolloutCorrection');
  const rolloutIs = config.rolloutIs ?? null;
  if (rolloutIs !== null) {
    checkIsLevel(rolloutIs);
    if (config.rolloutIsThreshold !== null && config.rolloutIsThreshold !== undefined) checkIsThreshold(config.rolloutIsThreshold);
  }
  if (config.rolloutRs !== null && config.rolloutRs !== undefined) parseRolloutRs(config.rolloutRs, config.rolloutRsThreshold);
  const lossType = config.lossType ?? 'ppo_clip';
  if (lossType !== 'ppo_clip' && lossType !== 'reinforce') {
    throw new UnknownModeError('rolloutCorrection.lossType', String(lossType), ['ppo_clip', 'reinforce']);
  }
}

/** @internal The unified pipeline on validated row-major arrays (used by `bypass_mode`). */
export function rolloutCorrectionArrays(
  logProbs: FloatArray,
  rolloutLogProbs: FloatArray,
  mask: FloatArray,
  B: number,
  T: number,
  config: RolloutCorrectionConfig,
): Omit<RolloutCorrectionResult, 'shape'> {
  checkRolloutCorrectionConfig(config);
  const maskM: Matrix = { data: mask, rows: B, cols: T };
  if (countValid(mask) === 0) throw new ValueError('responseMask must contain at least one valid token (1)', 'responseMask');
  const n = B * T;
  const lr = tmp('logRatio', n); // read by the steps below, never kept
  for (let k = 0; k < n; k++) lr[k] = (logProbs[k] as number) - (rolloutLogProbs[k] as number);
  const lrM: Matrix = { data: lr, rows: B, cols: T };
  const raw: RolloutCorrectionMetrics = {};
  let weights: Float64Array | null = null;
  const rolloutIs = config.rolloutIs ?? null;
  const thr = config.rolloutIsThreshold === undefined ? 2.0 : config.rolloutIsThreshold;
  if (rolloutIs !== null && thr !== null) {
    const r = computeRolloutIsWeights(lrM, maskM, {
      rolloutIs,
      rolloutIsThreshold: thr,
      rolloutIsBatchNormalize: config.rolloutIsBatchNormalize ?? false,
    });
    weights = r.weights;
    Object.assign(raw, r.metrics);
  } else if (rolloutIs !== null) {
    checkIsLevel(rolloutIs);
  }
  let outMask: Float64Array = new Float64Array(mask);
  if (config.rolloutRs !== null && config.rolloutRs !== undefined) {
    const r = computeRolloutRejectionMask(lrM, maskM, config.rolloutRs, config.rolloutRsThreshold);
    outMask = r.mask;
    Object.assign(raw, r.metrics);
  }
  Object.assign(raw, computeOffPolicyMetrics({ data: logProbs, rows: B, cols: T }, { data: rolloutLogProbs, rows: B, cols: T }, maskM));
  const metrics: RolloutCorrectionMetrics = {};
  for (const [k, v] of Object.entries(raw)) metrics[`rollout_corr/${k}`] = v;
  return { weights, mask: outMask, metrics };
}

/**
 * verl's `compute_rollout_correction_and_rejection_mask`: IS weights (if `rolloutIs` is set), the rejection mask
 * (if `rolloutRs` is set) and the off-policy diagnostics, all metrics prefixed `rollout_corr/`. Inputs are never
 * mutated.
 *
 * @throws {@link ValueError} when the mask has no valid token (as verl), {@link UnknownModeError} for an unknown
 * `rolloutIs` / `rolloutRs` name, {@link ConfigError} for a bad threshold, {@link ShapeError} on shape problems
 */
export function computeRolloutCorrection(input: RolloutCorrectionInput, config: RolloutCorrectionConfig = {}): RolloutCorrectionResult {
  if (input == null || typeof input !== 'object') throw new ShapeError('input must be an object', 'input');
  let shape = input.shape;
  if (!shape) {
    if (input.responseMask != null && isNested(input.responseMask)) shape = nestedShape(input.responseMask, 'responseMask');
    else throw new ShapeError('shape [B, T] is required when the inputs are flat arrays', 'shape');
  }
  const mask = toMask(input.responseMask, 'responseMask', shape);
  const lp = toMatrix(input.logProbs, 'logProbs', shape);
  const rlp = toMatrix(input.rolloutLogProbs, 'rolloutLogProbs', shape);
  expectShape(lp, mask.rows, mask.cols, 'logProbs');
  expectShape(rlp, mask.rows, mask.cols, 'rolloutLogProbs');
  checkFiniteAtValid(lp, mask, 'logProbs');
  checkFiniteAtValid(rlp, mask, 'rolloutLogProbs');
  const r = rolloutCorrectionArrays(lp.data, rlp.data, mask.data, mask.rows, mask.cols, config);
  return { ...r, shape: [mask.rows, mask.cols] };
}
