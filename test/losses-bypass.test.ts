/**
 * bypass_mode and the rollout correction (verl's rollout_corr_helper.py): hand-computed IS weights, rejection masks
 * and thresholds, verl's float32 quirks, masked positions, typed errors. The 216 fixture cases run in
 * policy-loss.fixtures.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  ROLLOUT_RS_OPTIONS,
  UnknownModeError,
  ValueError,
  computeOffPolicyMetrics,
  computeRolloutCorrection,
  computeRolloutIsWeights,
  computeRolloutRejectionMask,
  parseRolloutRs,
  policyLoss,
  type Matrix,
  type PolicyLossBatch,
  type PolicyLossConfig,
} from '../src/index.js';

const EPS = 1e-8;

function mat(rows: number[][]): Matrix {
  const B = rows.length;
  const T = rows[0]!.length;
  return { data: Float64Array.from(rows.flat()), rows: B, cols: T };
}

function close(got: number, exp: number, rel = 1e-14): void {
  expect(Math.abs(got - exp)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(exp)));
}

function closeArr(got: ArrayLike<number>, exp: ArrayLike<number>, rel = 1e-14): void {
  expect(got.length).toBe(exp.length);
  for (let k = 0; k < exp.length; k++) close(got[k]!, exp[k]!, rel);
}

describe('computeRolloutIsWeights', () => {
  it('token level: per-token ratio, truncated at the threshold, 0 at padding; metrics before truncation', () => {
    const lr = mat([[Math.log(1.5), Math.log(3), -Math.log(4), 3.7]]);
    const m = mat([[1, 1, 1, 0]]);
    const { weights, metrics } = computeRolloutIsWeights(lr, m, { rolloutIs: 'token', rolloutIsThreshold: 2 });
    closeArr(weights, [1.5, 2, 0.25, 0]);
    close(metrics.rollout_is_mean!, (1.5 + 3 + 0.25) / (3 + EPS));
    close(metrics.rollout_is_max!, 3);
    close(metrics.rollout_is_min!, 0.25);
    close(metrics.rollout_is_ratio_fraction_high!, 1 / (3 + EPS));
    close(metrics.rollout_is_ratio_fraction_low!, 1 / (3 + EPS));
    // std / ESS on weights clamped to [1/thr, thr] = [1.5, 2, 0.5]
    const c = [1.5, 2, 0.5];
    const mu = (1.5 + 2 + 0.5) / (3 + EPS);
    const var_ = (1.5 ** 2 + 4 + 0.25) / (3 + EPS) - mu * mu;
    close(metrics.rollout_is_std!, Math.sqrt(var_), 1e-12);
    const ess = 1 / (c.map((x) => (x / (mu + EPS)) ** 2).reduce((a, b) => a + b) / (3 + EPS));
    close(metrics.rollout_is_eff_sample_size!, ess, 1e-12);
    close(metrics.rollout_is_seq_mean!, (1.5 + 3 + 0.25) / (3 + EPS));
    expect(metrics.rollout_is_seq_std).toBe(0); // one sequence
    expect(metrics).not.toHaveProperty('rollout_is_batch_norm_factor');
  });

  it('sequence level: exp of the masked row sum on every valid token of the row', () => {
    const lr = mat([
      [0.1, 0.2, 9.0],
      [0.5, 0.5, 0.5],
    ]);
    const m = mat([
      [1, 1, 0],
      [1, 1, 1],
    ]);
    const { weights, metrics } = computeRolloutIsWeights(lr, m, { rolloutIs: 'sequence', rolloutIsThreshold: 2 });
    const w0 = Math.exp(0.1 + 0.2);
    closeArr(weights, [w0, w0, 0, 2, 2, 2]);
    close(metrics.rollout_is_max!, Math.exp(1.5));
    close(metrics.rollout_is_min!, w0);
    // per-sequence means divide by L_i + 1e-8, over all B rows
    const s0 = (2 * w0) / (2 + EPS);
    const s1 = (3 * Math.exp(1.5)) / (3 + EPS);
    close(metrics.rollout_is_seq_mean!, (s0 + s1) / 2);
    close(metrics.rollout_is_seq_max!, s1);
    close(metrics.rollout_is_seq_max_deviation!, s1 - 1);
    expect(metrics.rollout_is_seq_fraction_high).toBe(0.5);
    expect(metrics.rollout_is_ratio_fraction_high).toBe(0.5);
  });

  it('clamps log-ratios at ±20 before exponentiating (sequence min stays unclamped, as in verl)', () => {
    const tok = computeRolloutIsWeights(mat([[25, -25]]), mat([[1, 1]]), { rolloutIs: 'token', rolloutIsThreshold: 1e12 });
    closeArr(tok.weights, [Math.exp(20), Math.exp(-20)]);
    close(tok.metrics.rollout_is_max!, Math.exp(20));
    const seq = computeRolloutIsWeights(
      mat([
        [15, 15],
        [-15, -15],
      ]),
      mat([
        [1, 1],
        [1, 1],
      ]),
      { rolloutIs: 'sequence', rolloutIsThreshold: 1e12 },
    );
    closeArr(seq.weights, [Math.exp(20), Math.exp(20), Math.exp(-20), Math.exp(-20)]);
    close(seq.metrics.rollout_is_max!, Math.exp(20));
    close(seq.metrics.rollout_is_min!, Math.exp(-30));
  });

  it('batch normalisation divides by the mean over tokens (token) or non-empty sequences (sequence)', () => {
    const lr = mat([
      [Math.log(1.5), Math.log(3)],
      [-Math.log(4), 0],
    ]);
    const m = mat([
      [1, 1],
      [1, 0],
    ]);
    const tok = computeRolloutIsWeights(lr, m, { rolloutIs: 'token', rolloutIsThreshold: 2, rolloutIsBatchNormalize: true });
    const mt = (1.5 + 2 + 0.25) / (3 + EPS);
    closeArr(tok.weights, [1.5 / mt, 2 / mt, 0.25 / mt, 0]);
    close(tok.metrics.rollout_is_batch_norm_factor!, mt);

    const lr2 = mat([
      [0.1, 0.2],
      [-0.3, 5],
      [0, 0],
    ]);
    const m2 = mat([
      [1, 1],
      [1, 0],
      [0, 0],
    ]);
    const seq = computeRolloutIsWeights(lr2, m2, { rolloutIs: 'sequence', rolloutIsThreshold: 2, rolloutIsBatchNormalize: true });
    const a = Math.exp(0.1 + 0.2);
    const b = Math.exp(-0.3);
    const ms = ((2 * a) / (2 + EPS) + b / (1 + EPS)) / 2; // the empty third row does not count
    closeArr(seq.weights, [a / ms, a / ms, b / ms, 0, 0, 0]);
    close(seq.metrics.rollout_is_batch_norm_factor!, ms);
  });

  it('reproduces verl float32 details: log(float32 threshold) and float32 fractions over sequences', () => {
    // a row sum between ln 2 (float64) and float32(ln 2) is NOT above verl's float32 log-threshold
    const between = (Math.LN2 + Math.fround(Math.LN2)) / 2;
    expect(between > Math.LN2).toBe(true);
    const lr = mat([[between], [5], [0]]);
    const m = mat([[1], [1], [1]]);
    const r = computeRolloutIsWeights(lr, m, { rolloutIs: 'sequence', rolloutIsThreshold: 2 });
    expect(r.metrics.rollout_is_ratio_fraction_high).toBe(Math.fround(1 / 3));
    expect(r.metrics.rollout_is_ratio_fraction_high).not.toBe(1 / 3);
  });

  it('rejects unknown levels and non-positive thresholds with typed errors', () => {
    const lr = mat([[0]]);
    const m = mat([[1]]);
    expect(() => computeRolloutIsWeights(lr, m, { rolloutIs: 'geometric' as 'token' })).toThrow(UnknownModeError);
    expect(() => computeRolloutIsWeights(lr, m, { rolloutIs: 'geometric' as 'token' })).toThrow(/valid: token, sequence/);
    expect(() => computeRolloutIsWeights(lr, m, { rolloutIs: 'token', rolloutIsThreshold: 0 })).toThrow(ConfigError);
    expect(() => computeRolloutIsWeights(lr, mat([[0]]), { rolloutIs: 'token' })).toThrow(ValueError);
  });
});

describe('computeRolloutRejectionMask', () => {
  const lr = mat([
    [Math.log(3), 0.1, -0.05],
    [-Math.log(3), 0.2, 7],
  ]);
  const m = mat([
    [1, 1, 1],
    [1, 1, 0],
  ]);

  it('token_k1 keeps log(lo) ≤ −lr ≤ log(hi) per token', () => {
    const r = computeRolloutRejectionMask(lr, m, 'token_k1', '0.5_2.0');
    expect(Array.from(r.mask)).toEqual([0, 1, 1, 0, 1, 0]);
    close(r.metrics.rollout_rs_masked_fraction!, 2 / (5 + EPS));
    expect(r.metrics.rollout_rs_seq_masked_fraction).toBe(1);
    close(r.metrics.rollout_rs_token_k1_mean!, (-Math.log(3) - 0.1 + 0.05 + Math.log(3) - 0.2) / (5 + EPS), 1e-13);
    close(r.metrics.rollout_rs_token_k1_fraction_low!, 1 / (5 + EPS));
    close(r.metrics.rollout_rs_token_k1_fraction_high!, 1 / (5 + EPS));
    expect(r.metrics).toHaveProperty('rollout_rs_token_k1_seq_fraction_low');
  });

  it('a single k1 threshold u means [1/u, u]; a number works like its string', () => {
    const a = computeRolloutRejectionMask(lr, m, 'token_k1', 2);
    const b = computeRolloutRejectionMask(lr, m, 'token_k1', '0.5_2');
    expect(Array.from(a.mask)).toEqual(Array.from(b.mask));
    expect(parseRolloutRs('token_k1', 4)).toEqual([{ option: 'token_k1', lower: 0.25, upper: 4 }]);
  });

  it('sequence options reject whole rows; seq_mean_k3 uses the masked row mean of e^lr − 1 − lr', () => {
    const k3 = (x: number): number => Math.exp(x) - 1 - x;
    const row0 = (k3(Math.log(3)) + k3(0.1) + k3(-0.05)) / (3 + EPS);
    const row1 = (k3(-Math.log(3)) + k3(0.2)) / (2 + EPS);
    expect(row0).toBeGreaterThan(0.25);
    expect(row1).toBeLessThan(0.25);
    const r = computeRolloutRejectionMask(lr, m, 'seq_mean_k3', 0.25);
    expect(Array.from(r.mask)).toEqual([0, 0, 0, 1, 1, 0]);
    close(r.metrics.rollout_rs_seq_mean_k3_seq_max!, row0, 1e-13);
    close(r.metrics.rollout_rs_seq_mean_k3_seq_min!, row1, 1e-13);
    expect(r.metrics.rollout_rs_seq_mean_k3_fraction_high).toBe(0.5);
    expect(r.metrics).not.toHaveProperty('rollout_rs_seq_mean_k3_seq_fraction_low');
  });

  it('chained options must all pass, with one threshold per option', () => {
    // seq_max_k2 ≤ 0.5 rejects row 0 (ln 3 → k2 = 0.603); token_k1 in [ln 0.5, ln 2] rejects [1][1] (k1 = −1)
    const lr2 = mat([
      [Math.log(3), 0.1, -0.05],
      [-0.3, 1.0, 7],
    ]);
    const r = computeRolloutRejectionMask(lr2, m, 'token_k1, seq_max_k2', '0.5_2.0,0.5');
    expect(Array.from(r.mask)).toEqual([0, 0, 0, 1, 0, 0]);
    close(r.metrics.rollout_rs_token_k1_masked_fraction!, 2 / (5 + EPS));
    close(r.metrics.rollout_rs_seq_max_k2_masked_fraction!, 3 / (5 + EPS));
    expect(r.metrics.rollout_rs_token_k1_seq_masked_fraction).toBe(1);
    expect(r.metrics.rollout_rs_seq_max_k2_seq_masked_fraction).toBe(0.5);
    close(r.metrics.rollout_rs_masked_fraction!, 4 / (5 + EPS));
    expect(r.metrics).toHaveProperty('rollout_rs_token_k1_masked_fraction');
    expect(r.metrics).toHaveProperty('rollout_rs_seq_max_k2_masked_fraction');
  });

  it('typed errors name the field and list the valid options', () => {
    expect(() => computeRolloutRejectionMask(lr, m, 'geometric', 2)).toThrow(UnknownModeError);
    let err: unknown = null;
    try {
      parseRolloutRs('token_k4', 2);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownModeError);
    expect((err as UnknownModeError).valid).toEqual(ROLLOUT_RS_OPTIONS);
    expect((err as UnknownModeError).field).toBe('rolloutCorrection.rolloutRs');
    expect((err as Error).message).toMatch(/rolloutCorrection\.rolloutRs.*token_k1, token_k2/);
    expect(() => parseRolloutRs('seq_mean_k3', null)).toThrow(ConfigError);
    expect(() => parseRolloutRs('seq_mean_k3', '0.1_0.2')).toThrow(/single upper bound/);
    expect(() => parseRolloutRs('token_k1,seq_sum_k2', '1,2,3')).toThrow(ConfigError);
    expect(() => parseRolloutRs('token_k1', '0_2')).toThrow(/positive/);
    expect(() => parseRolloutRs('token_k2', 'abc')).toThrow(/invalid numeric threshold/);
  });
});

describe('computeOffPolicyMetrics', () => {
  it('kl, k3 and perplexities on a hand-computed batch', () => {
    const lp = mat([[-1, -2, 9]]);
    const rlp = mat([[-1.5, -1.5, 0]]);
    const m = mat([[1, 1, 0]]);
    const r = computeOffPolicyMetrics(lp, rlp, m);
    close(r.kl!, (-0.5 + 0.5) / (2 + EPS));
    close(r.k3_kl!, (Math.exp(0.5) - 1.5 + Math.exp(-0.5) - 0.5) / (2 + EPS), 1e-13);
    close(r.training_ppl!, Math.exp(3 / (2 + EPS)));
    close(r.rollout_log_ppl!, 3 / (2 + EPS));
    close(r.chi2_seq!, 0);
  });
});

// --- bypass_mode through policyLoss ---------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomBatch(B: number, T: number, seed: number): PolicyLossBatch & { shape: [number, number] } {
  const r = rng(seed);
  const n = B * T;
  const olp = new Float64Array(n);
  const lp = new Float64Array(n);
  const adv = new Float64Array(n);
  const mask = new Float64Array(n);
  for (let i = 0; i < B; i++) {
    const L = 1 + Math.floor(r() * T);
    const a = r() * 2 - 1;
    for (let j = 0; j < T; j++) {
      const k = i * T + j;
      olp[k] = -r() * 3;
      lp[k] = olp[k]! + (r() - 0.5) * 0.8;
      adv[k] = a;
      mask[k] = j < L ? 1 : 0;
    }
  }
  return { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, shape: [B, T] };
}

const CONFIGS: Record<string, PolicyLossConfig> = {
  ppo_clip: { clipRatioLow: 0.2, clipRatioHigh: 0.28 },
  ppo_clip_rs: { rolloutCorrection: { rolloutRs: 'seq_mean_k3', rolloutRsThreshold: 0.01 } },
  reinforce_seq_is: { rolloutCorrection: { lossType: 'reinforce', rolloutIs: 'sequence' } },
  reinforce_token_bn_rs: {
    rolloutCorrection: { lossType: 'reinforce', rolloutIs: 'token', rolloutIsBatchNormalize: true, rolloutRs: 'token_k1', rolloutRsThreshold: '0.8_1.25' },
  },
};

describe('bypass_mode', () => {
  it.each(Object.keys(CONFIGS))('%s: values at masked positions never change anything', (name) => {
    const base = randomBatch(5, 9, 7);
    const poisoned = randomBatch(5, 9, 7);
    const r = rng(99);
    for (const f of ['oldLogProbs', 'logProbs', 'advantages'] as const) {
      const d = poisoned[f] as Float64Array;
      for (let k = 0; k < d.length; k++) if ((poisoned.responseMask as Float64Array)[k] === 0) d[k] = (r() - 0.5) * 60;
    }
    poisoned.rolloutIsWeights = Float64Array.from({ length: 45 }, () => r() * 9);
    const a = policyLoss('bypass_mode', base, CONFIGS[name]);
    const b = policyLoss('bypass_mode', poisoned, CONFIGS[name]);
    expect(b.loss).toBe(a.loss);
    expect(Array.from(b.grad)).toEqual(Array.from(a.grad));
    expect(b.metrics).toEqual(a.metrics);
  });

  it('ppo_clip without IS / RS is vanilla plus the rollout_corr diagnostics', () => {
    const batch = randomBatch(4, 6, 3);
    const cfg = { clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'seq-mean-token-mean' as const };
    const v = policyLoss('vanilla', batch, cfg);
    const by = policyLoss('bypass_mode', batch, cfg);
    expect(by.loss).toBe(v.loss);
    expect(Array.from(by.grad)).toEqual(Array.from(v.grad));
    for (const [k, x] of Object.entries(v.metrics)) expect(by.metrics[k]).toBe(x);
    expect(Object.keys(by.metrics).filter((k) => k.startsWith('rollout_corr/')).length).toBe(13);
  });

  it('reinforce: loss = token-mean of −A·lp·w with detached weights, gradient −A·w/N', () => {
    const batch = randomBatch(3, 5, 11);
    const res = policyLoss('bypass_mode', batch, CONFIGS.reinforce_seq_is);
    const corr = computeRolloutCorrection(
      { logProbs: batch.logProbs, rolloutLogProbs: batch.oldLogProbs, responseMask: batch.responseMask, shape: batch.shape },
      CONFIGS.reinforce_seq_is!.rolloutCorrection,
    );
    const lp = batch.logProbs as Float64Array;
    const adv = batch.advantages as Float64Array;
    const m = batch.responseMask as Float64Array;
    let s = 0;
    let n = 0;
    for (let k = 0; k < m.length; k++) if (m[k]) (s += -adv[k]! * lp[k]! * corr.weights![k]!), n++;
    close(res.loss, s / n, 1e-13);
    for (let k = 0; k < m.length; k++) close(res.grad[k]!, m[k] ? (-adv[k]! * corr.weights![k]!) / n : 0, 1e-13);
    close(res.metrics['actor/ppo_kl']!, corr.metrics['rollout_corr/kl']!, 1e-13); // both masked_mean(olp − lp)
    for (const [k, x] of Object.entries(corr.metrics)) expect(res.metrics[k]).toBe(x);
  });

  it('rejected tokens get no gradient and leave the aggregation', () => {
    const batch = randomBatch(6, 8, 5);
    const res = policyLoss('bypass_mode', batch, CONFIGS.ppo_clip_rs);
    const corr = computeRolloutCorrection(
      { logProbs: batch.logProbs, rolloutLogProbs: batch.oldLogProbs, responseMask: batch.responseMask, shape: batch.shape },
      CONFIGS.ppo_clip_rs!.rolloutCorrection,
    );
    const m = batch.responseMask as Float64Array;
    let rejected = 0;
    for (let k = 0; k < m.length; k++) {
      if (m[k] === 1 && corr.mask[k] === 0) {
        rejected++;
        expect(res.grad[k]).toBe(0);
      }
    }
    expect(rejected).toBeGreaterThan(0);
    const v = policyLoss('vanilla', { ...batch, responseMask: corr.mask }, {});
    expect(res.loss).toBe(v.loss);
  });

  it('an all-masked batch returns loss 0 and a zero gradient (verl raises)', () => {
    const batch = randomBatch(2, 3, 1);
    batch.responseMask = new Float64Array(6);
    for (const cfg of Object.values(CONFIGS)) {
      const res = policyLoss('bypass_mode', batch, cfg);
      expect(res.loss).toBe(0);
      expect(Array.from(res.grad)).toEqual([0, 0, 0, 0, 0, 0]);
    }
  });

  it('unknown rolloutIs / rolloutRs / lossType names are typed errors listing the valid ones', () => {
    const batch = randomBatch(2, 3, 1);
    const bad = (rc: Record<string, unknown>): (() => unknown) => () => policyLoss('bypass_mode', batch, { rolloutCorrection: rc });
    expect(bad({ rolloutIs: 'geometric' })).toThrow(UnknownModeError);
    expect(bad({ rolloutIs: 'geometric' })).toThrow(/token, sequence/);
    expect(bad({ rolloutRs: 'token', rolloutRsThreshold: 2 })).toThrow(UnknownModeError);
    expect(bad({ rolloutRs: 'token', rolloutRsThreshold: 2 })).toThrow(/seq_mean_k3/);
    expect(bad({ rolloutRs: 'token_k2' })).toThrow(ConfigError);
    expect(bad({ lossType: 'grpo' })).toThrow(/ppo_clip, reinforce/);
  });

  it('computeRolloutCorrection never mutates its inputs and accepts nested arrays', () => {
    const lp = [
      [-1, -2],
      [-0.5, 4],
    ];
    const rlp = [
      [-1.2, -1.9],
      [-0.4, 0],
    ];
    const mask = [
      [1, 1],
      [1, 0],
    ];
    const snapshot = JSON.stringify([lp, rlp, mask]);
    const r = computeRolloutCorrection(
      { logProbs: lp, rolloutLogProbs: rlp, responseMask: mask },
      { rolloutIs: 'token', rolloutRs: 'token_k1', rolloutRsThreshold: '0.85_1.2' },
    );
    expect(JSON.stringify([lp, rlp, mask])).toBe(snapshot);
    expect(r.shape).toEqual([2, 2]);
    expect(Array.from(r.mask)).toEqual([0, 1, 1, 0]);
    closeArr(r.weights!, [Math.exp(0.2), Math.exp(-0.1), Math.exp(-0.1), 0]);
    expect(Object.keys(r.metrics).every((k) => k.startsWith('rollout_corr/'))).toBe(true);
  });
});
