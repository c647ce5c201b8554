/**
 * The WebGPU test engine. Without an adapter the GPU suites are skipped with a written reason, unless
 * LUMIRAG_REQUIRE_GPU=1 (CI, where .ci/run installs lavapipe): then a missing adapter fails the run.
 */
import { expect } from 'vitest';
import { createEngine, type Engine, type EngineOptions, fromVerlConfig, type PolicyLossConfig } from '../../src/index.js';
import type { EnginePolicyLossBatch } from '../../src/gpu/index.js';

/** A WebGPU engine, or null with the reason it could not be created. */
export interface TestEngine {
  engine: Engine | null;
  reason: string;
}

/**
 * Create a WebGPU engine for a test file. No adapter: throws when LUMIRAG_REQUIRE_GPU=1, else returns
 * `{ engine: null, reason }` (log the reason and skip the suite with `describe.skipIf(!engine)`).
 */
export async function getTestEngine(options: EngineOptions = {}): Promise<TestEngine> {
  try {
    const engine = await createEngine({ ...options, backend: 'webgpu' });
    return { engine, reason: engine.reason };
  } catch (err) {
    const reason = `no WebGPU adapter: ${(err as Error).message}`;
    if (process.env.LUMIRAG_REQUIRE_GPU === '1') throw new Error(`LUMIRAG_REQUIRE_GPU=1 but ${reason}`);
    console.warn(`[gpu tests skipped] ${reason} (set LUMIRAG_REQUIRE_GPU=1 to make this a failure)`);
    return { engine: null, reason };
  }
}

/** A policy_loss.json case (the fields the GPU suites read). */
export interface PolicyCase {
  id: string;
  input_id: string;
  loss_mode: string;
  loss_agg_mode: string;
  loss_agg_mode_effective?: string;
  scenario: string;
  config_name: string;
  config: Record<string, unknown>;
  expected: { loss: number; metrics: Record<string, number>; grad_log_prob: number[][] };
  abs_scale: number;
  expect_error?: string;
}

/** An agg_loss.json case. */
export interface AggCase {
  id: string;
  input_id: string;
  loss_agg_mode: string;
  kwargs: Record<string, number>;
  expected: { loss: number; grad_loss_mat: number[][] };
  abs_scale: number;
}

/** The batch of a fixture input record (nested arrays, as a user would pass them). */
export function fixtureBatch(input: Record<string, unknown>): EnginePolicyLossBatch {
  return {
    oldLogProbs: input.old_log_prob as number[][],
    logProbs: input.log_prob as number[][],
    advantages: input.advantages as number[][],
    responseMask: input.response_mask as number[][],
    rolloutIsWeights: (input.rollout_is_weights as number[][] | null) ?? null,
  };
}

/** The config of a fixture case; gspo/sapo/geo_mean keep their own aggregation, as verl does. */
export function fixtureConfig(c: PolicyCase): PolicyLossConfig {
  const { lossMode: _m, ignoredKeys, ...config } = fromVerlConfig(c.config);
  expect(ignoredKeys).toEqual([]);
  if (c.loss_agg_mode_effective === undefined) config.lossAggMode = c.loss_agg_mode as PolicyLossConfig['lossAggMode'];
  return config;
}

/** A deterministic PRNG (mulberry32) for synthetic batches. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A synthetic float32 batch: right-padded rows, per-sequence advantages, small log-ratios (some clipped). */
export function syntheticBatch(B: number, T: number, seed = 1): { olp: Float32Array; lp: Float32Array; adv: Float32Array; mask: Float32Array; w: Float32Array; ent: Float32Array } {
  const r = rng(seed);
  const n = B * T;
  const olp = new Float32Array(n);
  const lp = new Float32Array(n);
  const adv = new Float32Array(n);
  const mask = new Float32Array(n);
  const w = new Float32Array(n);
  const ent = new Float32Array(n);
  for (let i = 0; i < B; i++) {
    const L = i % 7 === 6 ? 0 : 1 + Math.floor(r() * T);
    const a = r() * 2 - 1;
    for (let j = 0; j < T; j++) {
      const k = i * T + j;
      olp[k] = -r() * 3;
      lp[k] = olp[k]! + (r() - 0.5) * 0.8;
      adv[k] = a + (r() - 0.5) * 0.2;
      mask[k] = j < L ? 1 : 0;
      w[k] = 0.5 + r();
      ent[k] = r() * 4;
    }
  }
  return { olp, lp, adv, mask, w, ent };
}
