/**
 * The float64 reference verified against the same formulas evaluated with mathjs BigNumbers (60 significant
 * digits) on small seeded cases: vanilla, gspo, sapo, geo_mean, cispo, gpg, each under every aggregation mode
 * (with and without the global-batch normalisers). Inputs are converted to BigNumber exactly (every double is a
 * finite decimal), so the only differences are the float64 roundings of the reference. Loss error is measured in
 * ulps of the summands' scale (the aggregate of |ℓ|, as the fixtures' abs_scale), gradient error in ulps of each entry.
 */
import { all, type BigNumber, create } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { type GlobalBatchInfo, type LossAggMode, policyLoss, type PolicyLossConfig } from '../src/index.js';
import { AGG_MODES, kinkDistance, type Mode, type RawBatch, randomBatch, rngOf, toBatch } from './losses-helpers.js';

const M = create(all, { number: 'BigNumber', precision: 60 });
type Big = BigNumber;
/** The exact decimal value of a double. */
const big = (x: number): Big => M.bignumber(x.toPrecision(100).replace(/\.?0+(e|$)/, '$1')) as Big;
const ZERO = big(0);
const ONE = big(1);
const EPS8 = big(1e-8);

/** One ulp of |x| (float64). */
function ulp(x: number): number {
  const a = Math.abs(x);
  if (a === 0 || !Number.isFinite(a)) return Number.MIN_VALUE;
  return 2 ** (Math.floor(Math.log2(a)) - 52);
}

interface BigPass {
  loss: Big[]; // ℓ_t, row-major
  dLoss: Big[]; // ∂ℓ_t/∂lp_t
}

const clampB = (x: Big, lo: Big, hi: Big): Big => (x.lt(lo) ? lo : x.gt(hi) ? hi : x);
const maxB = (a: Big, b: Big): Big => (a.gt(b) ? a : b);

function dAt(raw: RawBatch, i: number, j: number): Big {
  return big(raw.lp[i]![j]!).minus(big(raw.olp[i]![j]!));
}

function tokenPass(mode: Mode, raw: RawBatch, cfg: PolicyLossConfig): BigPass {
  const n = raw.B * raw.T;
  const loss: Big[] = new Array<Big>(n).fill(ZERO);
  const dLoss: Big[] = new Array<Big>(n).fill(ZERO);
  const epsL = big(cfg.clipRatioLow ?? cfg.clipRatio ?? 0.2);
  const epsH = big(cfg.clipRatioHigh ?? cfg.clipRatio ?? 0.2);
  const lo = ONE.minus(epsL);
  const hi = ONE.plus(epsH);
  const c = big(cfg.clipRatioC ?? 3);
  const twenty = big(20);
  for (let i = 0; i < raw.B; i++) {
    // GSPO's sequence log-ratio
    let sSum = ZERO;
    let L = 0;
    for (let j = 0; j < raw.T; j++) if (raw.mask[i]![j] === 1) {
      sSum = sSum.plus(dAt(raw, i, j));
      L++;
    }
    const sLog = sSum.div(big(Math.max(L, 1)));
    for (let j = 0; j < raw.T; j++) {
      if (raw.mask[i]![j] !== 1) continue;
      const k = i * raw.T + j;
      const a = big(raw.adv[i]![j]!);
      const negA = a.neg();
      const lp = big(raw.lp[i]![j]!);
      switch (mode) {
        case 'vanilla': {
          const r = clampB(dAt(raw, i, j), twenty.neg(), twenty).exp();
          const rc = clampB(r, lo, hi);
          const l1 = negA.times(r);
          const l2 = negA.times(rc);
          const clipped = l2.gt(l1);
          let l = maxB(l1, l2);
          let g = clipped ? ZERO : negA.times(r);
          if (a.lt(0) && l.gt(negA.times(c))) {
            l = negA.times(c);
            g = ZERO;
          }
          loss[k] = l;
          dLoss[k] = g;
          break;
        }
        case 'gspo': {
          const st = (sLog.gt(10) ? big(10) : sLog).exp();
          const l1 = negA.times(st);
          const l2 = negA.times(clampB(st, lo, hi));
          loss[k] = maxB(l1, l2);
          dLoss[k] = l2.gt(l1) || sLog.gt(10) ? ZERO : negA.times(st);
          break;
        }
        case 'sapo': {
          const r = clampB(dAt(raw, i, j), twenty.neg(), twenty).exp();
          const tau = big(a.gt(0) ? (cfg.tauPos ?? 1) : (cfg.tauNeg ?? 1.05));
          const sig = ONE.div(ONE.plus(tau.times(r.minus(1)).neg().exp()));
          loss[k] = sig.times(big(4).div(tau)).neg().times(a);
          dLoss[k] = negA.times(4).times(sig).times(ONE.minus(sig)).times(r);
          break;
        }
        case 'cispo': {
          const rc = clampB(clampB(dAt(raw, i, j), twenty.neg(), twenty).exp(), lo, hi);
          loss[k] = rc.neg().times(a).times(lp);
          dLoss[k] = rc.neg().times(a);
          break;
        }
        case 'gpg':
          loss[k] = lp.neg().times(a);
          dLoss[k] = negA;
          break;
        default:
          throw new Error(mode);
      }
      if (raw.w) {
        const w = big(raw.w[i]![j]!);
        loss[k] = loss[k]!.times(w);
        dLoss[k] = dLoss[k]!.times(w);
      }
    }
  }
  return { loss, dLoss };
}

/** verl's agg_loss in BigNumber, returning the loss, its |ℓ| scale and d loss / d ℓ per token. */
function aggBig(raw: RawBatch, vals: Big[], mode: LossAggMode, gbi: GlobalBatchInfo): { loss: Big; scale: Big; coef: Big[] } {
  const dp = big(gbi.dpSize ?? 1);
  const lengths = raw.mask.map((r) => r.reduce((s, v) => s + v, 0));
  const nTok = lengths.reduce((s, v) => s + v, 0);
  const nonEmpty = lengths.filter((l) => l > 0).length;
  const rowCoef = lengths.map((li) => {
    switch (mode) {
      case 'token-mean':
        return dp.div(big(gbi.batchNumTokens ?? nTok));
      case 'seq-mean-token-sum':
        return li > 0 ? dp.div(big(gbi.globalBatchSize ?? nonEmpty)) : ZERO;
      case 'seq-mean-token-mean':
        return li > 0 ? dp.div(big(gbi.globalBatchSize ?? nonEmpty).times(big(li).plus(EPS8))) : ZERO;
      case 'seq-mean-token-sum-norm':
        return ONE.div(big(gbi.lossScaleFactor ?? raw.T));
    }
  });
  let loss = ZERO;
  let scale = ZERO;
  const coef: Big[] = [];
  for (let i = 0; i < raw.B; i++) for (let j = 0; j < raw.T; j++) {
    const k = i * raw.T + j;
    const on = raw.mask[i]![j] === 1;
    coef.push(on ? rowCoef[i]! : ZERO);
    if (!on) continue;
    loss = loss.plus(rowCoef[i]!.times(vals[k]!));
    scale = scale.plus(rowCoef[i]!.times(vals[k]!.abs()));
  }
  return { loss, scale, coef };
}

function geoMeanBig(raw: RawBatch, cfg: PolicyLossConfig): { loss: Big; scale: Big; grad: Big[] } {
  const epsL = big(cfg.clipRatioLow ?? cfg.clipRatio ?? 0.2);
  const epsH = big(cfg.clipRatioHigh ?? cfg.clipRatio ?? 0.2);
  const grad: Big[] = new Array<Big>(raw.B * raw.T).fill(ZERO);
  let loss = ZERO;
  let scale = ZERO;
  const Bb = big(raw.B);
  for (let i = 0; i < raw.B; i++) {
    let sd = ZERO;
    let sa = ZERO;
    let sw = ZERO;
    let L = 0;
    const pass: number[] = [];
    for (let j = 0; j < raw.T; j++) {
      if (raw.mask[i]![j] !== 1) continue;
      L++;
      const d = dAt(raw, i, j);
      const a = raw.adv[i]![j]!;
      const dc = clampB(d, epsL.neg(), epsH);
      // A > 0: min(d, dc); A < 0: max(d, dc); A = 0: 0
      let ds = ZERO;
      let p = 0;
      if (a > 0) [ds, p] = d.lt(dc) ? [d, 1] : dc.lt(d) ? [dc, 0] : [d, 1];
      else if (a < 0) [ds, p] = d.gt(dc) ? [d, 1] : dc.gt(d) ? [dc, 0] : [d, 1];
      sd = sd.plus(ds);
      pass.push(j, p);
      sa = sa.plus(big(a));
      if (raw.w) sw = sw.plus(big(raw.w[i]![j]!).plus(big(1e-10)).ln());
    }
    const den = big(L).plus(EPS8);
    const li = sa.div(den).neg().times(sd.div(den).exp()).times(raw.w ? sw.div(den).exp() : ONE);
    loss = loss.plus(li.div(Bb));
    scale = scale.plus(li.abs().div(Bb));
    for (let q = 0; q < pass.length; q += 2) grad[i * raw.T + pass[q]!] = li.div(den).div(Bb).times(pass[q + 1]!);
  }
  return { loss, scale, grad };
}

const GBI: GlobalBatchInfo = { dpSize: 3, batchNumTokens: 29, globalBatchSize: 7, lossScaleFactor: 13 };
const CASES: [Mode, PolicyLossConfig][] = [
  ['vanilla', { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 1.6 }],
  ['gspo', { clipRatioLow: 0.05, clipRatioHigh: 0.08 }],
  ['sapo', { tauPos: 1, tauNeg: 1.05 }],
  ['cispo', { clipRatioLow: 0.2, clipRatioHigh: 0.28 }],
  ['gpg', {}],
];
const MAX_ULPS = 8;
let worstLoss = 0;
let worstGrad = 0;

function compare(what: string, ref: { loss: number; grad: Float64Array }, exact: { loss: Big; scale: Big; grad: Big[] }): void {
  const el = Math.abs(ref.loss - exact.loss.toNumber()) / ulp(exact.scale.toNumber());
  worstLoss = Math.max(worstLoss, el);
  if (!(el <= MAX_ULPS)) throw new Error(`${what}: loss ${ref.loss} vs ${exact.loss.toString()} (${el} ulps)`);
  for (let k = 0; k < ref.grad.length; k++) {
    const G = exact.grad[k]!.toNumber();
    const eg = G === 0 ? (ref.grad[k] === 0 ? 0 : Infinity) : Math.abs(ref.grad[k]! - G) / ulp(G);
    worstGrad = Math.max(worstGrad, eg);
    if (!(eg <= MAX_ULPS)) throw new Error(`${what}: grad[${k}] ${ref.grad[k]} vs ${exact.grad[k]!.toString()} (${eg} ulps)`);
  }
}

function smallBatch(mode: Mode, cfg: PolicyLossConfig, seed: number, withWeights: boolean): RawBatch {
  const rng = rngOf(seed);
  for (;;) {
    const raw = randomBatch(rng, { B: 3, T: 4, perSeqAdv: mode === 'gspo' || seed % 2 === 0, maxAbsD: mode === 'gspo' ? 0.12 : 0.7, withWeights, emptyRowProb: 0.2 });
    if (kinkDistance(mode, raw, cfg) > 1e-6) return raw;
  }
}

describe('float64 reference vs mathjs BigNumber (60 digits)', () => {
  for (const [mode, base] of CASES) {
    for (const agg of AGG_MODES) {
      it(`${mode} ${agg}: within ${MAX_ULPS} ulps`, () => {
        for (let s = 0; s < 8; s++) {
          const gbi = s % 2 === 1 ? GBI : {};
          const cfg: PolicyLossConfig = { ...base, lossAggMode: agg, globalBatchInfo: gbi };
          const raw = smallBatch(mode, cfg, 31 * s + agg.length + mode.length, s % 4 >= 2);
          const ref = policyLoss(mode, toBatch(raw), cfg);
          const pass = tokenPass(mode, raw, cfg);
          const a = aggBig(raw, pass.loss, agg, gbi);
          compare(`${mode} ${agg} seed ${s}`, ref, { loss: a.loss, scale: a.scale, grad: pass.dLoss.map((d, k) => d.times(a.coef[k]!)) });
        }
      });
    }
  }
  it.each([[{ clipRatio: 0.4 }], [{ clipRatioLow: 0.2, clipRatioHigh: 0.28 }]] as const)('geo_mean %j: within 8 ulps', (base) => {
    for (let s = 0; s < 12; s++) {
      const raw = smallBatch('geo_mean', base, 77 + s, s % 2 === 1);
      compare(`geo_mean seed ${s}`, policyLoss('geo_mean', toBatch(raw), base), geoMeanBig(raw, base));
    }
  });
  it('the worst errors seen are small', () => {
    // Measured: a few ulps at most (the exp of a rounded log-ratio dominates).
    expect(worstLoss).toBeLessThanOrEqual(MAX_ULPS);
    expect(worstGrad).toBeLessThanOrEqual(MAX_ULPS);
    console.log(`bignum check: worst loss error ${worstLoss.toFixed(2)} ulps of scale, worst grad error ${worstGrad.toFixed(2)} ulps`);
  });
});
