/**
 * Entropy on WebGPU (shaders/entropy.wgsl): every entropy_from_logits case of entropy.json at the float32 rule
 * (GPU_TOL), and Qwen's vocabulary (V = 152,064) for 2,048 positions against the float64 CPU reference.
 * Without an adapter the suite is skipped with the reason (LUMIRAG_REQUIRE_GPU=1 fails instead).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { entropyFromLogits, entropyFromLogitsGpu } from '../src/index.js';
import { expectArrayClose, flat, GPU_TOL, loadFixture } from './helpers/fixtures.js';
import { getTestEngine } from './helpers/gpu.js';

interface EntInput {
  shape: [number, number, number];
  logits: number[][][];
}
interface EntCase {
  id: string;
  input_id: string;
  function: string;
  expected: { entropy?: number[][] };
}
const fx = loadFixture<{ inputs: Record<string, EntInput>; cases: EntCase[] }>('entropy.json');
const { engine, reason } = await getTestEngine();

/**
 * Deterministic float32 logits: one LCG noise block shared by every position, shifted, scaled and given a peak
 * per position (generating 311M independent values would cost more than the kernels under test).
 */
function qwenLogits(N: number, V: number, seed: number): Float32Array {
  const noise = new Float32Array(V + 8192);
  let a = seed >>> 0;
  for (let k = 0; k < noise.length; k++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    noise[k] = a / 4294967296 - 0.5;
  }
  const z = new Float32Array(N * V);
  for (let p = 0; p < N; p++) {
    const scale = 1 + (p % 7);
    const shift = (p * 7919) % 8192;
    const row = z.subarray(p * V, p * V + V);
    for (let v = 0; v < V; v++) row[v] = (noise[shift + v] as number) * scale;
    if (p % 5 === 0) row[(p * 104729) % V] = 30; // some peaked positions
  }
  return z;
}

describe.skipIf(!engine)(`entropy on WebGPU (${reason})`, () => {
  afterAll(() => engine?.destroy());
  const cases = fx.cases.filter((c) => c.function === 'entropy_from_logits');
  it('has the 7 entropy_from_logits cases', () => expect(cases.length).toBe(7));
  for (const c of cases) {
    it(c.id, async () => {
      const inp = fx.inputs[c.input_id] as EntInput;
      const r = await entropyFromLogitsGpu(engine!, inp.logits);
      expect(r.backend).toBe('webgpu');
      expectArrayClose(r.entropy, flat(c.expected.entropy), GPU_TOL, `${c.id} entropy`);
    });
  }

  it('odd V (scalar path) and temperature agree with the CPU reference', async () => {
    const z = qwenLogits(40, 1001, 3);
    const cpu = entropyFromLogits(z, [4, 10, 1001], { temperature: 0.7 });
    const gpu = await entropyFromLogitsGpu(engine!, z, [4, 10, 1001], { temperature: 0.7 });
    expectArrayClose(gpu.entropy, cpu.entropy, GPU_TOL, 'V=1001');
  });

  it('V = 152,064 (Qwen), 2,048 positions over several storage bindings: WebGPU agrees with the CPU float64 reference', async () => {
    const B = 8;
    const T = 256;
    const V = 152064;
    const z = qwenLogits(B * T, V, 11);
    let t0 = performance.now();
    const gpu = await entropyFromLogitsGpu(engine!, z, [B, T, V]);
    const tGpu = performance.now() - t0;
    t0 = performance.now();
    const cpu = entropyFromLogits(z, [B, T, V]);
    const tCpu = performance.now() - t0;
    console.info(`entropy V=${V}, ${B * T} positions: WebGPU ${tGpu.toFixed(0)} ms, CPU float64 ${tCpu.toFixed(0)} ms`);
    expect(gpu.backend).toBe('webgpu');
    expectArrayClose(gpu.entropy, cpu.entropy, GPU_TOL, 'V=152064');
    // a few sanity values: entropy ≤ ln V, peaked positions far below it
    expect(Math.max(...cpu.entropy)).toBeLessThanOrEqual(Math.log(V));
    expect(cpu.entropy[0]).toBeLessThan(Math.log(V) - 1);
  }, 60_000);
});

describe('entropyFromLogitsGpu without a GPU', () => {
  it('runs the CPU reference when engine.gpu is null', async () => {
    const r = await entropyFromLogitsGpu({ gpu: null }, [[[0, 0, 0, 0]]]);
    expect(r.backend).toBe('cpu');
    expect(r.entropy[0]).toBeCloseTo(Math.log(4), 15);
  });
});
