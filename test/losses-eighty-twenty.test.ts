/**
 * `eighty-twenty` (SPEC.md §11) on hand-computed cases, and the seed's dapoLoss / gspoLoss / sapoLoss.
 *
 * The batch: olp = lp except one clipped token, so ℓ = −A (∂ℓ/∂lp = −A) at every other valid token.
 *   A       = [[1, 2, 3], [4, 5, 9]]        mask = [[1, 1, 1], [1, 1, 0]]  (N = 5; 9 is padding)
 *   entropy = [[0.5, 2, 1], [2, 0.1, 99]]   (2 ties at flat indices 1 and 3; 99 is padding, never selected)
 *   token 4 (A = 5) has d = 0.5: r = e^0.5 > 1.28, so it is clipped (ℓ = −5·1.28, gradient 0).
 * Order by entropy, ties lowest index first: 1, 3, 2, 0, 4.
 */
import { describe, expect, it } from 'vitest';
import { dapoLoss, eightyTwentyCount, gspoLoss, type PolicyLossBatch, policyLoss, sapoLoss, ShapeError } from '../src/index.js';

const lp = [[-1, -2, -0.5], [-1.5, -0.5, -3]];
const olp = [[-1, -2, -0.5], [-1.5, -1, -1]];
const batch: PolicyLossBatch = {
  oldLogProbs: olp,
  logProbs: lp,
  advantages: [[1, 2, 3], [4, 5, 9]],
  responseMask: [[1, 1, 1], [1, 1, 0]],
  entropy: [[0.5, 2, 1], [2, 0.1, 99]],
};
const cfg = { clipRatioLow: 0.2, clipRatioHigh: 0.28 };
const clipfrac = 1 / (5 + 1e-8);

function run(entropyTopRatio: number, extra: object = {}) {
  return policyLoss('eighty-twenty', batch, { ...cfg, entropyTopRatio, ...extra });
}

describe('eighty-twenty: hand-computed selections', () => {
  it('ratio 0.2 → k = 1: the tie at entropy 2 goes to the lower flat index (1)', () => {
    const r = run(0.2);
    expect(r.loss).toBe(-2);
    expect([...r.grad]).toEqual([0, -2, 0, 0, 0, 0]);
  });
  it('ratio 0 → k = max(1, 0) = 1, same as 0.2 here', () => {
    expect(run(0).loss).toBe(-2);
  });
  it('ratio 0.4 → k = 2: indices 1 and 3; token-mean divides by the selected count', () => {
    const r = run(0.4);
    expect(r.loss).toBe(-3);
    expect([...r.grad]).toEqual([0, -1, 0, -2, 0, 0]);
  });
  it('ratio 0.5 → k = ⌈2.5⌉ = 3: indices 1, 3, 2', () => {
    const r = run(0.5);
    expect(r.loss).toBe(-9 / 3);
    expect([...r.grad]).toEqual([0, -2 / 3, -1, -4 / 3, 0, 0]);
  });
  it('ratio 1 → every valid token: equals vanilla, the clipped token included (gradient 0)', () => {
    const r = run(1);
    expect(r.loss).toBeCloseTo(-(1 + 2 + 3 + 4 + 5 * 1.28) / 5, 15);
    const v = policyLoss('vanilla', batch, cfg);
    expect(r.loss).toBe(v.loss);
    expect([...r.grad]).toEqual([...v.grad]);
    expect(r.grad[4]).toBe(0);
  });
  it('seq-mean-token-mean aggregates over the selected tokens of each row', () => {
    const r = run(0.4, { lossAggMode: 'seq-mean-token-mean' });
    expect(r.loss).toBeCloseTo((-2 / (1 + 1e-8) - 4 / (1 + 1e-8)) / 2, 15);
  });
  it('metrics always use the full response mask', () => {
    for (const ratio of [0, 0.2, 0.5, 1]) {
      const m = run(ratio).metrics;
      expect(m['actor/pg_clipfrac']).toBe(clipfrac);
      expect(m['actor/ppo_kl']).toBeCloseTo(-0.5 / 5, 9);
      expect(m['actor/pg_clipfrac_lower']).toBe(0);
    }
  });
  it('a single valid token: k = 1 selects it whatever the ratio; no valid token: loss 0, zero gradient', () => {
    const one: PolicyLossBatch = { ...batch, responseMask: [[0, 0, 1], [0, 0, 0]] };
    for (const ratio of [0, 0.2, 1]) {
      const r = policyLoss('eighty-twenty', one, { entropyTopRatio: ratio });
      expect(r.loss).toBe(-3);
      expect([...r.grad]).toEqual([0, 0, -3, 0, 0, 0]);
    }
    const none = policyLoss('eighty-twenty', { ...batch, responseMask: [[0, 0, 0], [0, 0, 0]] }, { entropyTopRatio: 0.2 });
    expect(none.loss).toBe(0);
    expect(none.grad.every((g) => g === 0)).toBe(true);
  });
  it('two valid tokens with ratio 0.2: ⌈0.4⌉ = 1 (more than ρ·N)', () => {
    const two: PolicyLossBatch = { ...batch, responseMask: [[1, 0, 0], [1, 0, 0]] };
    const r = policyLoss('eighty-twenty', two, { entropyTopRatio: 0.2 });
    expect([...r.grad]).toEqual([0, 0, 0, -4, 0, 0]); // entropy 2 (index 3) beats 0.5 (index 0)
  });
  it('all entropies equal: the first k valid tokens in row-major order', () => {
    const r = policyLoss('eighty-twenty', { ...batch, entropy: [[1, 1, 1], [1, 1, 1]] }, { ...cfg, entropyTopRatio: 0.4 });
    expect([...r.grad]).toEqual([-0.5, -1, 0, 0, 0, 0]);
  });
  it('k = max(1, ⌈ρ·N⌉) of the real product, capped at N', () => {
    expect(eightyTwentyCount(15, 0.2)).toBe(3); // 0.2·15 = 3.0000000000000004 in float64
    expect(eightyTwentyCount(5, 0.2)).toBe(1);
    expect(eightyTwentyCount(10, 0.28)).toBe(3); // 2.8000000000000003
    expect(eightyTwentyCount(25, 0.28)).toBe(7); // 7.000000000000001
    expect(eightyTwentyCount(3, 0.5)).toBe(2);
    expect(eightyTwentyCount(7, 0)).toBe(1);
    expect(eightyTwentyCount(7, 1)).toBe(7);
    expect(eightyTwentyCount(0, 0.2)).toBe(0);
    expect(eightyTwentyCount(100000, 0.2)).toBe(20000);
    expect(eightyTwentyCount(100001, 0.2)).toBe(20001); // 20000.2 → 20001 (the fork's int(N·ρ + 0.9999) also gives 20001)
  });
  it('missing entropy is a typed error naming the field', () => {
    const { entropy: _e, ...noEntropy } = batch;
    expect(() => policyLoss('eighty-twenty', noEntropy)).toThrow(ShapeError);
    expect(() => policyLoss('eighty-twenty', noEntropy)).toThrow(expect.objectContaining({ code: 'E_SHAPE', field: 'entropy' }));
  });
  it('entropy is validated like every other input', () => {
    expect(() => policyLoss('eighty-twenty', { ...batch, entropy: [[1, Number.NaN, 1], [1, 1, 1]] })).toThrow(expect.objectContaining({ code: 'E_VALUE', field: 'entropy' }));
    expect(() => policyLoss('eighty-twenty', { ...batch, entropy: [[1, 1], [1, 1]] })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});

describe('the seed strategies', () => {
  it('dapoLoss = eighty-twenty with 0.2/0.28, token-mean, top 20%', () => {
    const r = dapoLoss(batch);
    expect(r).toEqual(policyLoss('eighty-twenty', batch, { clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'token-mean', entropyTopRatio: 0.2 }));
    expect(r.loss).toBe(-2);
  });
  it('dapoLoss: caller config overrides the seed (a clipRatio replaces both seed bounds)', () => {
    expect(dapoLoss(batch, { entropyTopRatio: 1 }).loss).toBe(policyLoss('vanilla', batch, cfg).loss);
    const wide = dapoLoss(batch, { entropyTopRatio: 1, clipRatio: 1 });
    expect(wide.loss).toBe(policyLoss('eighty-twenty', batch, { clipRatio: 1, entropyTopRatio: 1 }).loss);
    expect(wide.metrics['actor/pg_clipfrac']).toBe(0);
  });
  it('dapoLoss without entropy: a typed error that points to the alternatives', () => {
    const { entropy: _e, ...noEntropy } = batch;
    expect(() => dapoLoss(noEntropy)).toThrow(/batch\.entropy is required.*policyLoss\('vanilla'/);
    expect(() => dapoLoss(noEntropy)).toThrow(expect.objectContaining({ code: 'E_SHAPE', field: 'entropy' }));
  });
  it('gspoLoss = gspo with 3e-4/4e-4, seq-mean-token-mean (SPEC §13: d = 0.5 everywhere → −1.0004, clipfrac 1, grad 0)', () => {
    const b: PolicyLossBatch = { oldLogProbs: [[0, 0, 0]], logProbs: [[0.5, 0.5, 0.5]], advantages: [[1, 1, 1]], responseMask: [[1, 1, 1]] };
    const r = gspoLoss(b);
    expect(r.loss).toBeCloseTo((-1.0004 * 3) / (3 + 1e-8), 14); // the per-sequence 1e-8 of seq-mean-token-mean
    expect(r.metrics['actor/pg_clipfrac']).toBe(3 / (3 + 1e-8));
    expect(r.grad.every((g) => g === 0)).toBe(true); // −0 like torch
    expect(r).toEqual(policyLoss('gspo', b, { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 }));
  });
  it('sapoLoss = sapo with τ 1.0/1.05 and token-mean (verl would use seq-mean-token-mean)', () => {
    const r = sapoLoss(batch);
    expect(r).toEqual(policyLoss('sapo', batch, { tauPos: 1, tauNeg: 1.05, lossAggMode: 'token-mean' }));
    expect(r.loss).not.toBe(policyLoss('sapo', batch).loss);
    // at r = 1 the SAPO gradient is exactly −A, the value −2A/τ
    const one: PolicyLossBatch = { oldLogProbs: [[-1, -1]], logProbs: [[-1, -1]], advantages: [[1, -1]], responseMask: [[1, 1]] };
    const s = sapoLoss(one);
    expect([...s.grad]).toEqual([-0.5, 0.5]);
    expect(s.loss).toBeCloseTo((-2 + 2 / 1.05) / 2, 15);
    expect(sapoLoss(one, { lossAggMode: 'seq-mean-token-sum' }).loss).toBeCloseTo(-2 + 2 / 1.05, 15);
  });
});
