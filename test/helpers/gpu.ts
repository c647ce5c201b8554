/**
 * The WebGPU test engine. Without an adapter the GPU suites are skipped with a written reason, unless
 * LUMIRAG_REQUIRE_GPU=1 (CI, where .ci/run installs lavapipe): then a missing adapter fails the run.
 */
import { createEngine, type Engine, type EngineOptions, mulberry32 } from '../../src/index.js';

export { type AggCase, fixtureBatch, fixtureConfig, type PolicyCase } from './fixtures.js';

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

/** A deterministic PRNG for synthetic batches (the package's mulberry32). */
export const rng = mulberry32;

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
