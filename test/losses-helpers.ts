/**
 * Shared helpers of the policy-loss tests (not a test file itself): seeded random batches, the loss modes owned
 * by the CPU reference and the kink predicates that keep finite-difference checks away from non-smooth points.
 */
import { type LossAggMode, mulberry32, type PolicyLossBatch, type PolicyLossConfig } from '../src/index.js';

/** Every built-in mode of the float64 reference tested here (bypass_mode has its own tests). */
export const MODES = ['vanilla', 'gspo', 'sapo', 'gpg', 'clip_cov', 'kl_cov', 'geo_mean', 'cispo', 'eighty-twenty'] as const;
/** One of {@link MODES}. */
export type Mode = (typeof MODES)[number];
/** The four aggregation modes. */
export const AGG_MODES: readonly LossAggMode[] = ['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'];

/** A batch as plain nested arrays, easy to copy and perturb. */
export interface RawBatch {
  B: number;
  T: number;
  olp: number[][];
  lp: number[][];
  adv: number[][];
  mask: number[][];
  w: number[][] | null;
  ent: number[][];
}

/** Options of {@link randomBatch}. */
export interface RandomBatchOptions {
  B: number;
  T: number;
  /** One advantage per sequence (outcome estimators) instead of per token. */
  perSeqAdv?: boolean;
  /** |lp − olp| ≤ maxAbsD at valid positions. */
  maxAbsD?: number;
  /** Add rollout IS weights in [0.2, 2]. */
  withWeights?: boolean;
  /** Probability that a row is fully masked. */
  emptyRowProb?: number;
}

/** A seeded random batch; padded positions hold finite garbage (|value| ≤ 4) like the fixtures. */
export function randomBatch(rng: () => number, o: RandomBatchOptions): RawBatch {
  const { B, T } = o;
  const u = (a: number, b: number): number => a + (b - a) * rng();
  const maxD = o.maxAbsD ?? 0.6;
  const mk = (): number[][] => Array.from({ length: B }, () => new Array<number>(T).fill(0));
  const raw: RawBatch = { B, T, olp: mk(), lp: mk(), adv: mk(), mask: mk(), w: o.withWeights ? mk() : null, ent: mk() };
  for (let i = 0; i < B; i++) {
    const len = rng() < (o.emptyRowProb ?? 0.1) ? 0 : 1 + Math.floor(rng() * T);
    const seqA = u(-2, 2);
    for (let j = 0; j < T; j++) {
      const valid = j < len;
      raw.mask[i]![j] = valid ? 1 : 0;
      const olp = u(-5, -0.05);
      raw.olp[i]![j] = olp;
      raw.lp[i]![j] = valid ? olp + u(-maxD, maxD) : u(-4, 4);
      raw.adv[i]![j] = valid ? (o.perSeqAdv ? seqA : u(-2, 2)) : u(-4, 4);
      if (raw.w) raw.w[i]![j] = valid ? u(0.2, 2) : u(-4, 4);
      raw.ent[i]![j] = valid ? u(0, 3) : u(-4, 4);
    }
  }
  return raw;
}

/** The public batch of a raw batch (nested arrays, entropy included). */
export function toBatch(raw: RawBatch): PolicyLossBatch {
  return { oldLogProbs: raw.olp, logProbs: raw.lp, advantages: raw.adv, responseMask: raw.mask, rolloutIsWeights: raw.w, entropy: raw.ent };
}

/** A deep copy of a raw batch. */
export function cloneRaw(raw: RawBatch): RawBatch {
  const c = (x: number[][]): number[][] => x.map((r) => [...r]);
  return { B: raw.B, T: raw.T, olp: c(raw.olp), lp: c(raw.lp), adv: c(raw.adv), mask: c(raw.mask), w: raw.w ? c(raw.w) : null, ent: c(raw.ent) };
}

/** A seeded PRNG for tests. */
export function rngOf(seed: number): () => number {
  return mulberry32(seed);
}

function validTokens(raw: RawBatch): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < raw.B; i++) for (let j = 0; j < raw.T; j++) if (raw.mask[i]![j] === 1) out.push([i, j]);
  return out;
}

/**
 * The distance (in log-ratio / ratio / covariance units) from the batch to the nearest point where `mode`'s loss is
 * not differentiable in lp under `config`; finite differences are only trusted where it is comfortably positive.
 */
export function kinkDistance(mode: Mode, raw: RawBatch, config: PolicyLossConfig): number {
  const lo = 1 - (config.clipRatioLow ?? config.clipRatio ?? 0.2);
  const hi = 1 + (config.clipRatioHigh ?? config.clipRatio ?? 0.2);
  const c = config.clipRatioC ?? 3;
  let dist = Infinity;
  const near = (x: number, y: number): void => {
    dist = Math.min(dist, Math.abs(x - y));
  };
  const toks = validTokens(raw);
  const d = (i: number, j: number): number => raw.lp[i]![j]! - raw.olp[i]![j]!;
  switch (mode) {
    case 'vanilla':
    case 'eighty-twenty':
    case 'clip_cov':
      for (const [i, j] of toks) {
        near(Math.abs(d(i, j)), 20);
        const r = Math.exp(d(i, j));
        near(r, lo);
        near(r, hi);
        if (mode !== 'clip_cov' && raw.adv[i]![j]! < 0) near(r, c);
      }
      if (mode === 'clip_cov') {
        let sa = 0;
        let sl = 0;
        for (const [i, j] of toks) {
          sa += raw.adv[i]![j]!;
          sl += raw.lp[i]![j]!;
        }
        const ma = sa / (toks.length + 1e-8);
        const ml = sl / (toks.length + 1e-8);
        for (const [i, j] of toks) {
          const cov = (raw.adv[i]![j]! - ma) * (raw.lp[i]![j]! - ml);
          near(cov, config.clipCovLb ?? 1);
          near(cov, config.clipCovUb ?? 5);
        }
      }
      return dist;
    case 'sapo':
      for (const [i, j] of toks) near(Math.abs(d(i, j)), 20);
      return dist;
    case 'gpg':
    case 'cispo':
      return dist;
    case 'geo_mean':
      for (const [i, j] of toks) {
        near(d(i, j), -(config.clipRatioLow ?? config.clipRatio ?? 0.2));
        near(d(i, j), config.clipRatioHigh ?? config.clipRatio ?? 0.2);
      }
      return dist;
    case 'gspo':
      for (let i = 0; i < raw.B; i++) {
        let s = 0;
        let n = 0;
        for (let j = 0; j < raw.T; j++) if (raw.mask[i]![j] === 1) {
          s += d(i, j);
          n += 1;
        }
        if (n === 0) continue;
        const sl = s / n;
        near(sl, 10);
        near(Math.exp(Math.min(sl, 10)), lo);
        near(Math.exp(Math.min(sl, 10)), hi);
      }
      return dist;
    case 'kl_cov': {
      if (toks.length === 0) return dist;
      let sa = 0;
      let sl = 0;
      for (const [i, j] of toks) {
        sa += raw.adv[i]![j]!;
        sl += raw.lp[i]![j]!;
      }
      const covs = toks.map(([i, j]) => (raw.adv[i]![j]! - sa / toks.length) * (raw.lp[i]![j]! - sl / toks.length));
      const k = Math.max(1, Math.floor(toks.length * (config.klCovRatio ?? 0.0002)));
      const sorted = [...covs].sort((a, b) => b - a);
      if (k < sorted.length) near(sorted[k - 1]!, sorted[k]!);
      for (const [i, j] of toks) near(d(i, j), 0);
      return dist;
    }
  }
}

/** Test configs per mode: verl's defaults, the seed's and the examples' settings, spread so branches are hit. */
export const MODE_CONFIGS: Record<Mode, PolicyLossConfig[]> = {
  vanilla: [{ clipRatioLow: 0.2, clipRatioHigh: 0.28 }, { clipRatio: 0.1, clipRatioC: 1.5 }],
  gspo: [{ clipRatioLow: 0.0003, clipRatioHigh: 0.0004 }, { clipRatioLow: 0.05, clipRatioHigh: 0.08 }],
  sapo: [{}, { tauPos: 2, tauNeg: 0.5 }],
  gpg: [{}],
  clip_cov: [{ clipCovRatio: 0.2, clipCovLb: 0.05, clipCovUb: 2 }, { clipCovRatio: 0.02, clipCovLb: 0.02, clipCovUb: 5, clipCovSeed: 7 }],
  kl_cov: [{ klCovRatio: 0.3, ppoKlCoef: 0.5 }, {}],
  geo_mean: [{ clipRatio: 0.4 }, { clipRatioLow: 0.2, clipRatioHigh: 0.28 }],
  cispo: [{ clipRatioLow: 0.2, clipRatioHigh: 0.28 }, { clipRatioLow: 10, clipRatioHigh: 0.2 }],
  'eighty-twenty': [{ clipRatioLow: 0.2, clipRatioHigh: 0.28, entropyTopRatio: 0.4 }, { entropyTopRatio: 0 }],
};

/** Whether `mode` aggregates token losses with a `lossAggMode` (geo_mean has its own row mean). */
export function usesAggMode(mode: Mode): boolean {
  return mode !== 'geo_mean';
}
