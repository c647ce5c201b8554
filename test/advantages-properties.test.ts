import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeAdvantage,
  ConfigError,
  EstimatorError,
  grpoAdvantages,
  listAdvantageEstimators,
  registerAdvantageEstimator,
  resolveAdvantageInputs,
  ShapeError,
  unregisterAdvantageEstimator,
  UnknownModeError,
  ValueError,
  mulberry32,
} from '../src/index.js';
import type { AdvantageInputs } from '../src/index.js';

const rng = mulberry32;

interface Batch {
  B: number;
  T: number;
  rewards: number[][];
  mask: number[][];
  index: string[];
  values: number[][];
  baselines: number[];
  olp: number[][];
  spp: number[][];
  isw: number[][];
}

/** Groups of ≥ 2 rows (so every estimator accepts them), interleaved; every row has ≥ 1 valid token. */
function makeBatch(sizes: number[], T: number, seed: number): Batch {
  const r = rng(seed);
  const index: string[] = [];
  sizes.forEach((n, g) => { for (let k = 0; k < n; k++) index.push(`uid-${g}`); });
  for (let i = index.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [index[i], index[j]] = [index[j] as string, index[i] as string];
  }
  const B = index.length;
  const pick = <X>(xs: X[]): X => xs[Math.floor(r() * xs.length)] as X;
  const rewards: number[][] = [];
  const mask: number[][] = [];
  const m = () => Array.from({ length: T }, () => Math.round((r() * 2 - 1) * 1e4) / 1e4);
  for (let i = 0; i < B; i++) {
    const L = 1 + Math.floor(r() * T);
    mask.push(Array.from({ length: T }, (_, t) => (t < L ? 1 : 0)));
    const row = new Array<number>(T).fill(0);
    row[L - 1] = pick([-1, 0, 0.5, 1, 2]);
    if (r() < 0.3) row[Math.floor(r() * L)] += pick([0.25, -0.5]);
    rewards.push(row);
  }
  return {
    B, T, rewards, mask, index,
    values: Array.from({ length: B }, m),
    baselines: Array.from({ length: B }, () => pick([0, 0.5, 1])),
    olp: Array.from({ length: B }, () => Array.from({ length: T }, () => -r() * 3)),
    spp: Array.from({ length: B }, () => Array.from({ length: T }, () => 0.05 + r() * 0.9)),
    isw: Array.from({ length: B }, () => Array.from({ length: T }, () => 0.5 + r())),
  };
}

function inputsOf(b: Batch, withIs = false): AdvantageInputs {
  return {
    tokenLevelRewards: b.rewards, responseMask: b.mask, index: b.index, values: b.values,
    rewardBaselines: b.baselines, oldLogProbs: b.olp, sumPiSquared: b.spp, rolloutIsWeights: withIs ? b.isw : null,
  };
}

function permute(b: Batch, perm: number[]): Batch {
  const p = <X>(xs: X[]): X[] => perm.map((k) => xs[k] as X);
  return { ...b, rewards: p(b.rewards), mask: p(b.mask), index: p(b.index), values: p(b.values), baselines: p(b.baselines), olp: p(b.olp), spp: p(b.spp), isw: p(b.isw) };
}

function closeAt(a: Float64Array, b: Float64Array, rtol: number, atol: number, where: (k: number) => boolean): boolean {
  for (let k = 0; k < a.length; k++) {
    if (!where(k)) continue;
    const x = a[k] as number;
    const y = b[k] as number;
    if (Math.abs(x - y) > rtol * Math.abs(y) + atol) return false;
  }
  return true;
}

const ESTIMATORS = listAdvantageEstimators().filter((n) => !n.startsWith('user-'));
const batchArb = fc.record({
  sizes: fc.array(fc.integer({ min: 2, max: 4 }), { minLength: 1, maxLength: 4 }),
  T: fc.integer({ min: 2, max: 6 }),
  seed: fc.integer(),
  permSeed: fc.integer(),
});

describe('advantage properties', () => {
  it('covers the 13 estimators', () => expect(ESTIMATORS.length).toBe(13));

  for (const est of ESTIMATORS) {
    it(`${est}: permuting rows (within and across groups) permutes the advantages and returns`, () => {
      fc.assert(
        fc.property(batchArb, ({ sizes, T, seed, permSeed }) => {
          const b = makeBatch(sizes, T, seed);
          const r = rng(permSeed);
          const perm = Array.from({ length: b.B }, (_, i) => i);
          for (let i = perm.length - 1; i > 0; i--) {
            const j = Math.floor(r() * (i + 1));
            [perm[i], perm[j]] = [perm[j] as number, perm[i] as number];
          }
          const a = computeAdvantage(est, inputsOf(b, true));
          const q = computeAdvantage(est, inputsOf(permute(b, perm), true));
          const back = (x: Float64Array) => {
            const out = new Float64Array(x.length);
            perm.forEach((src, dst) => out.set(x.subarray(dst * T, dst * T + T), src * T));
            return out;
          };
          const rtol = est === 'grpo_vectorized' ? 1e-6 : 1e-9;
          const all = () => true;
          expect(closeAt(back(q.advantages), a.advantages, rtol, 1e-12, all)).toBe(true);
          expect(closeAt(back(q.returns), a.returns, rtol, 1e-12, all)).toBe(true);
        }),
        { numRuns: 40 },
      );
    });

    it(`${est}: garbage at padded positions never changes the outputs at valid positions`, () => {
      // Outcome estimators sum rewards over every position (verl: the fixtures' nonzero_rewards_in_padding), so
      // padded rewards stay 0 for them; the others mask rewards themselves and get garbage rewards too.
      const masksRewards = ['remax', 'gae', 'reinforce_plus_plus', 'optimal_token_baseline', 'tir_optimal_token_baseline'].includes(est);
      fc.assert(
        fc.property(batchArb, ({ sizes, T, seed, permSeed }) => {
          const b = makeBatch(sizes, T, seed);
          const r = rng(permSeed);
          const junk = (x: number[][], allowed = true) =>
            x.map((row, i) => row.map((v, t) => ((b.mask[i] as number[])[t] === 0 && allowed ? (r() - 0.5) * 1e3 : v)));
          const g: Batch = { ...b, rewards: junk(b.rewards, masksRewards), values: junk(b.values), olp: junk(b.olp), spp: junk(b.spp), isw: junk(b.isw) };
          const a = computeAdvantage(est, inputsOf(b, true));
          const q = computeAdvantage(est, inputsOf(g, true));
          const valid = (k: number) => (b.mask[Math.floor(k / T)] as number[])[k % T] === 1;
          expect(closeAt(q.advantages, a.advantages, 1e-9, 1e-12, valid)).toBe(true);
          if (est !== 'gae') expect(closeAt(q.returns, a.returns, 1e-9, 1e-12, valid)).toBe(true);
        }),
        { numRuns: 40 },
      );
    });
  }

  it('advantagesInto / returnsInto: every estimator gives the same numbers into reused arrays (stale contents, float32 inputs read in place)', () => {
    const b = makeBatch([3, 2, 4], 7, 11);
    const n = b.B * b.T;
    const f32 = (m: number[][]) => Float32Array.from(m.flat());
    const flat: AdvantageInputs = {
      tokenLevelRewards: f32(b.rewards), responseMask: f32(b.mask), index: b.index, values: f32(b.values),
      rewardBaselines: b.baselines, oldLogProbs: f32(b.olp), sumPiSquared: f32(b.spp), rolloutIsWeights: f32(b.isw), shape: [b.B, b.T],
    };
    const adv = new Float64Array(n + 3);
    const ret = new Float64Array(n + 3);
    for (const est of ESTIMATORS) {
      const fresh = computeAdvantage(est, flat);
      adv.fill(Number.NaN); // stale contents: every entry must be written
      ret.fill(Number.NaN);
      adv.fill(9, n);
      ret.fill(9, n);
      const r = computeAdvantage(est, flat, {}, { advantagesInto: adv, returnsInto: ret });
      expect(r.advantages, est).toBe(adv);
      expect(r.returns, est).toBe(ret);
      expect(Array.from(adv.subarray(0, n)), est).toEqual(Array.from(fresh.advantages));
      expect(Array.from(ret.subarray(0, n)), est).toEqual(Array.from(fresh.returns));
      expect(Array.from(adv.subarray(n)), est).toEqual([9, 9, 9]);
      // one of the two alone
      const only = new Float64Array(n);
      const r1 = computeAdvantage(est, flat, {}, { advantagesInto: only });
      expect(r1.advantages).toBe(only);
      expect(Array.from(only), est).toEqual(Array.from(fresh.advantages));
      expect(Array.from(r1.returns), est).toEqual(Array.from(fresh.returns));
    }
    expect(() => computeAdvantage('grpo', flat, {}, { advantagesInto: new Float64Array(n - 1) })).toThrow(ShapeError);
    expect(() => computeAdvantage('grpo', flat, {}, { returnsInto: new Float32Array(n) as unknown as Float64Array })).toThrow(/returnsInto must be a Float64Array/);
    const shared = new Float64Array(2 * n);
    expect(() => computeAdvantage('grpo', flat, {}, { advantagesInto: shared.subarray(0, n), returnsInto: shared.subarray(n) })).toThrow(ConfigError);
  });

  it('resolveAdvantageInputs reads float32 in place and makes float64 rewards / mask / values only on access', () => {
    const x = resolveAdvantageInputs({ tokenLevelRewards: new Float32Array([0, 1, 0.5, 0]), responseMask: new Float32Array([1, 1, 1, 0]), shape: [2, 2] });
    expect(x.maskData).toBeInstanceOf(Float32Array);
    expect(x.rewardsData).toBeInstanceOf(Float32Array);
    expect(x.mask).toBeInstanceOf(Float64Array);
    expect(x.mask).toBe(x.mask); // made once
    expect(Array.from(x.mask)).toEqual([1, 1, 1, 0]);
    expect(Array.from(x.rewards)).toEqual([0, 1, 0.5, 0]);
    expect(Array.from(x.scores)).toEqual([1, 0.5]);
    const v = resolveAdvantageInputs({ tokenLevelRewards: new Float32Array(2), responseMask: new Float32Array([1, 1]), values: new Float32Array([0.25, -1]), shape: [1, 2] });
    expect(v.valuesData).toBeInstanceOf(Float32Array);
    expect(v.values).toBeInstanceOf(Float64Array);
    expect(Array.from(v.values as Float64Array)).toEqual([0.25, -1]);
    expect(resolveAdvantageInputs({ tokenLevelRewards: new Float32Array(2), responseMask: new Float32Array([1, 1]), shape: [1, 2] }).values).toBeNull();
    const m64 = new Float64Array([1, 0]);
    expect(resolveAdvantageInputs({ tokenLevelRewards: new Float64Array([1, 2]), responseMask: m64, shape: [1, 2] }).mask).toBe(m64);
  });

  it('padded rewards do count for the outcome estimators, as in verl', () => {
    const base = { responseMask: [[1, 0], [1, 1]], index: ['a', 'a'] };
    const a = computeAdvantage('grpo', { ...base, tokenLevelRewards: [[1, 0], [0, 0]] }, { normAdvByStdInGrpo: false });
    const b = computeAdvantage('grpo', { ...base, tokenLevelRewards: [[1, 5], [0, 0]] }, { normAdvByStdInGrpo: false });
    expect(a.advantages[0]).toBe(0.5);
    expect(b.advantages[0]).toBe(3);
  });
});

describe('advantage worked examples (SPEC.md §13) and grpoAdvantages', () => {
  const scores = [1, 0.5, 0, 2, 0.5, 1];
  const ids = ['a', 'b', 'a', 'c', 'b', 'a'];
  it('grpo: a = [.577349, −1.154699, .577349], b = 0, singleton c = 2/float32(1 + 1e-6)', () => {
    const g = grpoAdvantages(scores, ids);
    expect(g[0]).toBeCloseTo(0.577349, 6);
    expect(g[2]).toBeCloseTo(-1.154699, 6);
    expect(g[5]).toBeCloseTo(0.577349, 6);
    expect(g[1]).toBe(0);
    expect(g[3]).toBe(2 / 1.0000009536743164);
  });
  it('Dr.GRPO, rloo, gpg (α = 6/5 in float32), opo', () => {
    const dr = grpoAdvantages(scores, ids, { normAdvByStdInGrpo: false });
    expect(dr[0]).toBeCloseTo(1 / 3, 15);
    expect(dr[3]).toBe(2);
    const inp: AdvantageInputs = { tokenLevelRewards: scores.map((s) => [s]), responseMask: scores.map(() => [1]), index: ids };
    const rl = computeAdvantage('rloo', inp).advantages;
    expect([rl[0], rl[2], rl[5], rl[3]].map((x) => Number((x as number).toFixed(12)))).toEqual([0.5, -1, 0.5, 2]);
    const gp = computeAdvantage('gpg', inp).advantages;
    expect(gp[3]).toBe(2 * Math.fround(Math.fround(1 / 5) * 6));
    expect(gp[0]).toBeCloseTo(0.4, 6);
    const opo = computeAdvantage('opo', {
      tokenLevelRewards: [[0, 1, 0], [0, 0, 0], [1, 0, 0]],
      responseMask: [[1, 1, 0], [1, 1, 1], [1, 0, 0]],
      index: ['a', 'a', 'a'],
    }).advantages;
    expect([opo[0], opo[3], opo[6]]).toEqual([0.5, -0.5, 0.5]);
  });
  it('grpo_vectorized floors the variance at ε: scores [1, 1.0001] give ±0.05, grpo gives ±0.70 (σ = 7.07e-5, + ε)', () => {
    expect(grpoAdvantages([1, 1.0001], ['g', 'g'], { vectorized: true })[1]).toBeCloseTo(0.05, 2);
    expect(grpoAdvantages([1, 1.0001], ['g', 'g'])[1]).toBeCloseTo(0.6972, 3);
  });
});

describe('advantage errors', () => {
  const ok: AdvantageInputs = { tokenLevelRewards: [[1, 0], [0, 1]], responseMask: [[1, 0], [1, 1]], index: ['a', 'a'] };
  it('ragged rows, index length ≠ B, NaN rewards, a non-0/1 mask', () => {
    expect(() => computeAdvantage('grpo', { ...ok, tokenLevelRewards: [[1, 0], [0]] })).toThrow(ShapeError);
    expect(() => computeAdvantage('grpo', { ...ok, index: ['a'] })).toThrow(ShapeError);
    expect(() => computeAdvantage('grpo', { ...ok, tokenLevelRewards: [[Number.NaN, 0], [0, 1]] })).toThrow(ValueError);
    expect(() => computeAdvantage('grpo', { ...ok, responseMask: [[1, 0.5], [1, 1]] })).toThrow(ValueError);
    expect(() => computeAdvantage('grpo', { ...ok, tokenLevelRewards: new Float64Array(4), responseMask: new Float64Array(4) })).toThrow(ShapeError);
  });
  it('what verl raises: grpo_passk singleton, whitening with ≤ 1 valid token', () => {
    expect(() => computeAdvantage('grpo_passk', { ...ok, index: ['a', 'b'] })).toThrow(EstimatorError);
    const one: AdvantageInputs = { tokenLevelRewards: [[1, 0]], responseMask: [[1, 0]], index: ['a'], values: [[0, 0]] };
    for (const est of ['reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gae']) {
      expect(() => computeAdvantage(est, one)).toThrow(EstimatorError);
    }
  });
  it('unknown estimator, missing inputs, bad config', () => {
    expect(() => computeAdvantage('ppo', ok)).toThrow(UnknownModeError);
    expect(() => computeAdvantage('gae', ok)).toThrow(/values/);
    expect(() => computeAdvantage('remax', ok)).toThrow(/rewardBaselines/);
    expect(() => computeAdvantage('grpo', { ...ok, index: undefined })).toThrow(ShapeError);
    expect(() => computeAdvantage('grpo', ok, { gamma: Number.NaN })).toThrow(ConfigError);
  });
  it('registerAdvantageEstimator: user estimators run through the same validation; built-ins are protected', () => {
    registerAdvantageEstimator('user-constant', (x) => ({ advantages: x.mask.slice(), returns: x.mask.slice() }), { requires: ['index'] });
    expect(Array.from(computeAdvantage('user-constant', ok).advantages)).toEqual([1, 0, 1, 1]);
    expect(() => registerAdvantageEstimator('grpo', (x) => ({ advantages: x.mask, returns: x.mask }))).toThrow(ConfigError);
    expect(unregisterAdvantageEstimator('user-constant')).toBe(true);
  });
});
