/**
 * Shared steps of the advantage estimators: input validation, dense group ids, verl's `masked_whiten`, and
 * torch's float64 `mean` / unbiased `std` of a group.
 *
 * @module
 */
import { ConfigError, EstimatorError, ShapeError, ValueError } from '../errors.js';
import { type FloatArray, type Matrix, type Shape2D, expectShape, isNested, nestedShape, rowLengths, toFloat64, toMask, toMatrix } from '../matrix.js';
import type { AdvantageConfig, AdvantageInputs, ResolvedAdvantageConfig, ResolvedAdvantageInputs } from './types.js';

/** verl's `masked_mean` / `masked_whiten` epsilons (torch_functional.py). */
export const WHITEN_EPS = 1e-8;

function inputShape(inputs: AdvantageInputs): Shape2D {
  if (inputs.shape) return inputs.shape;
  const m = inputs.responseMask;
  if (m != null && isNested(m)) return nestedShape(m, 'responseMask');
  throw new ShapeError('inputs.shape [B, T] is required when the inputs are flat arrays', 'shape');
}

function checkFiniteEverywhere(m: Matrix, field: string): void {
  const d = m.data;
  for (let k = 0; k < d.length; k++) {
    if (!Number.isFinite(d[k] as number)) {
      throw new ValueError(
        `${field}: non-finite value ${d[k]} at [${Math.floor(k / m.cols)}, ${k % m.cols}] (verl sums every position, padding included)`,
        field,
      );
    }
  }
}

function checkFiniteAtValid(m: Matrix, mask: Matrix, field: string): void {
  const d = m.data;
  const md = mask.data;
  for (let k = 0; k < d.length; k++) {
    if (md[k] !== 0 && !Number.isFinite(d[k] as number)) {
      throw new ValueError(`${field}: non-finite value ${d[k]} at valid position [${Math.floor(k / m.cols)}, ${k % m.cols}]`, field);
    }
  }
}

/**
 * Validate {@link AdvantageInputs}: equal shapes, no ragged rows, a 0/1 mask, finite rewards everywhere (verl
 * sums padded rewards too), finite optional matrices at valid positions, `index` and `rewardBaselines` of length B.
 */
export function resolveAdvantageInputs(inputs: AdvantageInputs): ResolvedAdvantageInputs {
  if (inputs == null || typeof inputs !== 'object') throw new ShapeError('inputs must be an object', 'inputs');
  const shape = inputShape(inputs);
  const mask = toMask(inputs.responseMask, 'responseMask', shape);
  const B = mask.rows;
  const T = mask.cols;
  if (inputs.tokenLevelRewards == null) throw new ShapeError('inputs.tokenLevelRewards is required', 'tokenLevelRewards');
  const rewards = toMatrix(inputs.tokenLevelRewards, 'tokenLevelRewards', shape);
  expectShape(rewards, B, T, 'tokenLevelRewards');
  checkFiniteEverywhere(rewards, 'tokenLevelRewards');
  const optionalData = (name: 'values' | 'oldLogProbs' | 'sumPiSquared' | 'rolloutIsWeights'): FloatArray | null => {
    const v = inputs[name];
    if (v == null) return null;
    const m = toMatrix(v, name, shape);
    expectShape(m, B, T, name);
    checkFiniteAtValid(m, mask, name);
    return m.data;
  };
  const optional = (name: 'oldLogProbs' | 'sumPiSquared' | 'rolloutIsWeights'): Float64Array | null => {
    const d = optionalData(name);
    return d === null ? null : toFloat64(d);
  };
  const valuesData = optionalData('values');
  let index: string[] | null = null;
  let groupIds: Int32Array | null = null;
  let numGroups = 0;
  if (inputs.index != null) {
    if (!Array.isArray(inputs.index)) throw new ShapeError('index must be an array of group ids', 'index');
    if (inputs.index.length !== B) {
      throw new ShapeError(`index: length ${inputs.index.length} does not match the batch size B = ${B}`, 'index');
    }
    index = inputs.index.map((id, i) => {
      if (typeof id !== 'string' && !(typeof id === 'number' && Number.isFinite(id))) {
        throw new ValueError(`index[${i}]: a group id must be a string or a finite number, got ${String(id)}`, 'index');
      }
      return String(id);
    });
    const dense = denseGroupIds(index);
    groupIds = dense.ids;
    numGroups = dense.count;
  }
  let rewardBaselines: Float64Array | null = null;
  if (inputs.rewardBaselines != null) {
    const rb = inputs.rewardBaselines;
    if (rb.length !== B) throw new ShapeError(`rewardBaselines: length ${rb.length} does not match B = ${B}`, 'rewardBaselines');
    rewardBaselines = Float64Array.from(rb);
    for (let i = 0; i < B; i++) {
      if (!Number.isFinite(rewardBaselines[i] as number)) {
        throw new ValueError(`rewardBaselines: non-finite value ${rewardBaselines[i]} at row ${i}`, 'rewardBaselines');
      }
    }
  }
  const r = rewards.data;
  const scores = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    let s = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) s += r[k] as number;
    scores[i] = s;
  }
  // float64 copies of float32 rewards, mask and values only when an estimator reads `rewards` / `mask` / `values` (the
  // built-in estimators read `maskData`, `rewardsData`, `valuesData` in place): a fresh [B·T] array costs ~25 ns/token
  // in page faults here
  const maskData = mask.data;
  let rewards64: Float64Array | null = r instanceof Float64Array ? r : null;
  let mask64: Float64Array | null = maskData instanceof Float64Array ? maskData : null;
  let values64: Float64Array | null = valuesData === null || valuesData instanceof Float64Array ? valuesData : null;
  return {
    B,
    T,
    get rewards(): Float64Array {
      rewards64 ??= toFloat64(r);
      return rewards64;
    },
    get mask(): Float64Array {
      mask64 ??= toFloat64(maskData);
      return mask64;
    },
    maskData,
    rewardsData: r,
    lengths: rowLengths(mask),
    scores,
    index,
    groupIds,
    numGroups,
    get values(): Float64Array | null {
      if (valuesData !== null) values64 ??= toFloat64(valuesData);
      return values64;
    },
    valuesData,
    rewardBaselines,
    oldLogProbs: optional('oldLogProbs'),
    sumPiSquared: optional('sumPiSquared'),
    rolloutIsWeights: optional('rolloutIsWeights'),
  };
}

/** Dense group ids: one per row, and the number of groups. */
export interface DenseGroupIds {
  /** Group of each row, 0..count-1. */
  ids: Int32Array;
  /** Number of distinct groups. */
  count: number;
}

/** Map arbitrary group ids to dense integers 0..G-1 in order of first appearance (rows may be interleaved). */
export function denseGroupIds(index: readonly (string | number)[]): DenseGroupIds {
  const map = new Map<string, number>();
  const ids = new Int32Array(index.length);
  for (let i = 0; i < index.length; i++) {
    const key = String(index[i]);
    let g = map.get(key);
    if (g === undefined) {
      g = map.size;
      map.set(key, g);
    }
    ids[i] = g;
  }
  return { ids, count: map.size };
}

/** The rows of each group, in batch order. */
export function groupRows(groupIds: Int32Array, numGroups: number): number[][] {
  const rows: number[][] = Array.from({ length: numGroups }, () => []);
  for (let i = 0; i < groupIds.length; i++) (rows[groupIds[i] as number] as number[]).push(i);
  return rows;
}

/** torch.mean of a float64 vector: the sum divided by n. */
export function mean(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/** torch.std (unbiased, n − 1) of a float64 vector with n ≥ 2. */
export function stdUnbiased(values: readonly number[], mu: number = mean(values)): number {
  let s = 0;
  for (const v of values) s += (v - mu) * (v - mu);
  return Math.sqrt(s / (values.length - 1));
}

/**
 * verl's `masked_whiten(values, mask)` over the whole batch: (v − μ)·rsqrt(var + 1e-8), with μ =
 * Σm·v/(Σm + 1e-8) and the unbiased masked variance. Computed at every position (verl does not re-mask).
 *
 * @param out - where to write the result (may be `values` itself; default a fresh array)
 * @throws EstimatorError when Σm ≤ 1, where verl's `masked_var` raises
 */
export function maskedWhiten(values: Float64Array, mask: FloatArray, field: string, out?: Float64Array): Float64Array {
  let n = 0;
  let s = 0;
  for (let k = 0; k < values.length; k++) {
    if (mask[k] !== 0) {
      n += 1;
      s += values[k] as number;
    }
  }
  if (n === 0) throw new EstimatorError(`${field}: whitening needs at least 2 valid tokens, the mask is empty (verl's masked_var raises)`, 'responseMask');
  if (n === 1) throw new EstimatorError(`${field}: whitening needs at least 2 valid tokens, the mask has one (verl's masked_var raises)`, 'responseMask');
  const mu = s / (n + WHITEN_EPS);
  let v = 0;
  for (let k = 0; k < values.length; k++) {
    if (mask[k] !== 0) {
      const c = (values[k] as number) - mu;
      v += c * c;
    }
  }
  const variance = (v / (n + WHITEN_EPS)) * (n / (n - 1));
  const scale = 1 / Math.sqrt(variance + WHITEN_EPS);
  const o = out ?? new Float64Array(values.length);
  for (let k = 0; k < values.length; k++) o[k] = ((values[k] as number) - mu) * scale;
  return o;
}

/**
 * Broadcast one value per row over the valid positions: out_it = x_i · m_it (0 at padding), into `out` (every entry
 * of the first rows·T written) or a fresh array.
 */
export function broadcastRows(perRow: Float64Array, mask: FloatArray, T: number, out?: Float64Array): Float64Array {
  const o = out ?? new Float64Array(mask.length);
  for (let i = 0; i < perRow.length; i++) {
    const x = perRow[i] as number;
    for (let j = 0, k = i * T; j < T; j++, k++) o[k] = mask[k] !== 0 ? x : 0;
  }
  return o;
}

function finiteNum(v: unknown, field: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${field} must be a finite number, got ${String(v)}`, field);
  return v;
}

function bool(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`${field} must be a boolean, got ${String(v)}`, field);
  return v;
}

/** Fill in verl's defaults (γ = λ = 1, normAdvByStdInGrpo = true, fNorm = 1, handleZeroTail = true) and validate. */
export function resolveAdvantageConfig(config: AdvantageConfig = {}): ResolvedAdvantageConfig {
  if (config == null || typeof config !== 'object') throw new ConfigError('config must be an object', 'config');
  const epsilon = config.epsilon === undefined || config.epsilon === null ? undefined : finiteNum(config.epsilon, 'epsilon', 0);
  if (epsilon !== undefined && epsilon < 0) throw new ConfigError(`epsilon must be >= 0, got ${epsilon}`, 'epsilon');
  const fNorm = finiteNum(config.fNorm, 'fNorm', 1.0);
  if (fNorm === 0) throw new ConfigError('fNorm must be non-zero', 'fNorm');
  return {
    epsilon,
    normAdvByStdInGrpo: bool(config.normAdvByStdInGrpo, 'normAdvByStdInGrpo', true),
    gamma: finiteNum(config.gamma, 'gamma', 1.0),
    lam: finiteNum(config.lam, 'lam', 1.0),
    fNorm,
    handleZeroTail: bool(config.handleZeroTail, 'handleZeroTail', true),
  };
}
