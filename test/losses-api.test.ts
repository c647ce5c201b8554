/**
 * The public policy-loss API: typed errors, the registry (built-ins, kernels, user strategies), fromVerlConfig on
 * the dotted overrides of a verl run script, the aggregation choices (gspo/sapo honour an explicit mode, geo_mean
 * never), clip_cov's seeded choice, kl_cov's tie rule, and SPEC.md §13's worked example.
 */
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  clipCovSelect,
  finishTokenLoss,
  fromVerlConfig,
  getPolicyLoss,
  gspoLoss,
  listPolicyLosses,
  LumiragError,
  type PolicyLossBatch,
  policyLoss,
  registerPolicyLoss,
  ShapeError,
  topKByValue,
  UnknownModeError,
  unregisterPolicyLoss,
  ValueError,
} from '../src/index.js';
import { MODES } from './losses-helpers.js';
import fc from 'fast-check';
import { bandSelect, kthLargest, topKMaskInto } from '../src/losses/common.js';

const spec13: PolicyLossBatch = {
  oldLogProbs: [[-1, -2, -0.5, -3], [-1, -1, -1, -1]],
  logProbs: [[-0.5, -2.5, -0.5, -0.5], [-1.2, -0.9, -1, 0]],
  advantages: [[1, 1, 1, 1], [-1, -1, -1, -1]],
  responseMask: [[1, 1, 1, 0], [1, 1, 1, 1]],
};
const dapo = { clipRatioLow: 0.2, clipRatioHigh: 0.28 };

function thrown(f: () => unknown): LumiragError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LumiragError);
    return e as LumiragError;
  }
  throw new Error('did not throw');
}

describe('SPEC.md §13 worked example (verl on CPU torch)', () => {
  it.each([
    ['vanilla', dapo, 0.393665],
    ['gspo', dapo, 0.126161],
    ['sapo', dapo, 0.073977],
    ['cispo', dapo, 0.023267],
    ['geo_mean', dapo, 0.161516],
    ['geo_mean', { clipRatio: 0.4 }, 0.142553],
    ['gpg', dapo, 0.057143],
    ['kl_cov', { klCovRatio: 0.2, ppoKlCoef: 1 }, 0.412419],
  ] as const)('%s %j → %f', (mode, config, expected) => {
    expect(policyLoss(mode, spec13, config).loss).toBeCloseTo(expected, 6);
  });
  it('metrics', () => {
    expect(policyLoss('cispo', spec13, dapo).metrics['actor/pg_clipfrac']).toBeCloseTo(3 / 7, 6);
    const g = policyLoss('geo_mean', spec13, dapo).metrics;
    expect(g['actor/pg_clipfrac']).toBeCloseTo(2 / 7, 6);
    // SPEC §13 says 2/7 (float32 torch); in float64 one log-ratio is −0.19999999999999996, inside the band, so 1/7
    // (the fixtures' README notes this; policy_loss.json's spec13 case records 1/7).
    expect(g['actor/pg_clipfrac_lower']).toBeCloseTo(1 / 7, 6);
    expect(policyLoss('kl_cov', spec13, { klCovRatio: 0.2, ppoKlCoef: 1 }).metrics).toEqual({ 'actor/ppo_kl': expect.closeTo(0.328571, 6) });
    expect(policyLoss('gpg', spec13).metrics).toEqual({});
    expect(Object.keys(policyLoss('clip_cov', spec13).metrics).sort()).toEqual(['actor/pg_clipfrac', 'actor/ppo_kl']);
  });
  it('dual-clip: olp = 0, lp = [0, 2], A = −1 → 2.0, clipfrac_lower 0.5, grad [0.5, 0]', () => {
    const r = policyLoss('vanilla', { oldLogProbs: [[0, 0]], logProbs: [[0, 2]], advantages: [[-1, -1]], responseMask: [[1, 1]] }, dapo);
    expect(r.loss).toBeCloseTo(2, 12);
    expect(r.metrics['actor/pg_clipfrac_lower']).toBeCloseTo(0.5, 8);
    expect(r.grad[0]).toBeCloseTo(0.5, 12);
    expect(r.grad[1]).toBe(0);
  });
});

describe('typed errors', () => {
  const ok = spec13;
  it('ragged rows', () => {
    const e = thrown(() => policyLoss('vanilla', { ...ok, logProbs: [[-0.5, -2.5, -0.5, -0.5], [-1.2, -0.9, -1]] }));
    expect(e).toBeInstanceOf(ShapeError);
    expect(e.field).toBe('logProbs');
    expect(e.message).toMatch(/ragged/);
  });
  it('shape mismatch between fields', () => {
    const e = thrown(() => policyLoss('gspo', { ...ok, advantages: [[1, 1, 1], [1, 1, 1]] }));
    expect(e.code).toBe('E_SHAPE');
    expect(e.field).toBe('advantages');
  });
  it('flat input without a shape, or with a wrong length', () => {
    expect(thrown(() => policyLoss('vanilla', { ...ok, responseMask: [1, 1, 1, 0, 1, 1, 1, 1] })).code).toBe('E_SHAPE');
    const e = thrown(() => policyLoss('vanilla', { ...ok, logProbs: new Float64Array(7), shape: [2, 4] }));
    expect(e.field).toBe('logProbs');
  });
  it('non-finite values at valid positions (but not at padding)', () => {
    const e = thrown(() => policyLoss('sapo', { ...ok, oldLogProbs: [[-1, Number.NaN, -0.5, -3], [-1, -1, -1, -1]] }));
    expect(e).toBeInstanceOf(ValueError);
    expect(e.field).toBe('oldLogProbs');
    expect(e.message).toContain('[0, 1]');
    expect(() => policyLoss('sapo', { ...ok, oldLogProbs: [[-1, -2, -0.5, Number.NaN], [-1, -1, -1, -1]] })).not.toThrow();
    expect(thrown(() => policyLoss('gpg', { ...ok, rolloutIsWeights: [[1, 1, Infinity, 1], [1, 1, 1, 1]] })).field).toBe('rolloutIsWeights');
  });
  it('a mask that is not 0/1', () => {
    const e = thrown(() => policyLoss('cispo', { ...ok, responseMask: [[1, 1, 0.5, 0], [1, 1, 1, 1]] }));
    expect(e).toBeInstanceOf(ValueError);
    expect(e.field).toBe('responseMask');
  });
  it('clipRatioC <= 1, negative eps, ratios out of range, bad global info', () => {
    for (const c of [1, 0.5]) {
      const e = thrown(() => policyLoss('vanilla', ok, { clipRatioC: c }));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.field).toBe('clipRatioC');
    }
    expect(thrown(() => policyLoss('vanilla', ok, { clipRatioLow: -0.1 })).field).toBe('clipRatioLow');
    expect(thrown(() => policyLoss('eighty-twenty', ok, { entropyTopRatio: 1.5 })).field).toBe('entropyTopRatio');
    expect(thrown(() => policyLoss('clip_cov', ok, { clipCovRatio: 0 })).field).toBe('clipCovRatio');
    expect(thrown(() => policyLoss('kl_cov', ok, { klCovRatio: 0 })).field).toBe('klCovRatio');
    expect(thrown(() => policyLoss('sapo', ok, { tauNeg: 0 })).field).toBe('tauNeg');
    expect(thrown(() => policyLoss('vanilla', ok, { globalBatchInfo: { batchNumTokens: 0 } })).field).toBe('globalBatchInfo.batchNumTokens');
  });
  it('unknown lossMode and lossAggMode list the valid names', () => {
    const e = thrown(() => policyLoss('ppo', ok));
    expect(e).toBeInstanceOf(UnknownModeError);
    expect(e.code).toBe('E_UNKNOWN_MODE');
    for (const m of MODES) expect(e.message).toContain(m);
    expect((e as UnknownModeError).valid).toEqual(listPolicyLosses());
    const a = thrown(() => policyLoss('vanilla', ok, { lossAggMode: 'mean' as never }));
    expect(a).toBeInstanceOf(UnknownModeError);
    expect(a.message).toContain('seq-mean-token-sum-norm');
  });
});

describe('registry', () => {
  it('registers every verl loss plus eighty-twenty, with kernels and default aggregations', () => {
    const names = listPolicyLosses();
    for (const m of MODES) expect(names).toContain(m);
    expect(getPolicyLoss('vanilla').kernel).toBe('vanilla');
    expect(getPolicyLoss('eighty-twenty').kernel).toBe('eighty_twenty');
    expect(getPolicyLoss('geo_mean').kernel).toBe('geo_mean');
    for (const m of MODES) expect(getPolicyLoss(m).kernel).toBe(m.replace('-', '_'));
    expect(getPolicyLoss('gspo').defaultAggMode).toBe('seq-mean-token-mean');
    expect(getPolicyLoss('sapo').defaultAggMode).toBe('seq-mean-token-mean');
    expect(getPolicyLoss('geo_mean').defaultAggMode).toBe('row-mean');
    expect(getPolicyLoss('vanilla').defaultAggMode).toBe('token-mean');
  });
  it('a user strategy runs with a validated batch and a resolved config', () => {
    registerPolicyLoss('test-reinforce', (batch, config) => {
      const n = batch.B * batch.T;
      const lossMat = new Float64Array(n);
      const dLoss = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        lossMat[k] = -(batch.advantages[k] as number) * (batch.logProbs[k] as number);
        dLoss[k] = -(batch.advantages[k] as number);
      }
      return finishTokenLoss(batch, config, lossMat, dLoss, 'token-mean', { 'actor/custom': 1 });
    });
    try {
      expect(listPolicyLosses()).toContain('test-reinforce');
      const r = policyLoss('test-reinforce', spec13);
      const g = policyLoss('gpg', spec13);
      expect(r.loss).toBe(g.loss);
      expect([...r.grad]).toEqual([...g.grad]);
      expect(r.metrics).toEqual({ 'actor/custom': 1 });
      expect(() => registerPolicyLoss('test-reinforce', () => g)).toThrow(ConfigError);
      registerPolicyLoss('test-reinforce', () => g, { overwrite: true });
      expect(policyLoss('test-reinforce', spec13)).toBe(g);
    } finally {
      expect(unregisterPolicyLoss('test-reinforce')).toBe(true);
    }
    expect(listPolicyLosses()).not.toContain('test-reinforce');
  });
  it('built-ins cannot be replaced or removed', () => {
    const g = policyLoss('gpg', spec13);
    expect(() => registerPolicyLoss('gspo', () => g, { overwrite: true })).toThrow(ConfigError);
    expect(unregisterPolicyLoss('gspo')).toBe(false);
    expect(() => registerPolicyLoss('', () => g)).toThrow(ConfigError);
  });
});

describe('aggregation choices', () => {
  it('gspo and sapo default to seq-mean-token-mean and honour an explicit lossAggMode', () => {
    for (const mode of ['gspo', 'sapo'] as const) {
      const dflt = policyLoss(mode, spec13, dapo);
      expect(dflt).toEqual(policyLoss(mode, spec13, { ...dapo, lossAggMode: 'seq-mean-token-mean' }));
      const tm = policyLoss(mode, spec13, { ...dapo, lossAggMode: 'token-mean' });
      expect(tm.loss).not.toBeCloseTo(dflt.loss, 6);
    }
  });
  it('geo_mean always takes its own row mean: lossAggMode and globalBatchInfo are ignored', () => {
    const ref = policyLoss('geo_mean', spec13, dapo);
    for (const lossAggMode of ['token-mean', 'seq-mean-token-sum'] as const) {
      expect(policyLoss('geo_mean', spec13, { ...dapo, lossAggMode, globalBatchInfo: { dpSize: 4, globalBatchSize: 9 } })).toEqual(ref);
    }
  });
});

describe('clip_cov: deterministic choice when candidates exceed n_clip', () => {
  // 1 row, 10 valid tokens, on-policy (nothing clipped by the ratio), cov = (A − Ā)(lp − l̄p) in (lb, ub) for all
  const lp = [[-1, -2, -3, -4, -5, -1, -2, -3, -4, -5]];
  const batch: PolicyLossBatch = {
    oldLogProbs: lp,
    logProbs: lp,
    advantages: [[2, 3, 4, 5, 6, -2, -3, -4, -5, -6]],
    responseMask: [new Array<number>(10).fill(1)],
  };
  it('zeroes exactly n_clip = max(⌊ratio·N⌋, 1) of the candidates, the same ones for the same seed', () => {
    const config = { clipCovRatio: 0.3, clipCovLb: -100, clipCovUb: 100 };
    const a = policyLoss('clip_cov', batch, config);
    expect(a.metrics['actor/pg_clipfrac']).toBeCloseTo(3 / 10, 9);
    expect(a.grad.filter((g) => g === 0).length).toBe(3);
    expect(policyLoss('clip_cov', batch, config)).toEqual(a);
    expect(policyLoss('clip_cov', batch, { ...config, clipCovSeed: 0 })).toEqual(a);
    const seeds = new Set<string>();
    for (let s = 0; s < 20; s++) seeds.add(policyLoss('clip_cov', batch, { ...config, clipCovSeed: s }).grad.join());
    expect(seeds.size).toBeGreaterThan(3); // different seeds draw different subsets
  });
  it('clipCovSelect: all candidates when they fit, else a sorted subset of n_clip drawn uniformly', () => {
    expect(clipCovSelect([4, 9, 2], 5, 1)).toEqual([4, 9, 2]);
    const counts = new Array<number>(6).fill(0);
    for (let s = 0; s < 3000; s++) {
      const pick = clipCovSelect([0, 1, 2, 3, 4, 5], 2, s);
      expect(pick.length).toBe(2);
      expect(pick[0]).toBeLessThan(pick[1]!);
      for (const p of pick) counts[p]! += 1;
    }
    for (const c of counts) expect(Math.abs(c / 3000 - 1 / 3)).toBeLessThan(0.05);
  });
});

describe('kl_cov: ties at the cut go to the lowest index', () => {
  it('per-sequence advantages make every covariance 0: the first k valid tokens get the KL term', () => {
    const b: PolicyLossBatch = {
      oldLogProbs: [[-1, -1, -1, -1, -1]],
      logProbs: [[-0.5, -1.5, -0.8, -1.2, 9]],
      advantages: [[1, 1, 1, 1, 1]],
      responseMask: [[1, 1, 1, 1, 0]],
    };
    const r = policyLoss('kl_cov', b, { klCovRatio: 0.5, ppoKlCoef: 1 });
    const plain = [-0.5, -1.5, -0.8, -1.2].map((l) => -Math.exp(l + 1) / 4);
    expect(r.grad[0]).toBeCloseTo(plain[0]! + 1 / 4, 15); // sign(d) = +1
    expect(r.grad[1]).toBeCloseTo(plain[1]! - 1 / 4, 15); // sign(d) = −1
    expect(r.grad[2]).toBeCloseTo(plain[2]!, 15);
    expect(r.grad[3]).toBeCloseTo(plain[3]!, 15);
    expect(r.grad[4]).toBe(0);
  });
});

describe('topKByValue (shared by kl_cov, eighty-twenty and entropyTopMask)', () => {
  it('exact top-k, ties at the cut by the lowest index, result in ascending index order', () => {
    expect(topKByValue([1, 5, 3, 5, 2], [10, 11, 12, 13, 14], 2)).toEqual([11, 13]);
    expect(topKByValue([1, 5, 3, 5, 2], [10, 11, 12, 13, 14], 1)).toEqual([11]);
    expect(topKByValue([7, 7, 7, 7], [9, 3, 6, 1], 2)).toEqual([1, 3]); // indices need not be sorted
    expect(topKByValue([0, 4, -1], [0, 1, 2], 5)).toEqual([0, 1, 2]);
    expect(topKByValue([0, 4, -1], [0, 1, 2], 0)).toEqual([]);
    expect(topKByValue([-0, 0, -3], [0, 1, 2], 1)).toEqual([0]); // −0 and +0 tie
  });
});

describe('kthLargest and topKMaskInto (the one top-k selection, histogram select)', () => {
  const sortRef = (v: Float64Array, k: number): number => (Float64Array.from(v).sort()[v.length - k] as number);
  /** The mask by a full sort: the k largest valid values, ties at the cut lowest index first. */
  const maskRef = (vals: number[], mask: number[], k: number): number[] => {
    const valid = mask.flatMap((m, i) => (m !== 0 ? [i] : []));
    const kk = Math.min(Math.max(0, k), valid.length);
    const chosen = [...valid].sort((a, b) => (vals[b] as number) - (vals[a] as number) || a - b).slice(0, kk);
    const out = new Array<number>(vals.length).fill(0);
    for (const i of chosen) out[i] = 1;
    return out;
  };
  it('agrees with a full sort on large arrays: spread values, few distinct values, clusters with outliers, huge ranges', () => {
    const rnd = (() => {
      let s = 12345;
      return (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    })();
    const cases: Float64Array[] = [
      Float64Array.from({ length: 50_000 }, () => rnd() * 10),
      Float64Array.from({ length: 50_000 }, () => Math.floor(rnd() * 7)),
      Float64Array.from({ length: 50_000 }, (_, i) => (i % 997 === 0 ? 1e6 * rnd() : 1 + rnd() * 1e-12)),
      Float64Array.from({ length: 20_000 }, (_, i) => (i % 2 ? 1e308 : -1e308) * rnd()),
      Float64Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : 5e-324)),
    ];
    for (const v of cases) {
      for (const k of [1, 2, 17, Math.floor(v.length / 5), v.length - 1, v.length]) expect(kthLargest(v, k)).toBe(sortRef(v, k));
    }
  });
  it('large inputs: the one-pass band select and the full select give the sort-based mask', () => {
    const rnd = (() => {
      let s = 987;
      return (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    })();
    const n = 90_000;
    const masks = {
      mostly: Array.from({ length: n }, () => (rnd() < 0.8 ? 1 : 0)),
      rows: Array.from({ length: n }, (_, i) => (i % 1000 < 300 + ((i / 1000) | 0) * 7 ? 1 : 0)),
      few: Array.from({ length: n }, () => (rnd() < 0.002 ? 1 : 0)), // < 256 valid in the sample: the full select
    };
    const cases: [string, number[], keyof typeof masks, number | ((m: number) => number), boolean][] = [
      ['continuous', Array.from({ length: n }, () => rnd() * 5), 'mostly', (m) => Math.ceil(0.2 * m), true],
      ['quantised: ties at the cut', Array.from({ length: n }, () => Math.floor(rnd() * 1000) / 100), 'rows', (m) => Math.ceil(0.2 * m), true],
      ['signed zeros tied at the cut', Array.from({ length: n }, (_, i) => (i % 50 === 0 ? (i % 100 === 0 ? -0 : 0) : (rnd() - 0.5) * 1e-300)), 'mostly', (m) => Math.floor(m / 2), true],
      ['a few large groups of equal values', Array.from({ length: n }, (_, i) => [-0, 0, -2.5, 1e-300, -1e-300, 3e300, rnd()][i % 7] as number), 'mostly', 20_000, false],
      ['sorted', Array.from({ length: n }, (_, i) => i), 'mostly', 5_000, true],
      ['reverse sorted, k near m', Array.from({ length: n }, (_, i) => -i), 'mostly', (m) => m - 3, true],
      ['k = 0', Array.from({ length: n }, () => rnd()), 'mostly', 0, true],
      ['k ≥ m', Array.from({ length: n }, () => rnd()), 'mostly', n, true],
      ['a huge tie group at the cut', Array.from({ length: n }, () => (rnd() < 0.6 ? 2 : rnd() * 4)), 'mostly', (m) => Math.ceil(0.3 * m), false],
      ['few valid', Array.from({ length: n }, () => rnd()), 'few', 30, false],
    ];
    for (const [what, vals, mk, k, banded] of cases) {
      const mask = masks[mk];
      const valid = mask.reduce<number>((a, b) => a + b, 0);
      const ref = maskRef(vals, mask, typeof k === 'function' ? k(valid) : k);
      const out = new Float64Array(n).fill(7);
      topKMaskInto(vals, mask, n, k, out);
      expect(Array.from(out), what).toEqual(ref);
      const direct = new Float64Array(n).fill(7);
      expect(bandSelect(vals, mask, n, k, direct), `${what}: band path`).toBe(banded);
      if (banded) expect(Array.from(direct), what).toEqual(ref);
    }
  });
  it('topKMaskInto matches the sort-based mask (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ v: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })), m: fc.constantFrom(0, 1, 1) }), { maxLength: 3000 }),
        fc.integer({ min: -2, max: 3100 }),
        (rows, k) => {
          const vals = rows.map((r) => r.v);
          const mask = rows.map((r) => r.m);
          const out = new Float64Array(vals.length).fill(7);
          topKMaskInto(vals, mask, vals.length, k, out);
          expect(Array.from(out)).toEqual(maskRef(vals, mask, k));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('fromVerlConfig on a verl run script', () => {
  const batch: PolicyLossBatch = { ...spec13, entropy: [[1, 2, 3, 4], [5, 6, 7, 8]] };
  it('dotted overrides select the mode and its settings', () => {
    const cfg = fromVerlConfig([
      'actor_rollout_ref.actor.policy_loss.loss_mode=gspo',
      'actor_rollout_ref.actor.clip_ratio_low=0.0003',
      'actor_rollout_ref.actor.clip_ratio_high=0.0004',
      'actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean',
      'trainer.total_epochs=3',
    ]);
    expect(cfg.lossMode).toBe('gspo');
    expect(cfg.ignoredKeys).toEqual(['trainer.total_epochs']);
    const { lossMode, ignoredKeys: _i, ...config } = cfg;
    expect(policyLoss(lossMode, batch, config)).toEqual(gspoLoss(batch));
  });
  it('a shell line with continuations, the seed’s DAPO (eighty-twenty) and the cov losses', () => {
    const cfg = fromVerlConfig(
      'actor_rollout_ref.actor.policy_loss.loss_mode=eighty-twenty \\\n actor_rollout_ref.actor.clip_ratio_low=0.2 \\\n actor_rollout_ref.actor.clip_ratio_high=0.28 actor_rollout_ref.actor.entropy_top_ratio=0.5 actor_rollout_ref.actor.clip_ratio_c=10',
    );
    expect(cfg).toMatchObject({ lossMode: 'eighty-twenty', clipRatioLow: 0.2, clipRatioHigh: 0.28, entropyTopRatio: 0.5, clipRatioC: 10 });
    const cov = fromVerlConfig({ 'actor_rollout_ref.actor.policy_loss.kl_cov_ratio': 0.002, 'actor_rollout_ref.actor.policy_loss.ppo_kl_coef': 1, 'actor_rollout_ref.actor.policy_loss.clip_cov_ub': 4 });
    expect(cov).toMatchObject({ lossMode: 'vanilla', klCovRatio: 0.002, ppoKlCoef: 1, clipCovUb: 4 });
    const sapo = fromVerlConfig({ actor_rollout_ref: { actor: { tau_pos: 1, tau_neg: 1.05, policy_loss: { loss_mode: 'sapo' } } } });
    expect(sapo).toMatchObject({ lossMode: 'sapo', tauPos: 1, tauNeg: 1.05 });
  });
  it('invalid values fail at the boundary with the key named', () => {
    expect(() => fromVerlConfig(['actor_rollout_ref.actor.clip_ratio_c=1'])).toThrow(expect.objectContaining({ field: 'clipRatioC' }));
    expect(() => fromVerlConfig(['actor_rollout_ref.actor.loss_agg_mode=token-sum'])).toThrow(UnknownModeError);
  });
});
