/**
 * Per-token entropy of the next-token distribution, as verl's `entropy_from_logits` (torch_functional.py):
 * H = logsumexp(z) − Σ softmax(z)·z over the vocabulary, with its gradient −p·(z − Σ p·z), and verl's
 * `compute_entropy_loss` (the aggregated entropy).
 *
 * The CPU path is float64 and shift-stable: with m = max z, S = Σ e^{z−m} and E = Σ e^{z−m}(z−m)/S, H = log S − E.
 * That is verl's formula rearranged so that no large terms cancel, so logits of ±1000 or +1e4 are safe.
 *
 * @module
 */
import { aggregateRows } from '../aggregate.js';
import { type GlobalBatchInfo, type LossAggMode, checkLossAggMode } from '../config/policyLoss.js';
import { ConfigError, ShapeError, ValueError } from '../errors.js';
import { type MatrixInput, type Shape2D, rowLengths, toMask } from '../matrix.js';

/** `[B, T, V]`: sequences, response positions, vocabulary. */
export type Shape3D = readonly [number, number, number];
/** Logits `[B][T][V]`: nested arrays, or flat row-major with a {@link Shape3D}. */
export type LogitsInput = readonly (readonly (readonly number[])[])[] | Float32Array | Float64Array | readonly number[];

/** Options of {@link entropyFromLogits}. */
export interface EntropyOptions {
  /** Also return d(Σ H)/d logits (`[B·T·V]`). Default false (it is as large as the logits). */
  grad?: boolean;
  /** Divide the logits by this rollout temperature first, as verl's actor does (default 1). The gradient is w.r.t. the raw logits. */
  temperature?: number;
}

/** Result of {@link entropyFromLogits}. */
export interface EntropyResult {
  /** H at each position, flat `[B·T]` (nats). Computed at every position, padded ones included. */
  entropy: Float64Array;
  /** d(Σ_bt H_bt)/d logits, flat `[B·T·V]`, when `grad` was requested. */
  gradLogits?: Float64Array;
  /** The `[B, T, V]` shape that was used. */
  shape: Shape3D;
}

function isNested3(x: LogitsInput): x is readonly (readonly (readonly number[])[])[] {
  return Array.isArray(x) && (x.length === 0 || Array.isArray(x[0]));
}

/** Logits in flat row-major form. */
export interface FlatLogits {
  /** `B·T·V` values (the caller's flat array itself when one was given; never written to). */
  data: Float32Array | Float64Array | readonly number[];
  /** `[B, T, V]`. */
  shape: Shape3D;
}

/** Normalise logits to a flat row-major array and its `[B, T, V]` shape (ragged rows are a {@link ShapeError}). */
export function toLogits(logits: LogitsInput, shape?: Shape3D): FlatLogits {
  if (logits == null) throw new ShapeError('logits: missing', 'logits');
  if (isNested3(logits)) {
    const B = logits.length;
    const T = B === 0 ? 0 : (logits[0] as readonly (readonly number[])[]).length;
    const V = B === 0 || T === 0 ? 0 : ((logits[0] as readonly (readonly number[])[])[0] as readonly number[]).length;
    if (shape && (shape[0] !== B || shape[1] !== T || shape[2] !== V)) {
      throw new ShapeError(`logits: nested shape [${B}, ${T}, ${V}] does not match [${shape.join(', ')}]`, 'logits');
    }
    const data = new Float64Array(B * T * V);
    for (let b = 0; b < B; b++) {
      const rowB = logits[b];
      if (!Array.isArray(rowB) || rowB.length !== T) throw new ShapeError(`logits: ragged rows (row ${b} does not have ${T} positions)`, 'logits');
      for (let t = 0; t < T; t++) {
        const v = rowB[t] as readonly number[];
        if (!Array.isArray(v) || v.length !== V) throw new ShapeError(`logits: ragged rows ([${b}][${t}] does not have ${V} entries)`, 'logits');
        data.set(v, (b * T + t) * V);
      }
    }
    return { data, shape: [B, T, V] };
  }
  if (!shape) throw new ShapeError('logits: a flat array needs a shape [B, T, V]', 'shape');
  const [B, T, V] = shape;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`logits: shape must be three non-negative integers, got [${shape.join(', ')}]`, 'shape');
  }
  if (logits.length !== B * T * V) throw new ShapeError(`logits: length ${logits.length} does not match shape [${B}, ${T}, ${V}]`, 'logits');
  return { data: logits, shape };
}

/**
 * Entropy of one row of V logits starting at `off`, optionally writing d H / d z (times `gScale`) into `grad`.
 * @internal
 */
export function rowEntropy(
  z: ArrayLike<number>,
  off: number,
  V: number,
  invTemp: number,
  grad: Float64Array | null,
  gScale: number,
  pos: number,
): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) {
    const x = z[off + v] as number;
    if (Number.isNaN(x) || x === Infinity) throw new ValueError(`logits: ${x} at position ${pos}, vocabulary entry ${v}`, 'logits');
    if (x > m) m = x;
  }
  if (m === -Infinity) throw new ValueError(`logits: every entry is -Infinity at position ${pos}`, 'logits');
  let s = 0;
  let e = 0;
  for (let v = 0; v < V; v++) {
    const y = ((z[off + v] as number) - m) * invTemp;
    const w = Math.exp(y);
    if (w === 0) continue;
    s += w;
    e += w * y;
  }
  e /= s;
  const h = Math.log(s) - e;
  if (grad) {
    const c = -gScale * invTemp;
    for (let v = 0; v < V; v++) {
      const y = ((z[off + v] as number) - m) * invTemp;
      const p = Math.exp(y) / s;
      grad[off + v] = p === 0 ? 0 : c * p * (y - e);
    }
  }
  return h;
}

function invTemperature(t: number | undefined): number {
  if (t === undefined) return 1;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new ConfigError(`temperature must be a finite number > 0, got ${String(t)}`, 'temperature');
  return 1 / t;
}

/**
 * verl's `entropy_from_logits`: the entropy of softmax(z) at every position, and optionally its gradient
 * −p·(z − Σ p·z) (d(Σ H)/d z).
 *
 * @param logits - `[B][T][V]` nested, or flat row-major (Float32Array / Float64Array / number[]) with `shape`
 * @param shape - `[B, T, V]`, required for flat logits
 * @param options - `grad`, `temperature`
 * @throws ShapeError for ragged rows or a wrong length; ValueError for NaN/+Infinity logits
 */
export function entropyFromLogits(logits: LogitsInput, shape?: Shape3D, options: EntropyOptions = {}): EntropyResult {
  const { data, shape: sh } = toLogits(logits, shape);
  const [B, T, V] = sh;
  if (V === 0 && B * T > 0) throw new ShapeError('logits: the vocabulary dimension V is 0', 'logits');
  const inv = invTemperature(options.temperature);
  const entropy = new Float64Array(B * T);
  const grad = options.grad ? new Float64Array(B * T * V) : null;
  for (let p = 0; p < B * T; p++) entropy[p] = rowEntropy(data, p * V, V, inv, grad, 1, p);
  return grad ? { entropy, gradLogits: grad, shape: sh } : { entropy, shape: sh };
}

/** Options of {@link computeEntropyLoss}. */
export interface EntropyLossOptions {
  /** `[B, T, V]` for flat logits (the mask then takes `[B, T]`). */
  shape?: Shape3D;
  /** Return d loss / d logits (`[B·T·V]`). Default true. */
  grad?: boolean;
  /** Global-batch normalisers forwarded to the aggregation. */
  globalBatchInfo?: GlobalBatchInfo;
  /** Rollout temperature applied to the logits first (default 1). */
  temperature?: number;
}

/** Result of {@link computeEntropyLoss}. */
export interface EntropyLossResult {
  /** agg_loss(H, mask, mode): the mean entropy (a quantity to maximise; verl subtracts entropy_coeff times it). */
  loss: number;
  /** Per-token entropy `[B·T]`. */
  entropy: Float64Array;
  /** d loss / d logits `[B·T·V]` (zero at masked positions), when requested. */
  gradLogits?: Float64Array;
}

/**
 * verl's `compute_entropy_loss(logits, response_mask, loss_agg_mode)`: agg_loss(entropy_from_logits(logits), mask, mode).
 *
 * @param logits - `[B][T][V]`
 * @param responseMask - `[B][T]` 0/1
 * @param lossAggMode - one of verl's four modes (default `token-mean`)
 */
export function computeEntropyLoss(
  logits: LogitsInput,
  responseMask: MatrixInput,
  lossAggMode: LossAggMode = 'token-mean',
  options: EntropyLossOptions = {},
): EntropyLossResult {
  const mode = checkLossAggMode(lossAggMode);
  const { data, shape: sh } = toLogits(logits, options.shape);
  const [B, T, V] = sh;
  const maskShape: Shape2D = [B, T];
  const mask = toMask(responseMask, 'responseMask', maskShape);
  if (mask.rows !== B || mask.cols !== T) throw new ShapeError(`responseMask: shape [${mask.rows}, ${mask.cols}] does not match logits [${B}, ${T}]`, 'responseMask');
  const inv = invTemperature(options.temperature);
  const entropy = new Float64Array(B * T);
  for (let p = 0; p < B * T; p++) entropy[p] = rowEntropy(data, p * V, V, inv, null, 1, p);
  const { loss, rowCoef } = aggregateRows(entropy, mask.data, B, T, mode, options.globalBatchInfo ?? {}, rowLengths(mask));
  if (options.grad === false) return { loss, entropy };
  const grad = new Float64Array(B * T * V);
  for (let b = 0; b < B; b++) {
    const c = rowCoef[b] as number;
    if (c === 0) continue;
    for (let t = 0; t < T; t++) {
      const p = b * T + t;
      if (mask.data[p] !== 0) rowEntropy(data, p * V, V, inv, grad, c, p);
    }
  }
  return { loss, entropy, gradLogits: grad };
}
