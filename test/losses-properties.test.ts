/**
 * Property tests (fast-check) of the float64 reference:
 * - values at masked positions (any value, NaN and ±Infinity included) never change the loss, the gradient or the
 *   metrics, for every mode and aggregation;
 * - a batch split into micro-batches over dp ranks, each aggregated with the global normalisers (`batchNumTokens`,
 *   `globalBatchSize`, `dpSize`), sums (then averages over ranks, as DP all-reduce does) to the whole-batch loss and
 *   gradient, for every aggregation mode and every token-level loss whose per-token terms do not depend on other
 *   rows (vanilla, sapo and gspo with an explicit mode, cispo, gpg);
 * - an all-masked batch gives loss 0 and a zero gradient for every mode; inputs are never mutated.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type GlobalBatchInfo, type LossAggMode, policyLoss, type PolicyLossBatch, type PolicyLossConfig } from '../src/index.js';
import { AGG_MODES, cloneRaw, MODE_CONFIGS, MODES, type Mode, type RawBatch, randomBatch, rngOf, toBatch, usesAggMode } from './losses-helpers.js';

const modeArb = fc.constantFrom(...MODES);
const aggArb = fc.constantFrom(...AGG_MODES);
const garbageArb = fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e308, -0));

function configFor(mode: Mode, ci: number, agg: LossAggMode): PolicyLossConfig {
  const list = MODE_CONFIGS[mode];
  return { ...list[ci % list.length]!, ...(usesAggMode(mode) ? { lossAggMode: agg } : {}) };
}

function sameResult(a: ReturnType<typeof policyLoss>, b: ReturnType<typeof policyLoss>): void {
  expect(Object.is(a.loss, b.loss)).toBe(true);
  expect(a.grad.length).toBe(b.grad.length);
  for (let k = 0; k < a.grad.length; k++) expect(Object.is(a.grad[k], b.grad[k])).toBe(true);
  expect(a.metrics).toEqual(b.metrics);
}

describe('masked positions never matter', () => {
  it('for every mode and aggregation, whatever the padding holds', () => {
    fc.assert(
      fc.property(
        fc.integer(), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), modeArb, aggArb, fc.nat(), fc.boolean(),
        fc.array(garbageArb, { minLength: 5 * 6 * 5, maxLength: 5 * 6 * 5 }),
        (seed, B, T, mode, agg, ci, withW, garbage) => {
          const raw = randomBatch(rngOf(seed), { B, T, withWeights: withW, perSeqAdv: seed % 2 === 0 });
          const config = configFor(mode, ci, agg);
          const ref = policyLoss(mode, toBatch(raw), config);
          const dirty = cloneRaw(raw);
          let g = 0;
          for (let i = 0; i < B; i++) for (let j = 0; j < T; j++) {
            if (raw.mask[i]![j] === 1) continue;
            for (const f of [dirty.olp, dirty.lp, dirty.adv, dirty.ent, ...(dirty.w ? [dirty.w] : [])]) f[i]![j] = garbage[g++ % garbage.length]!;
          }
          const got = policyLoss(mode, toBatch(dirty), config);
          sameResult(got, ref);
          for (let k = 0; k < B * T; k++) if (raw.mask[Math.floor(k / T)]![k % T] === 0) expect(got.grad[k]).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

const SPLIT_MODES = ['vanilla', 'sapo', 'gspo', 'cispo', 'gpg'] as const;

describe('micro-batches with global normalisers sum to the whole batch', () => {
  it.each(SPLIT_MODES)('%s, every aggregation mode, dp 1..3', (mode) => {
    fc.assert(
      fc.property(
        fc.integer(), fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), aggArb,
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 9, maxLength: 9 }), fc.boolean(),
        (seed, B, T, dp, agg, chunkSizes, withW) => {
          const raw = randomBatch(rngOf(seed), { B, T, withWeights: withW, perSeqAdv: mode === 'gspo', emptyRowProb: 0.25 });
          const nTok = raw.mask.flat().reduce((s, v) => s + v, 0);
          fc.pre(nTok > 0);
          const base = { ...MODE_CONFIGS[mode][seed & 1 ? 1 % MODE_CONFIGS[mode].length : 0]!, lossAggMode: agg };
          // verl's global semantics: N_tok and G count the whole mini-batch (G includes fully masked rows); sum-norm
          // ignores dp_size, so its global K must absorb the DP average (K / dp).
          const whole = policyLoss(mode, toBatch(raw), { ...base, globalBatchInfo: { batchNumTokens: nTok, globalBatchSize: B, lossScaleFactor: T } });
          const gbi: GlobalBatchInfo = { dpSize: dp, batchNumTokens: nTok, globalBatchSize: B, lossScaleFactor: T / dp };
          let loss = 0;
          const grad = new Float64Array(B * T);
          let row = 0;
          let c = 0;
          while (row < B) {
            const size = Math.min(chunkSizes[c++ % chunkSizes.length]!, B - row);
            const part = sliceRows(raw, row, size);
            const r = policyLoss(mode, toBatch(part), { ...base, globalBatchInfo: gbi });
            // each rank's gradient is averaged over the dp ranks (DDP/FSDP all-reduce mean)
            loss += r.loss / dp;
            for (let k = 0; k < size * T; k++) grad[row * T + k] = r.grad[k]! / dp;
            row += size;
          }
          let scale = Math.abs(whole.loss);
          for (const g of whole.grad) scale = Math.max(scale, Math.abs(g));
          expect(Math.abs(loss - whole.loss)).toBeLessThanOrEqual(1e-12 * Math.max(1, scale) * 10);
          for (let k = 0; k < B * T; k++) expect(Math.abs(grad[k]! - whole.grad[k]!)).toBeLessThanOrEqual(1e-14 * Math.max(1, scale) * 10);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('without empty rows, the whole batch with global normalisers equals verl local aggregation', () => {
    const raw = randomBatch(rngOf(5), { B: 4, T: 5, emptyRowProb: 0 });
    const nTok = raw.mask.flat().reduce((s, v) => s + v, 0);
    for (const agg of AGG_MODES) {
      const local = policyLoss('vanilla', toBatch(raw), { lossAggMode: agg });
      const global = policyLoss('vanilla', toBatch(raw), { lossAggMode: agg, globalBatchInfo: { batchNumTokens: nTok, globalBatchSize: 4, lossScaleFactor: 5 } });
      expect(global.loss).toBeCloseTo(local.loss, 14);
    }
  });
});

function sliceRows(raw: RawBatch, start: number, size: number): RawBatch {
  const s = (x: number[][]): number[][] => x.slice(start, start + size).map((r) => [...r]);
  return { B: size, T: raw.T, olp: s(raw.olp), lp: s(raw.lp), adv: s(raw.adv), mask: s(raw.mask), w: raw.w ? s(raw.w) : null, ent: s(raw.ent) };
}

describe('all-masked batch', () => {
  it.each(MODES)('%s: loss 0 and a zero gradient for every aggregation (verl: NaN)', (mode) => {
    const raw = randomBatch(rngOf(3), { B: 3, T: 4, withWeights: true });
    for (const row of raw.mask) row.fill(0);
    for (const agg of usesAggMode(mode) ? AGG_MODES : AGG_MODES.slice(0, 1)) {
      for (let ci = 0; ci < MODE_CONFIGS[mode].length; ci++) {
        const r = policyLoss(mode, toBatch(raw), configFor(mode, ci, agg));
        expect(r.loss).toBe(0);
        expect(r.grad.every((g) => g === 0)).toBe(true);
        for (const v of Object.values(r.metrics)) expect(v).toBe(0);
      }
    }
  });
});

describe('inputs are never mutated', () => {
  it.each(MODES)('%s, nested and flat (Float64Array, Float32Array) inputs', (mode) => {
    const raw = randomBatch(rngOf(11), { B: 3, T: 5, withWeights: true });
    const before = cloneRaw(raw);
    policyLoss(mode, toBatch(raw), MODE_CONFIGS[mode][0]!);
    expect(raw).toEqual(before);
    const flat64 = (x: number[][]): Float64Array => Float64Array.from(x.flat());
    const batch: PolicyLossBatch = {
      oldLogProbs: flat64(raw.olp),
      logProbs: flat64(raw.lp),
      advantages: Float32Array.from(raw.adv.flat()),
      responseMask: raw.mask.flat(),
      rolloutIsWeights: flat64(raw.w!),
      entropy: flat64(raw.ent),
      shape: [3, 5],
    };
    const copies = Object.fromEntries(Object.entries(batch).map(([k, v]) => [k, Array.from(v as ArrayLike<number>)]));
    const res = policyLoss(mode, batch, MODE_CONFIGS[mode][0]!);
    for (const [k, v] of Object.entries(batch)) expect(Array.from(v as ArrayLike<number>)).toEqual(copies[k]);
    // the result never aliases an input
    for (const v of Object.values(batch)) expect(res.grad).not.toBe(v);
  });
});
