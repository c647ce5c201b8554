import { describe, expect, it } from 'vitest';
import { actorLoss, aggLoss, computeEntropyLoss, entropyFromLogits, klPenalty, policyLoss, ShapeError } from '../src/index.js';
import type { ActorLossConfig } from '../src/index.js';

// SPEC.md §13 worked example (vanilla, DAPO clip-higher), plus reference log-probs and logits.
const olp = [[-1, -2, -0.5, -3], [-1, -1, -1, -1]];
const lp = [[-0.5, -2.5, -0.5, -0.5], [-1.2, -0.9, -1, 0]];
const adv = [[1, 1, 1, 1], [-1, -1, -1, -1]];
const mask = [[1, 1, 1, 0], [1, 1, 1, 1]];
const ref = [[-0.7, -2.2, -0.4, -9], [-1.1, -1.3, -0.6, -0.2]];
const logits = [
  [[0.1, 1.2, -0.3], [2, 0, -1], [0.5, 0.5, 0.5], [9, -9, 0]],
  [[1, 2, 3], [-1, 0.2, 0.3], [0, 0, 4], [0.7, -0.7, 0.1]],
];
const base: ActorLossConfig = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3 };

describe('actorLoss', () => {
  it('with no entropy bonus and no KL loss it is the policy loss (SPEC §13: 0.393665)', () => {
    const r = actorLoss('vanilla', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask }, base);
    const p = policyLoss('vanilla', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask }, base);
    expect(r.loss).toBe(p.loss);
    expect(r.loss).toBeCloseTo(0.393665, 6);
    expect(Array.from(r.grad)).toEqual(Array.from(p.grad));
    expect(r.entropyLoss).toBeNull();
    expect(r.klLoss).toBeNull();
    expect(r.metrics['actor/pg_loss']).toBe(p.loss);
  });

  for (const mode of ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'] as const) {
    it(`total = pg − c·agg(H) + β·agg(kl) with ${mode}`, () => {
      const cfg: ActorLossConfig = { ...base, lossAggMode: mode, entropyCoeff: 0.01, useKlLoss: true, klLossCoef: 0.05, klLossType: 'low_var_kl' };
      const r = actorLoss('vanilla', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, refLogProbs: ref, logits }, cfg);
      const pg = policyLoss('vanilla', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask }, cfg);
      const h = computeEntropyLoss(logits, mask, mode);
      const kl = klPenalty(lp, ref, 'low_var_kl');
      const klAgg = aggLoss(kl.kld, mask, mode, undefined, [2, 4]);
      expect(r.pgLoss).toBe(pg.loss);
      expect(r.entropyLoss).toBeCloseTo(h.loss, 14);
      expect(r.klLoss).toBeCloseTo(klAgg.loss, 14);
      expect(r.loss).toBeCloseTo(pg.loss - 0.01 * h.loss + 0.05 * klAgg.loss, 14);
      expect(r.metrics['actor/entropy']).toBeCloseTo(h.loss, 14);
      expect(r.metrics['actor/kl_loss']).toBeCloseTo(klAgg.loss, 14);
      expect(r.metrics['actor/kl_coef']).toBe(0.05);
      // gradients: d/dlp = pg grad + β·agg grad·k3', d/dlogits = −c·d agg(H)/d logits
      for (let k = 0; k < 8; k++) {
        expect(r.grad[k]).toBeCloseTo((pg.grad[k] as number) + 0.05 * (klAgg.grad[k] as number) * (kl.gradLogProbs[k] as number), 14);
      }
      const gl = h.gradLogits as Float64Array;
      const rl = r.gradLogits as Float64Array;
      for (let k = 0; k < gl.length; k++) expect(rl[k]).toBeCloseTo(-0.01 * (gl[k] as number), 15);
      for (let k = 0; k < 8; k++) expect((r.gradEntropy as Float64Array)[k]).toBeCloseTo(-0.01 * (aggLoss(h.entropy, mask, mode, undefined, [2, 4]).grad[k] as number), 15);
    });
  }

  it('gradient w.r.t. logProbs matches finite differences of the total', () => {
    const cfg: ActorLossConfig = { ...base, entropyCoeff: 0.02, useKlLoss: true, klLossCoef: 0.1, klLossType: 'k2' };
    const entropy = entropyFromLogits(logits).entropy;
    const at = (x: number[][]) =>
      actorLoss('vanilla', { oldLogProbs: olp, logProbs: x, advantages: adv, responseMask: mask, refLogProbs: ref, entropy }, cfg);
    const r = at(lp);
    const h = 1e-7;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 4; j++) {
        const up = lp.map((row) => row.slice());
        const dn = lp.map((row) => row.slice());
        (up[i] as number[])[j] += h;
        (dn[i] as number[])[j] -= h;
        const fd = (at(up).loss - at(dn).loss) / (2 * h);
        expect(r.grad[i * 4 + j]).toBeCloseTo(fd, 6);
      }
    }
  });

  it('entropy given directly: gradEntropy = −c·d agg / dH; calculateEntropy reports without a bonus', () => {
    const entropy = entropyFromLogits(logits).entropy;
    const r = actorLoss('vanilla', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, entropy, shape: [2, 4] }, { ...base, calculateEntropy: true });
    expect(r.gradEntropy).toBeNull();
    expect(r.entropyLoss).toBeCloseTo(computeEntropyLoss(logits, mask).loss, 14);
    expect(r.loss).toBe(r.pgLoss);
  });

  it('typed errors: KL loss without refLogProbs, entropy bonus without entropy or logits', () => {
    const b = { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask };
    expect(() => actorLoss('vanilla', b, { useKlLoss: true })).toThrow(ShapeError);
    expect(() => actorLoss('vanilla', b, { entropyCoeff: 0.01 })).toThrow(ShapeError);
  });
});

describe('actorLoss with eighty-twenty', () => {
  it('entropy computed from logits reaches the policy loss (selection) and the bonus', () => {
    const cfg: ActorLossConfig = { ...base, entropyTopRatio: 0.5, entropyCoeff: 0.01 };
    const entropy = entropyFromLogits(logits).entropy;
    const fromLogits = actorLoss('eighty-twenty', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, logits }, cfg);
    const fromEntropy = actorLoss('eighty-twenty', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, entropy, shape: [2, 4] }, cfg);
    const pg = policyLoss('eighty-twenty', { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, entropy, shape: [2, 4] }, cfg);
    expect(fromLogits.pgLoss).toBe(pg.loss);
    expect(fromLogits.loss).toBe(fromEntropy.loss);
    expect(Array.from(fromLogits.grad)).toEqual(Array.from(fromEntropy.grad));
  });
});
