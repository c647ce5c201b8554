/**
 * Entropy on WebGPU: shaders/entropy.wgsl, one workgroup per position with an online log-sum-exp over the
 * vocabulary (V up to 152k), built on the engine's {@link GpuContext} (`engine.gpu`). Falls back to the float64
 * CPU reference when the engine has no GPU.
 *
 * @module
 */
import { ConfigError, ShapeError } from '../errors.js';
import { BufferUsage, roundUp } from '../gpu/buffers.js';
import type { Engine } from '../gpu/engine.js';
import { type LogitsInput, type Shape3D, entropyFromLogits, toLogits } from './entropy.js';

/** Options of {@link entropyFromLogitsGpu}. */
export interface EntropyGpuOptions {
  /** Divide the logits by this rollout temperature first (default 1). */
  temperature?: number;
}

/** Result of {@link entropyFromLogitsGpu}. */
export interface EntropyGpuResult {
  /** H at each position, flat `[B·T]`: float32 from WebGPU, float64 from the CPU fallback. */
  entropy: Float32Array | Float64Array;
  /** Which backend computed it. */
  backend: 'webgpu' | 'cpu';
}

/** Running estimate of the kernel's ns per logit, to sleep before the readback (Dawn busy-polls while mapping). */
let nsPerLogit = 2;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function scratchF32(gpu: NonNullable<Engine['gpu']>, src: ArrayLike<number>, from: number, n: number): { data: Float32Array; scratch: boolean } {
  if (src instanceof Float32Array) return { data: src.subarray(from, from + n), scratch: false };
  const a = gpu.pool.acquireHost(n);
  for (let k = 0; k < n; k++) a[k] = src[from + k] as number;
  return { data: a, scratch: true };
}

/**
 * verl's `entropy_from_logits` on WebGPU (float32, online log-sum-exp; softmax is never written to memory).
 * Batches larger than one storage binding run as several dispatches over chunks of positions.
 *
 * @param engine - an engine (or anything with `gpu`); with `gpu === null` the float64 CPU reference runs
 * @param logits - `[B][T][V]`, nested or flat (a `Float32Array` is uploaded without conversion)
 * @param shape - `[B, T, V]` for flat logits
 */
export async function entropyFromLogitsGpu(
  engine: Pick<Engine, 'gpu'>,
  logits: LogitsInput,
  shape?: Shape3D,
  options: EntropyGpuOptions = {},
): Promise<EntropyGpuResult> {
  const gpu = engine.gpu;
  if (!gpu) return { entropy: entropyFromLogits(logits, shape, { temperature: options.temperature }).entropy, backend: 'cpu' };
  const t = options.temperature ?? 1;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new ConfigError(`temperature must be a finite number > 0, got ${String(t)}`, 'temperature');
  const { data, shape: sh } = toLogits(logits, shape);
  const [B, T, V] = sh;
  const N = B * T;
  if (N === 0) return { entropy: new Float32Array(0), backend: 'webgpu' };
  if (V === 0) throw new ShapeError('logits: the vocabulary dimension V is 0', 'logits');
  gpu.checkAlive();
  const perChunk = Math.max(1, Math.floor(gpu.maxBindingFloats / V));
  if (perChunk * V > gpu.maxBindingFloats) {
    throw new ShapeError(`logits: one position (V = ${V}) exceeds the device's storage binding (${gpu.maxBindingFloats} floats)`, 'logits');
  }
  const vec4 = V % 4 === 0;
  const pipeline = await gpu.pipeline('entropy', gpu.source(['entropy']), { VEC4: vec4 });
  const layout = pipeline.getBindGroupLayout(0);
  const out = gpu.output(N * 4, 'lumirag-entropy');
  const chunkFloats = Math.min(N, perChunk) * V;
  const inputs = [gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST, roundUp(chunkFloats * 4, 16), 'lumirag-logits')];
  if (N > perChunk) inputs.push(gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST, roundUp(chunkFloats * 4, 16), 'lumirag-logits'));
  const uniforms: GPUBuffer[] = [];
  try {
    for (let first = 0, c = 0; first < N; first += perChunk, c++) {
      const n = Math.min(perChunk, N - first);
      const buf = inputs[c % inputs.length] as GPUBuffer;
      const chunk = scratchF32(gpu, data, first * V, n * V);
      gpu.device.queue.writeBuffer(buf, 0, chunk.data.buffer, chunk.data.byteOffset, n * V * 4);
      if (chunk.scratch) gpu.pool.releaseHost(chunk.data);
      const grid = gpu.grid(n);
      const u = gpu.uniform({ n, T: V, base: first, groupsX: grid.x, coef0: 1 / t });
      uniforms.push(u);
      const bind = gpu.device.createBindGroup({
        layout,
        entries: [
          { binding: 0, resource: { buffer: u } },
          { binding: 1, resource: { buffer: buf, size: roundUp(n * V * 4, 16) } },
          { binding: 2, resource: { buffer: out } },
          { binding: 3, resource: { buffer: buf, size: roundUp(n * V * 4, 16) } },
        ],
      });
      const enc = gpu.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(grid.x, grid.y);
      pass.end();
      gpu.device.queue.submit([enc.finish()]);
    }
    // Sleep for most of the expected kernel time before mapping (Dawn busy-polls a core while a map is pending).
    // The estimate follows the kernel's time after the submit: when the map still had to wait, that time is
    // known; when it resolved at once the kernel beat the sleep and the estimate is halved.
    const tSubmitted = performance.now();
    const sleepMs = (0.8 * nsPerLogit * N * V) / 1e6;
    if (sleepMs > 2) await sleep(sleepMs);
    const tLook = performance.now();
    const [h] = await gpu.readback(gpu.device.createCommandEncoder(), [{ buffer: out, bytes: N * 4 }]);
    if (N * V >= 1 << 22) {
      const now = performance.now();
      nsPerLogit = now - tLook > 1.5 || sleepMs <= 2 ? ((now - tSubmitted) * 1e6) / (N * V) : nsPerLogit / 2;
    }
    return { entropy: h as Float32Array, backend: 'webgpu' };
  } finally {
    for (const b of inputs) gpu.pool.release(b);
    for (const u of uniforms) gpu.pool.release(u);
    gpu.pool.release(out);
  }
}
