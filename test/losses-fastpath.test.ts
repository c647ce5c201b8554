/**
 * The CPU path's speed work must not change a single bit: Float32 inputs read in place, the fused validation, the
 * scratch arrays and `gradInto` are checked here against the plain float64 route (nested / Float64Array inputs,
 * fresh gradients).
 */
import { describe, expect, it } from 'vitest';
import {
  type PolicyLossBatch,
  type PolicyLossResult,
  ShapeError,
  ValueError,
  aggLoss,
  policyLoss,
  registerPolicyLoss,
  releaseScratch,
  unregisterPolicyLoss,
} from '../src/index.js';
import { AGG_MODES, MODES, randomBatch, rngOf } from './losses-helpers.js';

const CFG = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3 };

/** A random batch as flat arrays of the given kind (float32-representable values, so both kinds hold the same numbers). */
function flatBatch(seed: number, kind: 'f32' | 'f64', B = 5, T = 7, withWeights = true): PolicyLossBatch {
  const raw = randomBatch(rngOf(seed), { B, T, withWeights, emptyRowProb: 0.2 });
  const flat = (m: number[][]): Float32Array | Float64Array => {
    const f = Float32Array.from(m.flat());
    return kind === 'f32' ? f : Float64Array.from(f);
  };
  return {
    oldLogProbs: flat(raw.olp),
    logProbs: flat(raw.lp),
    advantages: flat(raw.adv),
    responseMask: flat(raw.mask),
    rolloutIsWeights: raw.w ? flat(raw.w) : null,
    entropy: flat(raw.ent),
    shape: [B, T],
  };
}

/** Bit-for-bit equality of two results (loss, every gradient entry, every metric). */
function expectSameBits(a: PolicyLossResult, b: PolicyLossResult): void {
  expect(Object.is(a.loss, b.loss)).toBe(true);
  expect(a.grad.length).toBe(b.grad.length);
  for (let k = 0; k < a.grad.length; k++) expect(Object.is(a.grad[k], b.grad[k])).toBe(true);
  expect(a.metrics).toEqual(b.metrics);
}

describe('Float32 inputs, scratch arrays and gradInto', () => {
  it('Float32Array inputs give the same bits as their float64 widening, for every mode and aggregation', () => {
    for (const mode of [...MODES, 'bypass_mode']) {
      for (const lossAggMode of AGG_MODES) {
        const cfg = { ...CFG, lossAggMode };
        expectSameBits(policyLoss(mode, flatBatch(3, 'f32'), cfg), policyLoss(mode, flatBatch(3, 'f64'), cfg));
      }
    }
  });

  it('gradInto is the returned grad, overwritten in full (zeros at masked positions), equal to a fresh gradient', () => {
    for (const mode of [...MODES, 'bypass_mode']) {
      const batch = flatBatch(11, 'f32');
      const into = new Float64Array(35).fill(Number.NaN);
      const fresh = policyLoss(mode, batch, CFG);
      const r = policyLoss(mode, batch, CFG, { gradInto: into });
      expect(r.grad).toBe(into);
      expectSameBits(r, fresh);
    }
  });

  it('gradInto works with a user strategy that returns its own array', () => {
    registerPolicyLoss('test-fastpath-own', (b) => ({ loss: 1, grad: new Float64Array(b.B * b.T).fill(2), metrics: {} }));
    try {
      const into = new Float64Array(35);
      const r = policyLoss('test-fastpath-own', flatBatch(1, 'f64'), {}, { gradInto: into });
      expect(r.grad).toBe(into);
      expect(Array.from(into)).toEqual(new Array(35).fill(2));
    } finally {
      unregisterPolicyLoss('test-fastpath-own');
    }
  });

  it('a gradInto of the wrong length is a ShapeError naming gradInto', () => {
    expect(() => policyLoss('vanilla', flatBatch(1, 'f32'), CFG, { gradInto: new Float64Array(34) })).toThrow(
      expect.objectContaining({ field: 'gradInto' }),
    );
    expect(() => policyLoss('vanilla', flatBatch(1, 'f32'), CFG, { gradInto: new Float64Array(34) })).toThrow(ShapeError);
    const b64 = flatBatch(1, 'f64');
    expect(() => policyLoss('vanilla', b64, CFG, { gradInto: b64.logProbs as Float64Array })).toThrow('gradInto: must not be one of the batch arrays');
  });

  it('results never share memory with a later call (scratch arrays stay inside)', () => {
    for (const mode of MODES) {
      const first = policyLoss(mode, flatBatch(21, 'f32'), CFG);
      const copy = { loss: first.loss, grad: Float64Array.from(first.grad), metrics: { ...first.metrics } };
      policyLoss(mode, flatBatch(22, 'f32', 9, 13), CFG); // larger: the scratch arrays grow
      policyLoss(mode, flatBatch(23, 'f32'), CFG);
      expectSameBits(first, copy);
    }
    releaseScratch();
    expectSameBits(policyLoss('vanilla', flatBatch(21, 'f32'), CFG), policyLoss('vanilla', flatBatch(21, 'f64'), CFG));
  });

  it('aggLoss with gradInto returns that array, equal to a fresh gradient', () => {
    const mask = Float32Array.from([1, 1, 0, 1, 0, 0]);
    const lossMat = Float32Array.from([0.5, -1, 9, 2, 9, 9]);
    const into = new Float64Array(6).fill(Number.NaN);
    for (const mode of AGG_MODES) {
      const fresh = aggLoss(lossMat, mask, mode, undefined, [2, 3]);
      const r = aggLoss(lossMat, mask, mode, undefined, [2, 3], { gradInto: into });
      expect(r.grad).toBe(into);
      expect(r.loss).toBe(fresh.loss);
      expect(Array.from(r.grad)).toEqual(Array.from(fresh.grad));
    }
  });
});

describe('fused validation keeps every check and the order of errors', () => {
  const base = (): PolicyLossBatch => ({
    oldLogProbs: Float32Array.from([-1, -2, -1, -1]),
    logProbs: Float32Array.from([-1.1, -2, -1, -0.9]),
    advantages: Float32Array.from([1, 1, -1, -1]),
    responseMask: Float32Array.from([1, 1, 1, 0]),
    shape: [2, 2],
  });
  const run = (over: Partial<PolicyLossBatch>): PolicyLossResult => policyLoss('vanilla', { ...base(), ...over }, CFG);

  it('a non-0/1 mask is reported before a non-finite field', () => {
    expect(() => run({ responseMask: Float32Array.from([1, 0.5, 1, 0]), logProbs: Float32Array.from([Number.NaN, -2, -1, -1]) })).toThrow(
      'responseMask: a mask must be 0/1, got 0.5 at [0, 1]',
    );
  });

  it('fields are checked in order, shape before finiteness of the same field', () => {
    expect(() => run({ oldLogProbs: Float32Array.from([-1, Number.POSITIVE_INFINITY, -1, -1]), logProbs: new Float32Array(3) })).toThrow(
      'oldLogProbs: non-finite value Infinity at valid position [0, 1]',
    );
    expect(() => run({ logProbs: new Float32Array(3) })).toThrow(ShapeError);
    expect(() => run({ advantages: Float32Array.from([1, 1, Number.NaN, 1]) })).toThrow('advantages: non-finite value NaN at valid position [1, 0]');
    expect(() => run({ entropy: Float32Array.from([1, 1, Number.NaN, 1]) })).toThrow(ValueError);
    expect(() => run({ rolloutIsWeights: Float32Array.from([1, Number.NaN, 1, 1]) })).toThrow('rolloutIsWeights: non-finite value NaN at valid position [0, 1]');
  });

  it('non-finite values at masked positions are accepted', () => {
    const r = run({ logProbs: Float32Array.from([-1.1, -2, -1, Number.NaN]), advantages: Float32Array.from([1, 1, -1, Number.NaN]) });
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(r.grad[3]).toBe(0);
  });
});
