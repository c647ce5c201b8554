/**
 * Entropy on WebGPU (shaders/entropy.wgsl): every entropy_from_logits case of entropy.json at the float32 rule
 * (GPU_TOL), and Qwen's vocabulary (V = 152,064) for 2,048 positions against the float64 CPU reference.
 * Without an adapter the suite is skipped with the reason (LUMIRAG_REQUIRE_GPU=1 fails instead).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, entropyFromLogits, entropyFromLogitsGpu, entropyFromLogitsGpuBuffer, ShapeError } from '../src/index.js';
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

  /** Upload float32 values to a new STORAGE buffer (as a model's logits would already be on the GPU). */
  function gpuBuffer(data: Float32Array): GPUBuffer {
    const dev = engine!.gpu!.device;
    const buf = dev.createBuffer({ size: Math.ceil((data.byteLength || 4) / 16) * 16, usage: 0x80 | 0x08 | 0x04 });
    dev.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  }

  async function readBuffer(buf: GPUBuffer, n: number): Promise<Float32Array> {
    const dev = engine!.gpu!.device;
    const staging = dev.createBuffer({ size: Math.ceil((n * 4) / 16) * 16, usage: 0x01 | 0x08 });
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(buf, 0, staging, 0, staging.size);
    dev.queue.submit([enc.finish()]);
    await staging.mapAsync(0x01);
    const out = new Float32Array(staging.getMappedRange()).slice(0, n);
    staging.destroy();
    return out;
  }

  it('GPU-resident logits in, GPU-resident entropy out (fixture ent006, V = 1000)', async () => {
    const inp = fx.inputs.ent006 as EntInput;
    const exp = flat(cases.find((c) => c.input_id === 'ent006')?.expected.entropy);
    const logitsBuf = gpuBuffer(Float32Array.from(flat(inp.logits)));
    try {
      const host = await entropyFromLogitsGpu(engine!, logitsBuf, inp.shape);
      expectArrayClose(host.entropy, exp, GPU_TOL, 'GPU buffer in');
      const { entropyBuffer } = await entropyFromLogitsGpuBuffer(engine!, logitsBuf, inp.shape);
      expectArrayClose(await readBuffer(entropyBuffer, exp.length), exp, GPU_TOL, 'GPU buffer out');
      entropyBuffer.destroy();
      await expect(entropyFromLogitsGpu(engine!, logitsBuf)).rejects.toThrow(ShapeError);
      await expect(entropyFromLogitsGpuBuffer({ gpu: null }, logitsBuf, inp.shape)).rejects.toThrow(ConfigError);
    } finally {
      logitsBuf.destroy();
    }
  });

  it('a GPU buffer larger than one storage binding is read in aligned windows (V = 152,064, 300 positions)', async () => {
    const V = 152064;
    const z = qwenLogits(300, V, 5);
    const buf = gpuBuffer(z);
    try {
      const gpu = await entropyFromLogitsGpu(engine!, buf, [3, 100, V]);
      const cpu = entropyFromLogits(z, [3, 100, V]);
      expectArrayClose(gpu.entropy, cpu.entropy, GPU_TOL, 'windows');
    } finally {
      buf.destroy();
    }
  }, 30_000);

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
