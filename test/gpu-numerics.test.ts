/**
 * One numerics suite for both backends: every case of policy_loss.json and agg_loss.json through
 * `createEngine({ backend })`, with the fixtures' float64 rule (CPU_TOL) on 'cpu' and the float32 rule
 * (GPU_TOL: rtol 1e-4, atol 1e-5·scale) on 'webgpu'. The GPU exclusions are the one reviewed list below.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine, type LossAggMode } from '../src/index.js';
import { CPU_TOL, expectArrayClose, expectClose, flat, GPU_TOL, loadFixture, type Tolerance } from './helpers/fixtures.js';
import { type AggCase, fixtureBatch, fixtureConfig, getTestEngine, type PolicyCase } from './helpers/gpu.js';

/** A float32 exclusion: which cases (or which of their checks) are not compared on WebGPU, and why. */
export interface GpuExclusion {
  /** What is excluded, for the report. */
  what: string;
  /** Why float32 cannot reproduce it. */
  reason: string;
  /** The cases it applies to. */
  applies: (c: PolicyCase) => boolean;
  /** Only these metric keys are skipped (the loss and gradient are still compared); absent = the whole case. */
  metrics?: readonly string[];
}

/** The reviewed list of float32 exclusions (the fixtures' README, "Tolerance"). Tolerances are never loosened. */
export const GPU_EXCLUSIONS: readonly GpuExclusion[] = [
  {
    what: "scenario 'boundary' (whole case)",
    reason: 'ratios sit exactly on 1−εl, 1+εh, 1 or c as doubles; in float32 exp(d) and 1±ε round differently, so the clip / tie branch (and half or full gradients) flips',
    applies: (c) => c.scenario === 'boundary',
  },
  {
    what: "geo_mean 'spec13' (whole case)",
    reason: 'a log-ratio is −0.19999999999999996 in float64 and −0.20000005 in float32, so a token leaves the log-space band (pg_clipfrac_lower 1/7 vs 2/7, and its gradient)',
    applies: (c) => c.loss_mode === 'geo_mean' && c.scenario === 'spec13',
  },
  {
    what: "strict-inequality metrics of 'extreme' inputs",
    reason: 'log-ratios of exactly ±20 (the clamp edge) and ratios whose L1/L2 or Lc/L3 comparisons are decided by float64 rounding; the clip fractions count strict comparisons',
    applies: (c) => c.scenario === 'extreme',
    metrics: ['actor/pg_clipfrac', 'actor/pg_clipfrac_lower'],
  },
];

const fx = loadFixture<{ inputs: Record<string, Record<string, unknown>>; cases: PolicyCase[] }>('policy_loss.json');
const ax = loadFixture<{ inputs: Record<string, Record<string, unknown>>; cases: AggCase[] }>('agg_loss.json');

const gpu = await getTestEngine();
const cpu = await createEngine({ backend: 'cpu' });
afterAll(() => {
  gpu.engine?.destroy();
  cpu.destroy();
});
if (!gpu.engine) console.warn(`gpu-numerics: the webgpu half is skipped: ${gpu.reason}`);

const backends: { name: string; engine: Engine | null; tol: Tolerance; skip: string | null }[] = [
  { name: 'cpu', engine: cpu, tol: CPU_TOL, skip: null },
  { name: 'webgpu', engine: gpu.engine, tol: GPU_TOL, skip: gpu.engine ? null : gpu.reason },
];

const policyCases = fx.cases.filter((c) => c.expect_error === undefined);

describe.each(backends)('numerics on $name', ({ name, engine, tol, skip }) => {
  describe.skipIf(skip !== null)(`policy_loss.json (${skip ?? 'all cases'})`, () => {
    it.each(policyCases.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
      const excl = name === 'webgpu' ? GPU_EXCLUSIONS.filter((e) => e.applies(c)) : [];
      if (excl.some((e) => e.metrics === undefined)) return; // excluded as a whole: see GPU_EXCLUSIONS
      const skipMetrics = new Set(excl.flatMap((e) => e.metrics ?? []));
      const res = await engine!.policyLoss(c.loss_mode, fixtureBatch(fx.inputs[c.input_id]!), fixtureConfig(c));
      expectClose(res.loss, c.expected.loss, tol, c.abs_scale, 'loss');
      expect(Object.keys(res.metrics).sort()).toEqual(Object.keys(c.expected.metrics).sort());
      for (const [k, v] of Object.entries(c.expected.metrics)) if (!skipMetrics.has(k)) expectClose(res.metrics[k]!, v, tol, 1, k);
      expect(res.grad).toBeInstanceOf(name === 'webgpu' ? Float32Array : Float64Array);
      expectArrayClose(res.grad, flat(c.expected.grad_log_prob), tol, 'grad');
    });
  });

  describe.skipIf(skip !== null)(`agg_loss.json (${skip ?? 'all cases'})`, () => {
    it.each(ax.cases.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
      const inp = ax.inputs[c.input_id]!;
      const k = c.kwargs;
      const gbi = {
        ...(k.dp_size !== undefined ? { dpSize: k.dp_size } : {}),
        ...(k.batch_num_tokens !== undefined ? { batchNumTokens: k.batch_num_tokens } : {}),
        ...(k.global_batch_size !== undefined ? { globalBatchSize: k.global_batch_size } : {}),
        ...(k.loss_scale_factor !== undefined ? { lossScaleFactor: k.loss_scale_factor } : {}),
      };
      const res = await engine!.aggLoss(inp.loss_mat as number[][], inp.loss_mask as number[][], c.loss_agg_mode as LossAggMode, gbi);
      expectClose(res.loss, c.expected.loss, tol, c.abs_scale, 'loss');
      expectArrayClose(res.grad, flat(c.expected.grad_loss_mat), tol, 'grad');
    });
  });
});

describe('GPU_EXCLUSIONS', () => {
  it('excludes few cases, each with a reason', () => {
    const whole = policyCases.filter((c) => GPU_EXCLUSIONS.some((e) => e.metrics === undefined && e.applies(c)));
    for (const e of GPU_EXCLUSIONS) expect(e.reason.length).toBeGreaterThan(20);
    // boundary (all modes) + geo_mean spec13: under 11 % of the cases are skipped as a whole
    expect(whole.length).toBeLessThan(0.11 * policyCases.length);
    expect(whole.every((c) => c.scenario === 'boundary' || (c.loss_mode === 'geo_mean' && c.scenario === 'spec13'))).toBe(true);
  });
});
