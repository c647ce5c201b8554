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

/** Options of {@link entropyFromLogitsGpu} and {@link entropyFromLogitsGpuBuffer}. */
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

/** Result of {@link entropyFromLogitsGpuBuffer}. */
export interface EntropyGpuBufferResult {
  /**
   * H at each position as `B·T` float32 on the GPU (`STORAGE | COPY_SRC`, size ≥ 4·B·T rounded up to 16 bytes),
   * for further GPU work. The caller owns it (`destroy()`). (The engine's eighty-twenty selection runs on the
   * host and takes host entropy: use {@link entropyFromLogitsGpu} for it.)
   */
  entropyBuffer: GPUBuffer;
}

type Gpu = NonNullable<Engine['gpu']>;

/** Logits for the kernel: host values (uploaded chunk by chunk) or a caller's GPU buffer (bound in windows). */
type LogitsSource = { host: ArrayLike<number> } | { buffer: GPUBuffer };


function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function isGpuBuffer(x: unknown): x is GPUBuffer {
  return typeof x === 'object' && x !== null && typeof (x as GPUBuffer).mapAsync === 'function' && typeof (x as GPUBuffer).size === 'number';
}

function scratchF32(gpu: Gpu, src: ArrayLike<number>, from: number, n: number): { data: Float32Array; scratch: boolean } {
  if (src instanceof Float32Array) return { data: src.subarray(from, from + n), scratch: false };
  const a = gpu.pool.acquireHost(n);
  for (let k = 0; k < n; k++) a[k] = src[from + k] as number;
  return { data: a, scratch: true };
}

function temperatureOf(options: EntropyGpuOptions): number {
  const t = options.temperature ?? 1;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new ConfigError(`temperature must be a finite number > 0, got ${String(t)}`, 'temperature');
  return t;
}

function resolveSource(logits: LogitsInput | GPUBuffer, shape: Shape3D | undefined): { src: LogitsSource; shape: Shape3D } {
  if (!isGpuBuffer(logits)) {
    const r = toLogits(logits, shape);
    return { src: { host: r.data }, shape: r.shape };
  }
  if (!shape) throw new ShapeError('logits: a GPU buffer needs a shape [B, T, V]', 'shape');
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`logits: shape must be three non-negative integers, got [${shape.join(', ')}]`, 'shape');
  }
  if ((logits.usage & BufferUsage.STORAGE) === 0) throw new ConfigError('logits: a GPU buffer input needs STORAGE usage', 'logits');
  const bytes = roundUp(shape[0] * shape[1] * shape[2] * 4, 16);
  if (logits.size < bytes) {
    throw new ShapeError(`logits: GPU buffer of ${logits.size} bytes is smaller than 4·B·T·V rounded up to 16 bytes (${bytes})`, 'logits');
  }
  return { src: { buffer: logits }, shape };
}

/**
 * Run shaders/entropy.wgsl over every position; returns the pooled output buffer (`N` floats) after submitting.
 * Positions are processed in chunks that fit one storage binding: host logits go through one pooled input
 * buffer, chunk after chunk; a caller's buffer is bound in windows whose offsets respect
 * `minStorageBufferOffsetAlignment`.
 */
async function dispatchEntropy(gpu: Gpu, src: LogitsSource, shape: Shape3D, temperature: number): Promise<GPUBuffer> {
  const [B, T, V] = shape;
  const N = B * T;
  if (V === 0) throw new ShapeError('logits: the vocabulary dimension V is 0', 'logits');
  gpu.checkAlive();
  const alignFloats = Math.max(1, gpu.device.limits.minStorageBufferOffsetAlignment / 4);
  const q = alignFloats / gcd(V, alignFloats);
  const perChunk = Math.floor(gpu.maxBindingFloats / V / q) * q;
  if (perChunk < 1) {
    throw new ShapeError(`logits: V = ${V} is too large for the device's storage binding (${gpu.maxBindingFloats} floats)`, 'logits');
  }
  const vec4 = V % 4 === 0;
  const pipeline = await gpu.pipeline('entropy', gpu.source(['entropy']), { VEC4: vec4 });
  const out = gpu.output(N * 4, 'lumirag-entropy');
  const chunkBytes = roundUp(Math.min(N, perChunk) * V * 4, 16);
  const staging: GPUBuffer[] = [];
  if ('host' in src) staging.push(gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST, chunkBytes, 'lumirag-logits'));
  const uniforms: GPUBuffer[] = [];
  try {
    for (let first = 0, c = 0; first < N; first += perChunk, c++) {
      const n = Math.min(perChunk, N - first);
      let buf: GPUBuffer;
      let offset = 0;
      if ('host' in src) {
        buf = staging[0] as GPUBuffer;
        if (c > 0) {
          // Let the previous chunk finish first (chunks are serial through one input buffer): Dawn reuses its
          // upload staging for a large writeBuffer only once the GPU is done with it, and a fresh one costs a first
          // touch of every page (~400 ms per 128 MiB on lavapipe; measured 10-15 → 3 ns/logit at V = 152,064).
          await gpu.wait(gpu.device.queue.onSubmittedWorkDone(), perChunk * V);
        }
        const chunk = scratchF32(gpu, src.host, first * V, n * V);
        gpu.device.queue.writeBuffer(buf, 0, chunk.data.buffer, chunk.data.byteOffset, n * V * 4);
        if (chunk.scratch) gpu.pool.releaseHost(chunk.data);
      } else {
        buf = src.buffer;
        offset = first * V * 4;
      }
      const size = roundUp(n * V * 4, 16);
      const grid = gpu.grid(n);
      const u = gpu.uniform({ n, T: V, base: first, groupsX: grid.x, coef0: 1 / temperature });
      uniforms.push(u);
      const enc = gpu.device.createCommandEncoder();
      gpu.dispatch(enc, pipeline, [{ buffer: u }, { buffer: buf, offset, size }, { buffer: out }, { buffer: buf, offset, size }], grid);
      gpu.device.queue.submit([enc.finish()]);
    }
    return out;
  } catch (err) {
    gpu.pool.release(out);
    throw err;
  } finally {
    for (const b of staging) gpu.pool.release(b);
    for (const u of uniforms) gpu.pool.release(u);
  }
}

/**
 * verl's `entropy_from_logits` on WebGPU (float32, online log-sum-exp; softmax is never written to memory), read
 * back to the host. Batches larger than one storage binding run as several dispatches over chunks of positions.
 * The logits are not checked for NaN/Infinity on this path (a NaN logit gives a NaN entropy at its position).
 *
 * @param engine - an engine (or anything with `gpu`); with `gpu === null` the float64 CPU reference runs
 * @param logits - `[B][T][V]`, nested or flat (a `Float32Array` is uploaded without conversion), or a `GPUBuffer`
 *   of `B·T·V` float32, row-major (STORAGE usage, size ≥ 4·B·T·V rounded up to 16 bytes; webgpu backend only)
 * @param shape - `[B, T, V]` for flat logits and GPU buffers
 */
export async function entropyFromLogitsGpu(
  engine: Pick<Engine, 'gpu'>,
  logits: LogitsInput | GPUBuffer,
  shape?: Shape3D,
  options: EntropyGpuOptions = {},
): Promise<EntropyGpuResult> {
  const gpu = engine.gpu;
  if (!gpu) {
    if (isGpuBuffer(logits)) throw new ConfigError('logits: GPU buffers need the webgpu backend', 'logits');
    return { entropy: entropyFromLogits(logits, shape, { temperature: options.temperature }).entropy, backend: 'cpu' };
  }
  const t = temperatureOf(options);
  const { src, shape: sh } = resolveSource(logits, shape);
  const N = sh[0] * sh[1];
  if (N === 0) return { entropy: new Float32Array(0), backend: 'webgpu' };
  const out = await dispatchEntropy(gpu, src, sh, t);
  try {
    // the read-back waits without Dawn's busy poll for large work (GpuContext.wait)
    const [h] = await gpu.readback(gpu.device.createCommandEncoder(), [{ buffer: out, bytes: N * 4 }], N * sh[2]);
    return { entropy: h as Float32Array, backend: 'webgpu' };
  } finally {
    gpu.pool.release(out);
  }
}

/**
 * {@link entropyFromLogitsGpu} with the result left on the GPU (no readback), for pipelines that keep working on
 * the GPU. Needs the webgpu backend.
 *
 * @param engine - a WebGPU engine
 * @param logits - host logits or a `GPUBuffer` of `B·T·V` float32
 * @param shape - `[B, T, V]` for flat logits and GPU buffers
 * @throws ConfigError on an engine without a GPU
 */
export async function entropyFromLogitsGpuBuffer(
  engine: Pick<Engine, 'gpu'>,
  logits: LogitsInput | GPUBuffer,
  shape?: Shape3D,
  options: EntropyGpuOptions = {},
): Promise<EntropyGpuBufferResult> {
  const gpu = engine.gpu;
  if (!gpu) throw new ConfigError('entropyFromLogitsGpuBuffer needs the webgpu backend', 'backend');
  const t = temperatureOf(options);
  const { src, shape: sh } = resolveSource(logits, shape);
  const out = await dispatchEntropy(gpu, src, sh, t);
  gpu.pool.detach(out);
  return { entropyBuffer: out };
}
