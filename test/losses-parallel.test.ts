/**
 * The opt-in multi-threaded CPU path (src/losses/parallel.ts) against the single-thread reference: gradient and
 * loss bit for bit, counts exact, ppo_kl to rtol 1e-12 (its range sums are added in another order); errors identical;
 * the fallbacks; and that the workers never keep the process alive.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, type LossAggMode, METRIC, mulberry32, policyLoss, type PolicyLossBatch, type PolicyLossConfig, type PolicyLossResult } from '../src/index.js';
import { createParallelPolicyLoss, type ParallelPolicyLoss } from '../src/losses/parallel.js';

const AGG: (LossAggMode | undefined)[] = [undefined, 'token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'];
const DAPO: PolicyLossConfig = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3 };

interface Opts {
  B: number;
  T: number;
  f32?: boolean;
  weights?: boolean;
  seed: number;
}

/** A flat random batch: right-padded rows, random holes, empty rows, NaN garbage at masked positions, some ties. */
function batchOf({ B, T, f32 = false, weights = false, seed }: Opts): PolicyLossBatch & { shape: readonly [number, number] } {
  const rnd = mulberry32(seed);
  const A = f32 ? Float32Array : Float64Array;
  const n = B * T;
  const olp = new A(n);
  const lp = new A(n);
  const adv = new A(n);
  const mask = new A(n);
  const w = new A(n);
  for (let i = 0; i < B; i++) {
    const len = rnd() < 0.1 ? 0 : 1 + Math.floor(rnd() * T);
    const a = (rnd() - 0.5) * 4;
    for (let j = 0; j < T; j++) {
      const k = i * T + j;
      const valid = j < len && rnd() > 0.05;
      mask[k] = valid ? 1 : 0;
      olp[k] = -rnd() * 5;
      // big log-ratios reach the ±20 clamp and both clip bounds; an exact 0 gives ratio 1 (ties of the max)
      const d = rnd() < 0.02 ? (rnd() - 0.5) * 60 : rnd() < 0.05 ? 0 : (rnd() - 0.5) * 0.8;
      lp[k] = (olp[k] as number) + d;
      adv[k] = rnd() < 0.5 ? a : (rnd() - 0.5) * 4;
      w[k] = 0.2 + 1.8 * rnd();
      if (!valid && rnd() < 0.3) lp[k] = Number.NaN; // never read
    }
  }
  return { oldLogProbs: olp, logProbs: lp, advantages: adv, responseMask: mask, rolloutIsWeights: weights ? w : null, shape: [B, T] as const };
}

function expectSame(par: PolicyLossResult, ref: PolicyLossResult): void {
  expect(par.loss).toBe(ref.loss); // bit-identical: row sums combined in row order
  expect(par.grad.length).toBe(ref.grad.length);
  let diff = 0;
  for (let k = 0; k < ref.grad.length; k++) if (!Object.is(par.grad[k], ref.grad[k])) diff++;
  expect(diff).toBe(0);
  expect(par.metrics[METRIC.pgClipfrac]).toBe(ref.metrics[METRIC.pgClipfrac]);
  expect(par.metrics[METRIC.pgClipfracLower]).toBe(ref.metrics[METRIC.pgClipfracLower]);
  const kl = ref.metrics[METRIC.ppoKl];
  if (kl === undefined) expect(par.metrics[METRIC.ppoKl]).toBeUndefined(); // gpg: no metrics, as in verl
  else expect(Math.abs((par.metrics[METRIC.ppoKl] as number) - kl)).toBeLessThanOrEqual(1e-12 * Math.abs(kl) + 1e-15);
  expect(Object.keys(par.metrics).sort()).toEqual(Object.keys(ref.metrics).sort());
}

async function errorOf(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('createParallelPolicyLoss', () => {
  let par: ParallelPolicyLoss;
  beforeAll(() => {
    par = createParallelPolicyLoss({ threads: 2, minTokens: 64 });
  });
  afterAll(async () => {
    await par.destroy();
  });

  it('matches policyLoss bit for bit (grad, loss, counts) for every aggregation mode, IS weights, f32/f64', async () => {
    let seed = 1;
    for (const lossAggMode of AGG) {
      for (const weights of [false, true]) {
        for (const f32 of [false, true]) {
          const batch = batchOf({ B: 37, T: 53, f32, weights, seed: seed++ });
          const config = { ...DAPO, ...(lossAggMode ? { lossAggMode } : {}) };
          const ref = policyLoss('vanilla', batch, config);
          const res = await par.policyLoss('vanilla', batch, config);
          expect(par.parallel).toBe(true);
          expectSame(res, ref);
        }
      }
    }
    expect(par.lastTimings).not.toBeNull();
  });

  it('matches with global batch info, dual-clip variants, a single long row range, and rows wider than a chunk', async () => {
    const cases: [Opts, PolicyLossConfig][] = [
      [{ B: 16, T: 100, seed: 11 }, { ...DAPO, lossAggMode: 'token-mean', globalBatchInfo: { dpSize: 4, batchNumTokens: 5000 } }],
      [{ B: 16, T: 100, seed: 12 }, { ...DAPO, lossAggMode: 'seq-mean-token-mean', globalBatchInfo: { dpSize: 2, globalBatchSize: 64 } }],
      [{ B: 16, T: 100, seed: 13 }, { lossAggMode: 'seq-mean-token-sum-norm', globalBatchInfo: { lossScaleFactor: 77 } }],
      [{ B: 9, T: 100, weights: true, seed: 14 }, { clipRatio: 0.1, clipRatioC: 1.5 }],
      [{ B: 3, T: 9000, weights: true, f32: true, seed: 15 }, { ...DAPO, lossAggMode: 'seq-mean-token-sum' }],
      [{ B: 700, T: 20, seed: 16 }, DAPO],
    ];
    for (const [o, config] of cases) {
      const batch = batchOf(o);
      expectSame(await par.policyLoss('vanilla', batch, config), policyLoss('vanilla', batch, config));
    }
  });

  it('writes into gradInto and returns it; repeated calls with other sizes and dtypes reuse and grow the staging', async () => {
    for (const [B, T, f32] of [[20, 40, false], [64, 40, true], [10, 30, true], [90, 41, false]] as const) {
      const batch = batchOf({ B, T, f32, weights: true, seed: B + T });
      const into = new Float64Array(B * T).fill(Number.NaN);
      const res = await par.policyLoss('vanilla', batch, DAPO, { gradInto: into });
      expect(res.grad).toBe(into);
      expectSame(res, policyLoss('vanilla', batch, DAPO));
    }
  });

  it('runs concurrent calls one after the other with correct results', async () => {
    const batches = [1, 2, 3].map((s) => batchOf({ B: 30, T: 30, weights: s === 2, seed: 100 + s }));
    const results = await Promise.all(batches.map((b) => par.policyLoss('vanilla', b, DAPO)));
    results.forEach((r, i) => expectSame(r, policyLoss('vanilla', batches[i] as PolicyLossBatch, DAPO)));
  });

  it('throws exactly the reference errors (validation on the main thread first)', async () => {
    const good = (): ReturnType<typeof batchOf> => batchOf({ B: 20, T: 20, weights: true, seed: 7 });
    const mutate = (f: (b: ReturnType<typeof batchOf>) => void): ReturnType<typeof batchOf> => {
      const b = good();
      f(b);
      return b;
    };
    const firstValid = (b: ReturnType<typeof batchOf>, late = false): number => {
      const m = b.responseMask as Float64Array;
      if (late) return m.lastIndexOf(1);
      return m.indexOf(1);
    };
    const cases: [string, PolicyLossBatch, PolicyLossConfig, Float64Array | undefined][] = [
      ['vanilla', mutate((b) => ((b.responseMask as Float64Array)[5] = 0.5)), DAPO, undefined],
      ['vanilla', mutate((b) => ((b.responseMask as Float64Array)[399] = 2)), DAPO, undefined],
      ['vanilla', mutate((b) => ((b.logProbs as Float64Array)[firstValid(b, true)] = Number.NaN)), DAPO, undefined],
      ['vanilla', mutate((b) => ((b.oldLogProbs as Float64Array)[firstValid(b)] = Number.POSITIVE_INFINITY)), DAPO, undefined],
      ['vanilla', mutate((b) => ((b.advantages as Float64Array)[firstValid(b, true)] = Number.NaN)), DAPO, undefined],
      ['vanilla', mutate((b) => ((b.rolloutIsWeights as Float64Array)[firstValid(b, true)] = Number.NaN)), DAPO, undefined],
      // two problems: the reference's order decides which one is reported
      ['vanilla', mutate((b) => {
        (b.rolloutIsWeights as Float64Array)[firstValid(b)] = Number.NaN;
        (b.logProbs as Float64Array)[firstValid(b, true)] = Number.NaN;
      }), DAPO, undefined],
      ['vanilla', { ...good(), advantages: new Float64Array(399) }, DAPO, undefined],
      ['vanilla', { ...good(), shape: [400] as unknown as [number, number] }, DAPO, undefined],
      ['vanilla', { ...good(), logProbs: undefined } as unknown as PolicyLossBatch, DAPO, undefined],
      ['vanilla', good(), DAPO, new Float64Array(399)],
      ['vanilla', good(), DAPO, new Float32Array(400) as unknown as Float64Array],
      ['vanilla', good(), { clipRatioC: 0.5 }, undefined],
      ['vanilla', good(), { lossAggMode: 'mean' as LossAggMode }, undefined],
      ['no-such-mode', good(), DAPO, undefined],
    ];
    for (const [mode, batch, config, into] of cases) {
      const opts = into ? { gradInto: into } : {};
      const ref = await errorOf(() => policyLoss(mode, batch, config, opts));
      const got = await errorOf(() => par.policyLoss(mode, batch, config, opts));
      expect(got).toBeInstanceOf((ref as Error).constructor);
      expect((got as Error).message).toBe((ref as Error).message);
      expect((got as { code?: string }).code).toBe((ref as { code?: string }).code);
    }
    // gradInto aliasing an input
    const b = good();
    const alias = b.logProbs as Float64Array;
    const ref = await errorOf(() => policyLoss('vanilla', b, DAPO, { gradInto: alias }));
    const got = await errorOf(() => par.policyLoss('vanilla', b, DAPO, { gradInto: alias }));
    expect((got as Error).message).toBe((ref as Error).message);
    // the instance still works after errors
    const ok = good();
    expectSame(await par.policyLoss('vanilla', ok, DAPO), policyLoss('vanilla', ok, DAPO));
    expect(par.parallel).toBe(true);
  });

  it('runs sapo, gspo (the seed SAPO and GSPO modes), cispo, gpg, geo_mean and kl_cov bit for bit, every aggregation mode, IS weights, f32/f64', async () => {
    let seed = 500;
    const seedConfigs: [string, PolicyLossConfig][] = [
      ['sapo', { tauPos: 1.0, tauNeg: 1.05 }],
      ['gspo', { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 }],
      ['gspo', { clipRatioLow: 0.05, clipRatioHigh: 0.05 }], // wide enough that some sequences clip
      ['cispo', { clipRatioLow: 0.2, clipRatioHigh: 0.28 }],
      ['gpg', {}],
      ['geo_mean', {}], // verl's defaults (ε 0.2 in log space)
      ['geo_mean', { clipRatioLow: 0.02, clipRatioHigh: 0.03 }], // narrow enough that tokens clip both ways
      ['kl_cov', {}], // verl's defaults: the 0.02 % of tokens with the largest covariance (at least one)
      ['kl_cov', { klCovRatio: 0.3, ppoKlCoef: 0.5 }], // selected tokens in most rows, across both threads' ranges
    ];
    for (const [mode, base] of seedConfigs) {
      for (const lossAggMode of AGG) {
        for (const weights of [false, true]) {
          for (const f32 of [false, true]) {
            const batch = batchOf({ B: 33, T: 41, f32, weights, seed: seed++ });
            const config: PolicyLossConfig = { ...base, ...(lossAggMode ? { lossAggMode } : {}) };
            const before = par.lastTimings;
            const res = await par.policyLoss(mode, batch, config);
            expect(par.lastTimings).not.toBe(before); // ran in parallel
            expectSame(res, policyLoss(mode, batch, config));
          }
        }
      }
    }
  });

  it('runs eighty-twenty (the seed DAPO mode) with the reference selection, bit for bit, every aggregation mode', async () => {
    let seed = 300;
    for (const lossAggMode of AGG) {
      for (const weights of [false, true]) {
        for (const f32 of [false, true]) {
          const b = batchOf({ B: 41, T: 47, f32, weights, seed: seed++ });
          const rnd = mulberry32(seed);
          // quantised entropies: many ties at the cut, NaN garbage at masked positions
          const m = b.responseMask as Float64Array | Float32Array;
          const ent = f32 ? new Float32Array(41 * 47) : new Float64Array(41 * 47);
          for (let k = 0; k < ent.length; k++) ent[k] = m[k] !== 0 ? Math.floor(rnd() * 9) / 4 : Number.NaN;
          const batch = { ...b, entropy: ent };
          const config = { ...DAPO, entropyTopRatio: 0.3, ...(lossAggMode ? { lossAggMode } : {}) };
          const before = par.lastTimings;
          const res = await par.policyLoss('eighty-twenty', batch, config);
          expect(par.lastTimings).not.toBe(before); // ran in parallel
          expectSame(res, policyLoss('eighty-twenty', batch, config));
        }
      }
    }
    // its errors are the reference's: non-finite entropy at a valid position, no entropy at all
    const b = batchOf({ B: 20, T: 20, seed: 9 });
    const ent = new Float64Array(400).fill(1);
    ent[(b.responseMask as Float64Array).indexOf(1)] = Number.POSITIVE_INFINITY;
    for (const batch of [{ ...b, entropy: ent }, b]) {
      const ref = await errorOf(() => policyLoss('eighty-twenty', batch, DAPO));
      const got = await errorOf(() => par.policyLoss('eighty-twenty', batch, DAPO));
      expect(got).toBeInstanceOf((ref as Error).constructor);
      expect((got as Error).message).toBe((ref as Error).message);
    }
  });

  it('ignores an entropy field where the mode does not read it, but checks it as the reference does', async () => {
    const b = batchOf({ B: 12, T: 30, weights: true, seed: 22 });
    const withEnt = { ...b, entropy: b.oldLogProbs };
    const before = par.lastTimings;
    expectSame(await par.policyLoss('vanilla', withEnt, DAPO), policyLoss('vanilla', withEnt, DAPO));
    expect(par.lastTimings).not.toBe(before); // ran in parallel
    const ent = Float64Array.from(b.oldLogProbs as Float64Array);
    ent[(b.responseMask as Float64Array).indexOf(1)] = Number.NaN;
    const bad = { ...b, entropy: ent };
    const ref = await errorOf(() => policyLoss('sapo', bad, {}));
    const got = await errorOf(() => par.policyLoss('sapo', bad, {}));
    expect((got as Error).message).toBe((ref as Error).message);
  });

  it('kl_cov: the reference ConfigError for klCovRatio <= 0, after the same validation', async () => {
    const b = batchOf({ B: 40, T: 20, seed: 77 });
    const ref = await errorOf(() => policyLoss('kl_cov', b, { klCovRatio: 0 }));
    const got = await errorOf(() => par.policyLoss('kl_cov', b, { klCovRatio: 0 }));
    expect(got).toBeInstanceOf(ConfigError);
    expect((got as Error).message).toBe((ref as Error).message);
  });

  it('falls back to the reference for other modes, nested inputs, and small batches', async () => {
    const b = batchOf({ B: 12, T: 30, weights: true, seed: 21 });
    for (const mode of ['gpg', 'cispo']) {
      const withEnt = { ...b, entropy: b.oldLogProbs };
      const ref = policyLoss(mode, withEnt, DAPO);
      const res = await par.policyLoss(mode, withEnt, DAPO);
      expect(res.loss).toBe(ref.loss);
      expect(Array.from(res.grad)).toEqual(Array.from(ref.grad));
      expect(res.metrics).toEqual(ref.metrics);
    }
    const nested: PolicyLossBatch = {
      oldLogProbs: [[-1, -2, -3]],
      logProbs: [[-1.1, -1.5, -3]],
      advantages: [[1, -1, 0.5]],
      responseMask: [[1, 1, 0]],
    };
    expect(await par.policyLoss('vanilla', nested, DAPO)).toEqual(policyLoss('vanilla', nested, DAPO));
    const small = createParallelPolicyLoss({ minTokens: 1 << 16 });
    try {
      const into = new Float64Array(360);
      const res = await small.policyLoss('vanilla', b, DAPO, { gradInto: into });
      expect(res.grad).toBe(into);
      expect(small.lastTimings).toBeNull(); // the reference ran
      const ref = policyLoss('vanilla', b, DAPO);
      expect(res.loss).toBe(ref.loss);
      expect(res.metrics).toEqual(ref.metrics);
    } finally {
      await small.destroy();
    }
    const one = createParallelPolicyLoss({ threads: 1 });
    expect(one.parallel).toBe(false);
    await one.destroy();
  });

  it('lets the process exit, with destroy() and without it (the workers are unref’d)', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const mod = pathToFileURL(join(here, '../src/losses/parallel.ts')).href;
    const tsx = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/loader.mjs')).href;
    const dir = mkdtempSync(join(tmpdir(), 'lumirag-par-'));
    try {
      for (const destroy of [true, false]) {
        const file = join(dir, `exit-${destroy}.mts`);
        writeFileSync(
          file,
          `import { createParallelPolicyLoss } from ${JSON.stringify(mod)};
const p = createParallelPolicyLoss({ minTokens: 64 });
const n = 64 * 32, f = () => Float64Array.from({ length: n }, (_, k) => -((k % 7) + 1) / 3);
const r = await p.policyLoss('vanilla', { oldLogProbs: f(), logProbs: f().map((x) => x + 0.1), advantages: f(), responseMask: new Float64Array(n).fill(1), shape: [64, 32] });
console.log(p.parallel, Number.isFinite(r.loss));
${destroy ? 'await p.destroy();' : ''}
`,
        );
        const t = performance.now();
        const out = spawnSync(process.execPath, ['--import', tsx, file], { encoding: 'utf8', timeout: 20_000 });
        expect(out.status, out.stderr).toBe(0);
        expect(out.stdout.trim()).toBe('true true');
        expect(performance.now() - t).toBeLessThan(20_000);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
