/**
 * The step every token-level policy loss ends with: apply the rollout IS weights, aggregate with the mode, and
 * chain the aggregation's gradient into d loss / d logProbs.
 *
 * @module
 */
import { MASKED_MEAN_EPS, aggregateRows } from '../aggregate.js';
import type { LossAggMode, ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { type FloatArray, rowLengths } from '../matrix.js';
import { mulberry32 } from '../random.js';
import { METRIC, type PolicyLossResult, type ResolvedBatch } from './types.js';

/**
 * Finish a token-level loss.
 *
 * @param batch - the validated batch
 * @param config - the resolved config (its `lossAggMode`, when set, overrides `defaultMode`)
 * @param lossMat - ℓ_it, owned by the caller and modified in place (IS weights applied)
 * @param dLoss - ∂ℓ_it/∂lp_it, owned by the caller and modified in place
 * @param defaultMode - the strategy's own aggregation mode
 * @param metrics - the strategy's metrics
 * @param aggMask - the mask to aggregate with, when it differs from the response mask (eighty-twenty)
 * @returns the result; its `grad` is `batch.gradInto` when set (every entry written), else a fresh array.
 *   `lossMat` and `dLoss` are read only where the aggregation mask is 1, so they may be scratch arrays
 *   ({@link scratch}) holding stale values elsewhere.
 */
export function finishTokenLoss(
  batch: ResolvedBatch,
  config: ResolvedPolicyLossConfig,
  lossMat: Float64Array,
  dLoss: Float64Array,
  defaultMode: LossAggMode,
  metrics: Record<string, number>,
  aggMask?: FloatArray,
): PolicyLossResult {
  const { B, T, rolloutIsWeights: w } = batch;
  const mask = aggMask ?? batch.mask;
  const lengths = aggMask ? rowLengths({ data: aggMask, rows: B, cols: T }) : batch.lengths;
  if (w) {
    for (let k = 0; k < lossMat.length; k++) {
      if (mask[k] === 0) continue;
      lossMat[k] = (lossMat[k] as number) * (w[k] as number);
      dLoss[k] = (dLoss[k] as number) * (w[k] as number);
    }
  }
  const mode = config.lossAggMode ?? defaultMode;
  const grad = batch.gradInto ?? new Float64Array(B * T);
  const { loss } = aggregateRows(lossMat, mask, B, T, mode, config.globalBatchInfo, lengths, { dLoss, grad });
  return { loss, grad, metrics };
}

/**
 * The value checks of `resolveBatch` for the first `rows` rows of width `T`: every mask entry 0 or 1, and `a`, `b`,
 * `c` (and `w` when given) finite wherever the mask is non-zero; `lengths[i]` gets row i's count of valid positions.
 * False at the first problem (the caller then reruns the field-by-field validation, which throws the reference's
 * error). Shared by `resolveBatch`'s fused pass and the two-thread path's per-range checks.
 */
export function validateRows(
  mask: FloatArray,
  a: FloatArray,
  b: FloatArray,
  c: FloatArray,
  w: FloatArray | null,
  rows: number,
  T: number,
  lengths: Float64Array,
): boolean {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      const m = mask[k] as number;
      if (m === 0) continue;
      if (m !== 1) return false;
      s++;
      if (!(Number.isFinite(a[k] as number) && Number.isFinite(b[k] as number) && Number.isFinite(c[k] as number))) return false;
    }
    lengths[i] = s;
  }
  return w === null || finiteAtValid(w, mask, rows * T);
}

/** True when `x[k]` is finite wherever `mask[k]` is non-zero, for `0 ≤ k < n`. */
export function finiteAtValid(x: FloatArray, mask: FloatArray, n: number): boolean {
  for (let k = 0; k < n; k++) if (mask[k] !== 0 && !Number.isFinite(x[k] as number)) return false;
  return true;
}

/**
 * verl's three clip metrics as masked means of sums accumulated inline in index order: `actor/pg_clipfrac` =
 * nClipped / (nValid + 1e-8), `actor/ppo_kl` = klSum / (nValid + 1e-8), `actor/pg_clipfrac_lower` =
 * nClippedLower / (nValid + 1e-8) (verl's `masked_mean`; a strategy without a lower clip passes 0).
 */
export function clipMetrics(nValid: number, klSum: number, nClipped: number, nClippedLower: number): Record<string, number> {
  const denom = nValid + MASKED_MEAN_EPS;
  return {
    [METRIC.pgClipfrac]: nClipped / denom,
    [METRIC.ppoKl]: klSum / denom,
    [METRIC.pgClipfracLower]: nClippedLower / denom,
  };
}

/** Scratch arrays by slot name; see {@link scratch}. */
const scratchSlots = new Map<string, Float64Array>();

/**
 * A reusable float64 work array of length `n` for `slot` (e.g. `'lossMat'`, `'dLoss'`): the same memory on every
 * call with a size that fits, so a strategy's per-token intermediates do not page-fault fresh memory each step
 * (on a machine where that costs ~25 ns/token per array, it dominated the CPU path). Contents are stale (not zeroed)
 * and only valid until the next `scratch` call for the same slot: a strategy writes every entry it later reads, and
 * never returns a scratch array (or a view of one) to its caller. The backing array grows to the largest `n` seen
 * and is kept until {@link releaseScratch}. Single-threaded use only (one policy loss at a time per JS realm).
 */
export function scratch(slot: string, n: number): Float64Array {
  let a = scratchSlots.get(slot);
  if (!a || a.length < n) {
    a = new Float64Array(n);
    scratchSlots.set(slot, a);
  }
  return a.length === n ? a : a.subarray(0, n);
}

/**
 * Drop every scratch array held by the CPU policy losses, `actorLoss` and `applyKlPenalty` (after training at a
 * large batch size, to give the memory back). The next call allocates again.
 */
export function releaseScratch(): void {
  scratchSlots.clear();
}

/** verl's log-ratio clamp (±20) used by vanilla, sapo, cispo and the rollout IS weights. */
export const LOG_RATIO_CLAMP = 20;

/** verl's clamp of a token log-ratio to ±{@link LOG_RATIO_CLAMP} (NaN passes through). */
export function clampLogRatio(raw: number): number {
  return raw < -LOG_RATIO_CLAMP ? -LOG_RATIO_CLAMP : raw > LOG_RATIO_CLAMP ? LOG_RATIO_CLAMP : raw;
}

/** ∂ clampLogRatio(raw) / ∂ raw as torch's clamp gives it: 1 inside ±{@link LOG_RATIO_CLAMP} (bounds included), else 0. */
export function clampLogRatioGrad(raw: number): number {
  return raw >= -LOG_RATIO_CLAMP && raw <= LOG_RATIO_CLAMP ? 1 : 0;
}

/** Tokens per block of {@link clampedRatioBlock} (the size of the arrays it fills). */
export const RATIO_BLOCK = 512;

/**
 * r = exp(clamp(lp − olp, ±20)) for the valid tokens k0 ≤ k < k1 into `out[k − k0]` (other entries untouched).
 *
 * Why a separate pre-pass per block: `Math.exp` is a call V8 must assume can touch memory, so in a loop that also
 * reads and writes typed arrays it reloads and rechecks every array after each token. Computing a block of ratios
 * first leaves the strategy's main loop call-free (vanilla's token pass: ~20 → ~15 ns/token). Same values.
 */
export function clampedRatioBlock(lp: FloatArray, olp: FloatArray, mask: FloatArray, k0: number, k1: number, out: Float64Array): void {
  for (let k = k0; k < k1; k++) {
    if (mask[k] === 0) continue;
    const raw = (lp[k] as number) - (olp[k] as number);
    out[k - k0] = Math.exp(clampLogRatio(raw));
  }
}

/** Candidates at or under which {@link kthLargest} sorts instead of taking another histogram level. */
const SELECT_SORT_MAX = 2048;
/** Histogram bins per level of {@link kthLargest} at most (a 256 KiB count table: it stays in cache). */
const SELECT_BINS = 65536;
/** {@link kthLargest}'s count table, shared by every call (it is cleared per level, up to the bins used). */
const selectCounts = new Uint32Array(SELECT_BINS + 1);

/**
 * The k-th largest of `values` (1 ≤ k ≤ length; values finite), by histogram selection: one pass for the range,
 * one to count values into bins of equal width (about one per two values, at most {@link SELECT_BINS}; the bin index `⌊(v − min)·scale⌋` is monotonic
 * in v, so every value of a higher bin is larger), then the values of the one bin that holds the k-th largest are
 * collected and the search repeats on them, down to a sort of at most {@link SELECT_SORT_MAX}. O(n) with a small
 * constant (a full sort of 6M values took ~1 s here); −0 and +0 compare equal as in `===`. `values` is not modified.
 */
export function kthLargest(values: Float64Array, k: number): number {
  return selectKth(values, k).value;
}

/**
 * {@link kthLargest} with the number of values strictly above it (`above` < k ≤ above + ties). `range` passes
 * the min and max of `values` when the caller has them (it saves a pass).
 */
function selectKth(values: Float64Array, k: number, range?: { lo: number; hi: number }): { value: number; above: number } {
  let v = values;
  let r = k;
  let aboveAll = 0;
  for (let depth = 0; ; depth++) {
    const m = v.length;
    let lo = Infinity;
    let hi = -Infinity;
    if (depth === 0 && range) ({ lo, hi } = range);
    else {
      for (let i = 0; i < m; i++) {
        const x = v[i] as number;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
    }
    if (lo === hi) return { value: lo, above: aboveAll };
    // about one bin per two values (at most SELECT_BINS): fewer bins to clear and walk for a small input
    const bins = Math.min(SELECT_BINS, Math.max(256, 2 ** Math.ceil(Math.log2(m / 2))));
    const scale = bins / (hi - lo);
    if (m <= SELECT_SORT_MAX || depth >= 8 || !Number.isFinite(scale) || scale === 0) {
      const sorted = Float64Array.from(v).sort();
      const value = sorted[m - r] as number;
      let above = 0;
      for (let j = m - 1; j >= 0 && (sorted[j] as number) > value; j--) above++;
      return { value, above: aboveAll + above };
    }
    const counts = selectCounts.fill(0, 0, bins + 1); // reused: fresh memory costs more than the select here
    for (let i = 0; i < m; i++) counts[Math.floor(((v[i] as number) - lo) * scale)]++;
    let b = bins;
    let above = 0;
    while (above + (counts[b] as number) < r) above += counts[b--] as number;
    const bin = new Float64Array(counts[b] as number);
    let o = 0;
    for (let i = 0; i < m; i++) {
      const x = v[i] as number;
      if (Math.floor((x - lo) * scale) === b) bin[o++] = x;
    }
    v = bin;
    r -= above;
    aboveAll += above;
  }
}

/**
 * The entries of `indices` whose `values` are the `k` largest (exact top-k), ties at the cut broken by the lowest
 * index first. `values[i]` belongs to `indices[i]`; values must be finite. Returned in ascending index order.
 * The cut is {@link kthLargest}'s (linear time), then one pass.
 */
export function topKByValue(values: ArrayLike<number>, indices: readonly number[], k: number): number[] {
  const n = indices.length;
  const kk = Math.min(Math.max(0, Math.floor(k)), n);
  if (kk === 0) return [];
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) vals[i] = values[i] as number;
  const cut = kthLargest(vals, kk);
  const atCut: number[] = [];
  const out = new Float64Array(kk);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const v = vals[i] as number;
    if (v > cut) out[o++] = indices[i] as number;
    else if (v === cut) atCut.push(indices[i] as number);
  }
  const ties = Float64Array.from(atCut).sort();
  for (let t = 0; o < kk; t++) out[o++] = ties[t] as number;
  return Array.from(out.sort());
}

/**
 * The top-k selection as a 0/1 mask: `out[i] = 1` for the `k` valid positions (`mask[i] ≠ 0`, `i < n`) with the
 * largest `values[i]`, ties at the cut taken lowest index first; 0 everywhere else (every entry of `out[0..n)` is
 * written). k ≥ the valid count selects every valid position; k ≤ 0 none; `k` may be a function of the valid count.
 * Values at valid positions must be finite.
 * The one host selection behind eighty-twenty (the CPU reference, and the WebGPU engine where it does not select on
 * the GPU), `entropyTopMask` and kl_cov's WebGPU selection.
 *
 * From {@link TOPK_BAND_MIN} positions up, the cut is first bracketed from a sample ({@link bandSelect}: one pass
 * over the values that also writes the mask); where that cannot decide, {@link kthLargest}'s histogram select over
 * all valid values decides ({@link fullCut}). Both take the same positions, so the mask does not depend on which did.
 */
export function topKMaskInto(
  values: ArrayLike<number>,
  mask: ArrayLike<number>,
  n: number,
  k: number | ((valid: number) => number),
  out: { [i: number]: number },
): void {
  if (n >= TOPK_BAND_MIN && bandSelect(values, mask, n, k, out)) return;
  const { m, kk, cut, above } = fullCut(values, mask, n, k);
  if (kk === 0 || kk === m) {
    const on = kk === m && m > 0 ? 1 : 0;
    for (let i = 0; i < n; i++) out[i] = mask[i] !== 0 ? on : 0;
    return;
  }
  let ties = kk - above;
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) {
      out[i] = 0;
      continue;
    }
    const v = values[i] as number;
    if (v > cut) out[i] = 1;
    else if (v === cut && ties > 0) {
      out[i] = 1;
      ties--;
    } else out[i] = 0;
  }
}

/** {@link topKMaskInto}'s cut: m valid positions, kk to take, the kk-th largest value and how many are above it. */
interface TopKCut {
  m: number;
  kk: number;
  cut: number;
  above: number;
}

/** Positions from which {@link topKMaskInto} tries {@link bandSelect} first. */
const TOPK_BAND_MIN = 1 << 16;
/** Positions a band select samples (one in each of this many equal blocks): the CPU's and the WebGPU engine's. */
export const BAND_SAMPLE = 32768;
/** Fewer valid values than this in the sample: no band select (the full select decides). */
export const BAND_MIN_SAMPLE = 256;
/** Half-width of a band around the sample's cut rank, in standard deviations of that rank (binomial). */
const BAND_SIGMAS = 4;

/**
 * The band of a band select: from `valid`, the sample's valid values (any order; at least {@link BAND_MIN_SAMPLE}),
 * and q, the fraction of valid values to take, the sample values `hi` and `lo` ± {@link BAND_SIGMAS} standard
 * deviations of rank around the cut (`Infinity` / `−Infinity` past the sample's ends), and `ranks`, how many sample
 * ranks the band spans (so a population of N positions sampled `size` times puts about ranks·N/size values in it).
 * Shared by the CPU's {@link bandSelect} and the WebGPU engine's (over float keys there).
 */
export function sampleBand(valid: Float64Array, q: number): { lo: number; hi: number; ranks: number } {
  const sv = valid.length;
  const at = Math.min(sv, Math.max(1, Math.round(q * sv)));
  const spread = Math.ceil(BAND_SIGMAS * Math.sqrt(sv * q * (1 - q))) + 4;
  return {
    hi: at - spread < 1 ? Infinity : kthLargest(valid, at - spread),
    lo: at + spread > sv ? -Infinity : kthLargest(valid, at + spread),
    ranks: Math.min(sv, at + spread) - Math.max(1, at - spread) + 1,
  };
}

function takeCount(k: number | ((valid: number) => number), m: number): number {
  return Math.min(Math.max(0, Math.floor(typeof k === 'function' ? k(m) : k)), m);
}

/** The cut by a histogram select over every valid value (two passes over them after gathering them). */
function fullCut(values: ArrayLike<number>, mask: ArrayLike<number>, n: number, k: number | ((valid: number) => number)): TopKCut {
  // one pass: the valid values (into scratch: fresh memory costs more than the selection itself here) and their range
  const all = scratch('topKValues', n);
  let m = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) continue;
    const x = values[i] as number;
    all[m++] = x;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const kk = takeCount(k, m);
  if (kk === 0 || kk === m) return { m, kk, cut: 0, above: 0 };
  const { value: cut, above } = selectKth(all.subarray(0, m), kk, { lo, hi });
  return { m, kk, cut, above };
}

/**
 * {@link topKMaskInto} in one pass over the values, or false (then `out` holds nothing meaningful): a sample of
 * {@link BAND_SAMPLE} positions (a fixed-seed draw in each of as many equal blocks) brackets the cut between two
 * sample values lo ≤ hi ({@link sampleBand}). The pass counts the valid values,
 * writes 1 above hi and 0 elsewhere, and gathers the values in [lo, hi] with their positions; the cut is selected
 * among those and their entries rewritten, in index order (so the lowest-index ties are taken). False when the sample
 * holds under {@link BAND_MIN_SAMPLE} valid values, the band holds more than its buffer (a huge group of equal values at the cut) or the
 * cut is not in it. The same technique as the WebGPU engine's band select (shaders/topk.wgsl). Exported for the
 * tests (which check both paths); callers use {@link topKMaskInto}.
 */
export function bandSelect(values: ArrayLike<number>, mask: ArrayLike<number>, n: number, k: number | ((valid: number) => number), out: { [i: number]: number }): boolean {
  const size = Math.min(BAND_SAMPLE, n);
  const sample = scratch('topKSample', size);
  const rng = mulberry32(0x70b6);
  const stride = n / size;
  let sv = 0;
  for (let i = 0; i < size; i++) {
    const at = Math.floor((i + rng()) * stride);
    if (mask[at] !== 0) sample[sv++] = values[at] as number;
  }
  if (sv < BAND_MIN_SAMPLE) return false;
  const mEst = (sv / size) * n;
  const { lo, hi, ranks } = sampleBand(sample.subarray(0, sv), Math.min(1, Math.max(0, takeCount(k, Math.round(mEst)) / mEst)));
  const cap = Math.ceil((2 * ranks * n) / size) + 4096;
  const bandVal = scratch('topKBand', cap);
  const bandPos = scratch('topKBandPos', cap);
  let m = 0;
  let above = 0;
  let inBand = 0;
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) {
      out[i] = 0;
      continue;
    }
    m++;
    const v = values[i] as number;
    if (v > hi) {
      above++;
      out[i] = 1;
    } else {
      out[i] = 0;
      if (v >= lo) {
        if (inBand === cap) return false;
        bandVal[inBand] = v;
        bandPos[inBand++] = i;
      }
    }
  }
  const kk = takeCount(k, m);
  if (kk === 0 || kk === m) {
    if (kk === m && m > 0) for (let i = 0; i < n; i++) out[i] = mask[i] !== 0 ? 1 : 0;
    else for (let i = 0; i < n; i++) out[i] = 0;
    return true;
  }
  if (!(above < kk && kk <= above + inBand)) return false;
  const { value: cut, above: over } = selectKth(bandVal.subarray(0, inBand), kk - above);
  let ties = kk - above - over;
  for (let j = 0; j < inBand; j++) {
    const v = bandVal[j] as number;
    if (v > cut) out[bandPos[j] as number] = 1;
    else if (v === cut && ties > 0) {
      out[bandPos[j] as number] = 1;
      ties--;
    }
  }
  return true;
}
