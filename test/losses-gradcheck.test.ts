/**
 * Gradients of every loss mode against central finite differences in float64, on seeded random batches that stay
 * ≥ 1e-4 away from every kink (clip edges, the ±20 clamp, the dual-clip constant, GSPO's cap of 10, kl_cov's |d| and
 * top-k cut, clip_cov's covariance band). Step h = 1e-6; |fd − g| ≤ 1e-6·|g| + 1e-7·max(1, |loss|, max|g|).
 *
 * Detach points: CISPO's sg[clip(r)] is held fixed by moving olp with lp (so r, hence clip(r), does not change);
 * GSPO's sg[s_i] equals the true derivative only when A (and w) are constant per sequence, so GSPO uses per-sequence
 * advantages and weights.
 */
import { describe, expect, it } from 'vitest';
import { policyLoss, type PolicyLossConfig } from '../src/index.js';
import { AGG_MODES, cloneRaw, kinkDistance, MODE_CONFIGS, MODES, type Mode, type RawBatch, randomBatch, rngOf, toBatch, usesAggMode } from './losses-helpers.js';

const H = 1e-6;
const MARGIN = 1e-4;

function lossAt(mode: Mode, raw: RawBatch, config: PolicyLossConfig): number {
  return policyLoss(mode, toBatch(raw), config).loss;
}

/** A batch for `mode` that is at least MARGIN away from every kink. */
function smoothBatch(mode: Mode, config: PolicyLossConfig, seed: number, withWeights: boolean): RawBatch {
  const rng = rngOf(seed);
  for (let tries = 0; tries < 500; tries++) {
    const raw = randomBatch(rng, {
      B: 4,
      T: 5,
      perSeqAdv: mode === 'gspo' || (mode === 'geo_mean' && tries % 2 === 0),
      maxAbsD: mode === 'gspo' ? (config.clipRatioHigh! < 0.01 ? 0.001 : 0.15) : 0.8,
      withWeights,
      emptyRowProb: 0.15,
    });
    // GSPO's sg[s_i] construction matches the true derivative only when A and w are constant per sequence.
    if (mode === 'gspo' && raw.w) for (const row of raw.w) row.fill(row[0]!);
    if (kinkDistance(mode, raw, config) > MARGIN) return raw;
  }
  throw new Error(`no smooth batch found for ${mode}`);
}

function checkFd(mode: Mode, raw: RawBatch, config: PolicyLossConfig): number {
  const res = policyLoss(mode, toBatch(raw), config);
  let scale = Math.max(1, Math.abs(res.loss));
  for (const g of res.grad) scale = Math.max(scale, Math.abs(g));
  let checked = 0;
  for (let i = 0; i < raw.B; i++) {
    for (let j = 0; j < raw.T; j++) {
      const k = i * raw.T + j;
      if (raw.mask[i]![j] === 0) {
        expect(res.grad[k]).toBe(0);
        continue;
      }
      const plus = cloneRaw(raw);
      const minus = cloneRaw(raw);
      const x = raw.lp[i]![j]!;
      plus.lp[i]![j] = x + H;
      minus.lp[i]![j] = x - H;
      if (mode === 'cispo') {
        plus.olp[i]![j] = raw.olp[i]![j]! + (plus.lp[i]![j]! - x);
        minus.olp[i]![j] = raw.olp[i]![j]! + (minus.lp[i]![j]! - x);
      }
      const step = plus.lp[i]![j]! - minus.lp[i]![j]!;
      const fd = (lossAt(mode, plus, config) - lossAt(mode, minus, config)) / step;
      const g = res.grad[k]!;
      const tol = 1e-6 * Math.abs(g) + 1e-7 * scale;
      if (!(Math.abs(fd - g) <= tol)) throw new Error(`${mode} ${JSON.stringify(config)} grad[${i},${j}] = ${g}, finite difference ${fd}`);
      checked++;
    }
  }
  return checked;
}

describe('gradients vs central finite differences (float64)', () => {
  for (const mode of MODES) {
    const aggs = usesAggMode(mode) ? AGG_MODES : [undefined];
    MODE_CONFIGS[mode].forEach((base, ci) => {
      for (const agg of aggs) {
        it(`${mode} config ${ci} ${agg ?? 'row-mean'}`, () => {
          let checked = 0;
          for (let s = 0; s < 6; s++) {
            const config: PolicyLossConfig = { ...base, ...(agg ? { lossAggMode: agg } : {}) };
            if (s % 3 === 2) config.globalBatchInfo = { dpSize: 2, batchNumTokens: 37, globalBatchSize: 9, lossScaleFactor: 11 };
            const raw = smoothBatch(mode, config, 1000 * ci + 17 * s + mode.length, s % 2 === 1);
            checked += checkFd(mode, raw, config);
          }
          expect(checked).toBeGreaterThan(20);
        });
      }
    });
  }
});
