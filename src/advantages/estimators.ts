/**
 * verl's registered advantage estimators (core_algos.py, `ADV_ESTIMATOR_REGISTRY`), as float64 CPU code that
 * reproduces verl's numbers, including the float32 steps verl takes (GRPO's singleton divisor, GPG's α,
 * grpo_vectorized's group statistics).
 *
 * @module
 */
import { EstimatorError } from '../errors.js';
import { broadcastRows, groupRows, maskedWhiten, mean, stdUnbiased } from './common.js';
import type { FloatArray } from '../matrix.js';
import type { AdvantageResult, ResolvedAdvantageConfig, ResolvedAdvantageInputs } from './types.js';

const f32 = Math.fround;

/** verl's default ε of the group estimators. */
export const GROUP_EPSILON = 1e-6;
/** verl's default ε of the optimal-token-baseline estimators. */
export const OTB_EPSILON = 1e-8;

/** An outcome estimator's result: the per-row advantage on every valid token, returns a copy (into the caller's arrays when given). */
function outcome(perRow: Float64Array, x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const advantages = broadcastRows(perRow, maskOf(x), x.T, c.advantagesInto);
  const n = x.B * x.T;
  let returns: Float64Array;
  if (c.returnsInto) {
    returns = c.returnsInto;
    returns.set(advantages.subarray(0, n));
  } else returns = advantages.slice(0, n);
  return { advantages, returns };
}

/** The mask and rewards as given (read in place), else the float64 copies. */
function maskOf(x: ResolvedAdvantageInputs): FloatArray {
  return x.maskData ?? x.mask;
}
function rewardsOf(x: ResolvedAdvantageInputs): FloatArray {
  return x.rewardsData ?? x.rewards;
}

/** The caller's array for a result (`advantagesInto` / `returnsInto`, its first B·T entries), else a fresh one. */
function resultArray(into: Float64Array | undefined, n: number): Float64Array {
  return into ? into.subarray(0, n) : new Float64Array(n);
}

function groupsOf(x: ResolvedAdvantageInputs): number[][] {
  return groupRows(x.groupIds as Int32Array, x.numGroups);
}

/**
 * `grpo` (CA compute_grpo_outcome_advantage): Â_i = (s_i − μ_g)/(σ_g + ε) with torch's unbiased std, or s_i − μ_g
 * (Dr.GRPO). A singleton group uses μ = 0 and σ = float32 1, so its divisor is float32(1 + ε).
 */
export function grpoEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const eps = c.epsilon ?? GROUP_EPSILON;
  const out = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    if (rows.length === 1) {
      const i = rows[0] as number;
      out[i] = c.normAdvByStdInGrpo ? (x.scores[i] as number) / f32(1 + f32(eps)) : (x.scores[i] as number);
      continue;
    }
    const s = rows.map((i) => x.scores[i] as number);
    const mu = mean(s);
    const sd = stdUnbiased(s, mu);
    for (const i of rows) {
      out[i] = c.normAdvByStdInGrpo ? ((x.scores[i] as number) - mu) / (sd + eps) : (x.scores[i] as number) - mu;
    }
  }
  return outcome(out, x, c);
}

/** Per-group statistics in float32, indexed by dense group id. */
export interface GroupStatsFloat32 {
  /** Group mean (0 for a singleton). */
  mean: Float32Array;
  /** Group std (1 for a singleton). */
  std: Float32Array;
  /** Group size. */
  count: Float32Array;
}

/**
 * Group mean and std as verl's `group_mean_std` computes them: float32 scores, float32 sums of s and s² in batch
 * order, var = (s2 − s1²/n)/max(n − 1, 1), std = sqrt(max(var, ε)); singletons get mean 0, std 1. Exported
 * for the WebGPU kernel's tests.
 */
export function groupMeanStdFloat32(
  scores: ArrayLike<number>,
  groupIds: Int32Array,
  numGroups: number,
  eps: number,
): GroupStatsFloat32 {
  const count = new Float32Array(numGroups);
  const s1 = new Float32Array(numGroups);
  const s2 = new Float32Array(numGroups);
  for (let i = 0; i < groupIds.length; i++) {
    const g = groupIds[i] as number;
    const s = f32(scores[i] as number);
    count[g] = (count[g] as number) + 1;
    s1[g] = f32((s1[g] as number) + s);
    s2[g] = f32((s2[g] as number) + f32(s * s));
  }
  const meanG = new Float32Array(numGroups);
  const stdG = new Float32Array(numGroups);
  const epsF = f32(eps);
  for (let g = 0; g < numGroups; g++) {
    const n = count[g] as number;
    if (n <= 1) {
      meanG[g] = 0;
      stdG[g] = 1;
      continue;
    }
    const a = s1[g] as number;
    meanG[g] = f32(a / n);
    const varNum = f32((s2[g] as number) - f32(f32(a * a) / n));
    const v = f32(varNum / Math.max(n - 1, 1));
    stdG[g] = f32(Math.sqrt(Math.max(v, epsF)));
  }
  return { mean: meanG, std: stdG, count };
}

/** `grpo_vectorized`: GRPO with verl's float32 `group_mean_std` (variance floored at ε). */
export function grpoVectorizedEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const eps = c.epsilon ?? GROUP_EPSILON;
  const gid = x.groupIds as Int32Array;
  const { mean: mu, std } = groupMeanStdFloat32(x.scores, gid, x.numGroups, eps);
  const out = new Float64Array(x.B);
  for (let i = 0; i < x.B; i++) {
    const g = gid[i] as number;
    const d = (x.scores[i] as number) - (mu[g] as number);
    out[i] = c.normAdvByStdInGrpo ? d / f32((std[g] as number) + f32(eps)) : d;
  }
  return outcome(out, x, c);
}

/**
 * `grpo_passk`: only the best sample of each group (the first on ties) gets r_max − r_second, divided by
 * (σ + ε) when normAdvByStdInGrpo; every other sample gets 0.
 *
 * @throws EstimatorError for a group with a single sample (verl raises ValueError)
 */
export function grpoPasskEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const eps = c.epsilon ?? GROUP_EPSILON;
  const out = new Float64Array(x.B);
  const index = x.index as readonly string[];
  for (const rows of groupsOf(x)) {
    if (rows.length < 2) {
      throw new EstimatorError(
        `grpo_passk: Pass@k requires at least 2 samples per group; got ${rows.length} for group ${JSON.stringify(index[rows[0] as number])}`,
        'index',
      );
    }
    const s = rows.map((i) => x.scores[i] as number);
    let best = 0;
    for (let k = 1; k < s.length; k++) if ((s[k] as number) > (s[best] as number)) best = k;
    let second = -Infinity;
    for (let k = 0; k < s.length; k++) if (k !== best && (s[k] as number) > second) second = s[k] as number;
    let adv = (s[best] as number) - second;
    if (c.normAdvByStdInGrpo) adv = adv / (stdUnbiased(s) + eps);
    out[rows[best] as number] = adv;
  }
  return outcome(out, x, c);
}

/** `rloo`: Â_i = n/(n−1)·(s_i − μ) for n > 1 (s_i minus the mean of the others); a singleton keeps its raw score. */
export function rlooEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const out = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    const n = rows.length;
    if (n === 1) {
      out[rows[0] as number] = x.scores[rows[0] as number] as number;
      continue;
    }
    const mu = mean(rows.map((i) => x.scores[i] as number));
    for (const i of rows) out[i] = ((x.scores[i] as number) * n) / (n - 1) - (mu * n) / (n - 1);
  }
  return outcome(out, x, c);
}

/** `rloo_vectorized`: (n·s_i − Σ_g s)/(n − 1) for n > 1, and **0** for a singleton (unlike `rloo`). */
export function rlooVectorizedEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const out = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    const n = rows.length;
    if (n === 1) continue;
    let sum = 0;
    for (const i of rows) sum += x.scores[i] as number;
    for (const i of rows) out[i] = (n * (x.scores[i] as number) - sum) / (n - 1);
  }
  return outcome(out, x, c);
}

/** `opo`: baseline b = Σ L_j s_j / Σ L_j over the group (length-weighted), Â = s − b; a singleton has b = 0. */
export function opoEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const out = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    if (rows.length === 1) {
      out[rows[0] as number] = x.scores[rows[0] as number] as number;
      continue;
    }
    let num = 0;
    let den = 0;
    for (const i of rows) {
      num += (x.lengths[i] as number) * (x.scores[i] as number);
      den += x.lengths[i] as number;
    }
    const b = num / den;
    for (const i of rows) out[i] = (x.scores[i] as number) - b;
  }
  return outcome(out, x, c);
}

/**
 * `gpg`: Â = α·(s − μ_g)/f_norm with α = B / max(#nonzero scores, 1) evaluated in float32 as torch does
 * (float32(float32(1/m)·B)); a singleton has μ = 0. verl ignores the `alpha` argument.
 */
export function gpgEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  let m = 0;
  for (let i = 0; i < x.B; i++) if (x.scores[i] !== 0) m++;
  const alpha = f32(f32(1 / Math.max(m, 1)) * x.B);
  const out = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    const mu = rows.length === 1 ? 0 : mean(rows.map((i) => x.scores[i] as number));
    for (const i of rows) out[i] = (alpha * ((x.scores[i] as number) - mu)) / c.fNorm;
  }
  return outcome(out, x, c);
}

/**
 * `reinforce_plus_plus`: discounted return G_t = r_t + γ·G_{t+1}, the carry reset after every masked position;
 * advantages = masked_whiten(G)·m over all valid tokens of the batch; returns = G.
 */
export function reinforcePlusPlusEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const { B, T } = x;
  const rewards = rewardsOf(x);
  const mask = maskOf(x);
  const returns = resultArray(c.returnsInto, B * T);
  for (let i = 0; i < B; i++) {
    let running = 0;
    for (let j = T - 1; j >= 0; j--) {
      const k = i * T + j;
      running = (rewards[k] as number) + c.gamma * running;
      returns[k] = running;
      if (mask[k] === 0) running = 0;
    }
  }
  const w = maskedWhiten(returns, mask, 'reinforce_plus_plus', c.advantagesInto?.subarray(0, B * T));
  for (let k = 0; k < w.length; k++) if (mask[k] === 0) w[k] = 0;
  return { advantages: c.advantagesInto ?? w, returns: c.returnsInto ?? returns };
}

/** `reinforce_plus_plus_baseline`: (s − μ_g) broadcast over valid tokens, whitened over the batch, ·m. */
export function reinforcePlusPlusBaselineEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const per = new Float64Array(x.B);
  for (const rows of groupsOf(x)) {
    const mu = rows.length === 1 ? 0 : mean(rows.map((i) => x.scores[i] as number));
    for (const i of rows) per[i] = (x.scores[i] as number) - mu;
  }
  const n = x.B * x.T;
  const mask = maskOf(x);
  // broadcast, whitened in place, into the caller's array when given
  const w = broadcastRows(per, mask, x.T, resultArray(c.advantagesInto, n));
  maskedWhiten(w, mask, 'reinforce_plus_plus_baseline', w);
  for (let k = 0; k < w.length; k++) if (mask[k] === 0) w[k] = 0;
  const returns = resultArray(c.returnsInto, n);
  returns.set(w);
  return { advantages: c.advantagesInto ?? w, returns: c.returnsInto ?? returns };
}

/** The reverse cumulative sum of r·m along each row: out[i, j] = Σ_{j' ≥ j} m·r (undiscounted returns-to-go). */
function maskedReturnsToGo(x: ResolvedAdvantageInputs, into?: Float64Array): Float64Array {
  const { B, T } = x;
  const rewards = rewardsOf(x);
  const mask = maskOf(x);
  const out = resultArray(into, B * T);
  for (let i = 0; i < B; i++) {
    let acc = 0;
    for (let j = T - 1; j >= 0; j--) {
      const k = i * T + j;
      if (mask[k] !== 0) acc += rewards[k] as number;
      out[k] = acc;
    }
  }
  return out;
}

/** `remax`: returns = reverse cumulative sum of r·m; advantages = returns − b_i·m (b = greedy-baseline reward). */
export function remaxEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const { B, T } = x;
  const mask = maskOf(x);
  const rb = x.rewardBaselines as Float64Array;
  const returns = maskedReturnsToGo(x, c.returnsInto);
  const advantages = resultArray(c.advantagesInto, B * T);
  for (let i = 0; i < B; i++) {
    for (let j = 0, k = i * T; j < T; j++, k++) advantages[k] = mask[k] !== 0 ? (returns[k] as number) - (rb[i] as number) : (returns[k] as number);
  }
  return { advantages: c.advantagesInto ?? advantages, returns: c.returnsInto ?? returns };
}

/**
 * `gae`: δ_t = r_t + γV_{t+1} − V_t, A_t = δ_t + γλA_{t+1}, where masked positions are skipped (V' and A' carry
 * over them); returns = A + V; advantages = masked_whiten(A) (not re-masked, as in verl).
 */
export function gaeEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const { B, T } = x;
  const rewards = rewardsOf(x);
  const mask = maskOf(x);
  const values = (x.valuesData ?? x.values) as FloatArray;
  // the raw advantages are whitened into the result array: written there first, whitened in place
  const raw = resultArray(c.advantagesInto, B * T);
  const returns = resultArray(c.returnsInto, B * T);
  for (let i = 0; i < B; i++) {
    let nextValue = 0;
    let last = 0;
    for (let j = T - 1; j >= 0; j--) {
      const k = i * T + j;
      if (mask[k] !== 0) {
        const v = values[k] as number;
        const delta = (rewards[k] as number) + c.gamma * nextValue - v;
        last = delta + c.gamma * c.lam * last;
        nextValue = v;
      }
      raw[k] = last;
      returns[k] = last + (values[k] as number);
    }
  }
  maskedWhiten(raw, mask, 'gae', raw);
  return { advantages: c.advantagesInto ?? raw, returns: c.returnsInto ?? returns };
}

function otbWeights(x: ResolvedAdvantageInputs, returnsInto?: Float64Array): { G: Float64Array; W: Float64Array } {
  const { B, T } = x;
  const mask = maskOf(x);
  const olp = x.oldLogProbs as Float64Array;
  const spp = x.sumPiSquared as Float64Array;
  const isw = x.rolloutIsWeights;
  const G = maskedReturnsToGo(x, returnsInto);
  const W = new Float64Array(B * T);
  for (let i = 0; i < B; i++) {
    let cum = 0;
    for (let j = 0; j < T; j++) {
      const k = i * T + j;
      if (mask[k] !== 0) {
        let w = 1 - 2 * Math.exp(olp[k] as number) + (spp[k] as number);
        if (isw) w *= (isw[k] as number) * (isw[k] as number);
        cum += w;
      }
      W[k] = cum;
    }
  }
  return { G, W };
}

/** The row of a group that is strictly the longest, and the second-longest length, for handle_zero_tail. */
function zeroTail(rows: readonly number[], lengthOf: (i: number) => number): { row: number; from: number } | null {
  const lens = rows.map(lengthOf).sort((a, b) => a - b);
  const max = lens[lens.length - 1] as number;
  const second = lens[lens.length - 2] as number;
  const longest = rows.filter((i) => lengthOf(i) === max);
  if (longest.length === 1 && max > second) return { row: longest[0] as number, from: second };
  return null;
}

/**
 * `optimal_token_baseline`: per group and position, B_t = Σ_i G_it·W_it·m_it / (Σ_i W_it·m_it + ε), with W the
 * cumulative (1 − 2π_t + Σπ²)·ρ² over valid tokens and G the reward-to-go; Â = (G − B)·m. A singleton group
 * has no baseline. With handleZeroTail the single longest trajectory gets B = 0 beyond the second-longest length.
 */
export function optimalTokenBaselineEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const eps = c.epsilon ?? OTB_EPSILON;
  const { B, T } = x;
  const mask = maskOf(x);
  const { G, W } = otbWeights(x, c.returnsInto);
  const baselines = new Float64Array(B * T);
  for (const rows of groupsOf(x)) {
    if (rows.length === 1) continue;
    const base = new Float64Array(T);
    for (let j = 0; j < T; j++) {
      let num = 0;
      let den = 0;
      for (const i of rows) {
        const k = i * T + j;
        if (mask[k] === 0) continue;
        num += (G[k] as number) * (W[k] as number);
        den += W[k] as number;
      }
      base[j] = num / (den + eps);
    }
    for (const i of rows) baselines.set(base, i * T);
    if (c.handleZeroTail) {
      const zt = zeroTail(rows, (i) => x.lengths[i] as number);
      if (zt) baselines.fill(0, zt.row * T + zt.from, zt.row * T + T);
    }
  }
  const advantages = resultArray(c.advantagesInto, B * T);
  for (let k = 0; k < advantages.length; k++) advantages[k] = mask[k] !== 0 ? (G[k] as number) - (baselines[k] as number) : 0;
  return { advantages: c.advantagesInto ?? advantages, returns: c.returnsInto ?? G };
}

/**
 * `tir_optimal_token_baseline` (multi-turn): as `optimal_token_baseline`, but each row's valid positions are first
 * packed to the left (tool tokens between turns are masked out), so the baseline is indexed by the k-th valid
 * token rather than the column; rows with no valid token are left out of their group.
 */
export function tirOptimalTokenBaselineEstimator(x: ResolvedAdvantageInputs, c: ResolvedAdvantageConfig): AdvantageResult {
  const eps = c.epsilon ?? OTB_EPSILON;
  const { B, T } = x;
  const mask = maskOf(x);
  const { G, W } = otbWeights(x, c.returnsInto);
  const len = Array.from(x.lengths, (l) => l | 0);
  const maxLen = len.reduce((a, b) => Math.max(a, b), 0);
  const packedW = new Float64Array(B * maxLen);
  const packedR = new Float64Array(B * maxLen);
  const cols: number[][] = [];
  for (let i = 0; i < B; i++) {
    const at: number[] = [];
    for (let j = 0; j < T; j++) if (mask[i * T + j] !== 0) at.push(j);
    at.forEach((j, p) => {
      packedW[i * maxLen + p] = W[i * T + j] as number;
      packedR[i * maxLen + p] = G[i * T + j] as number;
    });
    cols.push(at);
  }
  const baselines = new Float64Array(B * maxLen);
  for (const all of groupsOf(x)) {
    const rows = all.filter((i) => (len[i] as number) > 0);
    if (rows.length <= 1) continue;
    for (let p = 0; p < maxLen; p++) {
      let num = 0;
      let den = 0;
      for (const i of rows) {
        num += (packedR[i * maxLen + p] as number) * (packedW[i * maxLen + p] as number);
        den += packedW[i * maxLen + p] as number;
      }
      const b = num / (den + eps);
      for (const i of rows) baselines[i * maxLen + p] = b;
    }
    if (c.handleZeroTail) {
      const zt = zeroTail(rows, (i) => len[i] as number);
      if (zt) baselines.fill(0, zt.row * maxLen + zt.from, zt.row * maxLen + maxLen);
    }
  }
  const advantages = resultArray(c.advantagesInto, B * T);
  advantages.fill(0);
  for (let i = 0; i < B; i++) {
    (cols[i] as number[]).forEach((j, p) => {
      advantages[i * T + j] = (packedR[i * maxLen + p] as number) - (baselines[i * maxLen + p] as number);
    });
  }
  return { advantages: c.advantagesInto ?? advantages, returns: c.returnsInto ?? G };
}

