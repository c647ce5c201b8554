/**
 * {@link GpuContext}: one device with its pipeline cache, buffer pool and dispatch helpers. The WebGPU engine
 * is built on it, and so can further kernels (see the extension notes in `engine.ts`).
 *
 * @module
 */
import { ConfigError, GpuDeviceLostError, GpuError } from '../errors.js';
import { BufferPool, BufferUsage, MapMode, roundUp } from './buffers.js';
import type { AcquiredDevice } from './device.js';
import { type PipelineConstants, PipelineCache } from './pipelineCache.js';
import { SHADER_SOURCES } from './shaderSources.generated.js';

/** Invocations per workgroup of every kernel in shaders/. */
export const WORKGROUP_SIZE = 64;
/**
 * vec4 loads per invocation of the token pass on software adapters (lavapipe, SwiftShader), where fewer, larger
 * workgroups amortise the per-workgroup cost (128 × 4 × 64 = 32,768 tokens per workgroup). Timestamp queries on
 * lavapipe, DAPO token pass at 2^23 tokens: VPT 16 / 32 / 64 / 128 / 256 took 3.0 / 2.3 / 1.9 / 1.75 / 2.3 ns/token.
 */
export const VEC4_PER_INVOCATION_SOFTWARE = 128;
/** vec4 loads per invocation on hardware GPUs (4096 tokens per workgroup: enough workgroups to fill the GPU). */
export const VEC4_PER_INVOCATION_GPU = 16;
/**
 * Tokens per upload piece of a streamed token pass (the engine's `streamPieceTokens` default): host log-probs and
 * advantages go up piece by piece, each piece's dispatch submitted at once. On lavapipe at 2^23 tokens, end to
 * end, 2 / 4 / 8 pieces all beat one upload by 10–15 % (the upload's memcpy overlaps the kernel).
 */
export const STREAM_PIECE_TOKENS = 1 << 21;
/** A region of a GPU buffer to read back ({@link GpuContext.readback}): `bytes` from byte `offset` (default 0), into `into` when given. */
export interface ReadRegion {
  /** The buffer to read (`COPY_SRC` usage). */
  buffer: GPUBuffer;
  /** Bytes to read (a multiple of 4). */
  bytes: number;
  /** Where the values land (else a fresh Float32Array). */
  into?: Float32Array;
  /** First byte in `buffer` (a multiple of 4; default 0). */
  offset?: number;
}
/** Bytes of the `Params` uniform block of shaders/common.wgsl. */
export const PARAMS_BYTES = 80;

/** The values of shaders/common.wgsl's `Params` block (unset fields are 0). */
export interface KernelParams {
  /** Tokens in this chunk (token pass) / rows in this chunk (row pass). */
  n?: number;
  /** Global index of the chunk's first token / row. */
  base?: number;
  /** Padded response length. */
  T?: number;
  /** First workgroup of the chunk, whose partial-sum slots follow (token pass) / element shift of the binding window (row pass). */
  wgOffset?: number;
  /** Workgroups along x of the 2D dispatch. */
  groupsX?: number;
  /** Workgroups that carry work. */
  nwg?: number;
  /** Rows of the whole batch. */
  B?: number;
  /** vec4 index in the rows buffer of shaders/maskcount.wgsl's valid-token count (token pass with `COUNT_COEF`). */
  countAt?: number;
  /** 1 − ε_low. */
  lo?: number;
  /** 1 + ε_high. */
  hi?: number;
  /** Dual-clip constant. */
  c?: number;
  /** Aggregation coefficient shared by every row (token-mean, sum-norm). */
  coef0?: number;
  /** SAPO τ for A > 0. */
  tauPos?: number;
  /** SAPO τ for A ≤ 0. */
  tauNeg?: number;
  /** kl_cov's ppo_kl_coef. */
  klCoef?: number;
  /** geo_mean's log-space lower bound ε_low. */
  epsLow?: number;
  /** geo_mean's log-space upper bound ε_high. */
  epsHigh?: number;
  /** eighty-twenty on the GPU: the cut's key (shaders/common.wgsl `sortKey`), a u32. */
  cutKey?: number;
  /** eighty-twenty on the GPU: the highest global index of the selected ties at the cut, a u32. */
  cutIdx?: number;
  /** 1 when T % 4 == 0: the token pass looks up each vec4's row once (it is the same for all four tokens). */
  rowVec4?: number;
}

/** A 2D grid covering `nwg` workgroups within the per-dimension limit. */
export interface Grid {
  /** Workgroups along x. */
  x: number;
  /** Workgroups along y. */
  y: number;
}

/** Work (tokens, logits) from which a read-back waits with {@link gentleWait} rather than a plain await. */
export const GENTLE_WAIT_MIN_WORK = 1 << 18;

/**
 * Node (Dawn): while a map is pending, dawn.node re-queues a `setImmediate` tick that processes GPU events, so the
 * JS thread spins and takes a core from the GPU's work (on lavapipe, a CPU adapter, timestamp queries showed the
 * DAPO token pass at 2^23 tokens ~4.1 ns/token with the thread spinning against ~2.3 without). This waits instead
 * by blocking the thread for 1 ms at a time (`Atomics.wait`: no CPU) between single event-loop turns, so Dawn's
 * tick runs about once per millisecond and the event loop still turns every millisecond. Null where that is
 * unavailable or not needed (browsers: no busy poll, and the main thread may not block).
 */
const gentleWait: (<T>(p: Promise<T>) => Promise<T>) | null = (() => {
  const g = globalThis as { process?: { versions?: { node?: string } }; setImmediate?: (f: () => void) => unknown };
  if (!g.process?.versions?.node || typeof g.setImmediate !== 'function' || typeof SharedArrayBuffer !== 'function') return null;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  try {
    Atomics.wait(cell, 0, 0, 0); // a thread that may not block (a browser-like main thread) throws here
  } catch {
    return null;
  }
  const turn = (): Promise<void> => new Promise((r) => g.setImmediate?.(r));
  return async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    const settled = p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    while (!done) {
      Atomics.wait(cell, 0, 0, 1);
      await turn();
    }
    await settled;
    return p;
  };
})();

/**
 * One WebGPU device and the machinery every kernel shares. Obtain it from a WebGPU engine (`engine.gpu`).
 *
 * - {@link GpuContext.source} assembles WGSL from the fragments in shaders/ (adding `enable subgroups;` and the
 *   subgroup or barrier-tree reduction as the device allows);
 * - {@link GpuContext.pipeline} compiles once per (name, constants) and caches;
 * - {@link GpuContext.pool} lends buffers and host scratch arrays;
 * - {@link GpuContext.grid}, {@link GpuContext.uniform}, {@link GpuContext.readback} do the rest.
 */
export class GpuContext {
  /** The device. */
  readonly device: GPUDevice;
  /** Whether subgroup reductions are compiled in. */
  readonly subgroups: boolean;
  /** Adapter description. */
  readonly description: string;
  /** Pipelines compiled once per (kernel, constants). */
  readonly pipelines: PipelineCache;
  /** Reused GPU buffers and host scratch. */
  readonly pool: BufferPool;
  /** Elements of f32 one storage binding may hold. */
  readonly maxBindingFloats: number;
  /** The device's `maxComputeWorkgroupsPerDimension`. */
  readonly maxGroupsPerDim: number;
  /** A 16-byte storage buffer bound where a kernel's optional input is absent. */
  readonly dummy: GPUBuffer;
  /** vec4 per invocation of the token pass (the `VPT` override): 128 on software adapters, 16 on GPUs. */
  readonly vec4PerInvocation: number;
  /** Tokens per workgroup of the token pass: 64 invocations × 4 × {@link GpuContext.vec4PerInvocation}. */
  readonly tokensPerWorkgroup: number;
  /**
   * Whether the token pass and the row pass avoid workgroup barriers (default: on software adapters, where a barrier
   * makes llvmpipe compile a shader as a coroutine): the token pass writes its partial sums per invocation
   * (shaders/tokenpass.wgsl `LANE_SLOTS`) and the row pass runs one row per invocation with vec4 loads
   * (shaders/rowreduce.wgsl `ROW_PER_LANE`). On GPUs they reduce per workgroup (64× fewer partials to read back,
   * coalesced row reads).
   */
  readonly barrierFree: boolean;
  /** Partial-sum slot pairs per workgroup of the token pass: 64 when {@link GpuContext.barrierFree}, else 1. */
  readonly slotsPerWorkgroup: number;
  private readonly ownsDevice: boolean;
  private lostInfo: GPUDeviceLostInfo | null = null;
  private destroyed = false;
  /**
   * @param acquired - the device from {@link acquireDevice}
   * @param maxBindingBytes - smaller binding windows than the device allows (testing the chunked dispatches)
   * @param vec4PerInvocation - vec4 per invocation of the token pass (default by adapter kind)
   * @param barrierFree - kernels without workgroup barriers ({@link GpuContext.barrierFree}; default: on software adapters)
   */
  constructor(acquired: AcquiredDevice, maxBindingBytes?: number, vec4PerInvocation?: number, barrierFree?: boolean) {
    this.device = acquired.device;
    this.subgroups = acquired.subgroups;
    this.description = acquired.description;
    this.ownsDevice = acquired.ownsDevice;
    this.pipelines = new PipelineCache(this.device);
    this.pool = new BufferPool(this.device);
    const limit = this.device.limits.maxStorageBufferBindingSize;
    const bytes = maxBindingBytes ? Math.min(limit, Math.max(16384, Math.floor(maxBindingBytes / 16384) * 16384)) : limit;
    this.maxBindingFloats = Math.floor(bytes / 4);
    let vpt = vec4PerInvocation ?? (acquired.software ? VEC4_PER_INVOCATION_SOFTWARE : VEC4_PER_INVOCATION_GPU);
    if (!Number.isInteger(Math.log2(vpt)) || vpt < 1) throw new ConfigError(`vec4PerInvocation must be a power of two, got ${vpt}`, 'vec4PerInvocation');
    while (vpt > 1 && WORKGROUP_SIZE * 4 * vpt > this.maxBindingFloats) vpt /= 2;
    this.vec4PerInvocation = vpt;
    this.tokensPerWorkgroup = WORKGROUP_SIZE * 4 * vpt;
    this.barrierFree = barrierFree ?? acquired.software;
    this.slotsPerWorkgroup = this.barrierFree ? WORKGROUP_SIZE : 1;
    this.maxGroupsPerDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    this.dummy = this.device.createBuffer({ size: 16, usage: BufferUsage.STORAGE, label: 'lumirag-dummy' });
    void this.device.lost.then((info) => {
      this.lostInfo = info;
    });
  }

  /** Throw {@link GpuDeviceLostError} if the device was lost (or the context destroyed). */
  checkAlive(): void {
    if (this.destroyed) throw new GpuDeviceLostError('the engine was destroyed; create a new one', 'destroyed');
    if (this.lostInfo) {
      throw new GpuDeviceLostError(
        `the GPU device was lost (${this.lostInfo.reason}: ${this.lostInfo.message || 'no message'}); create a new engine`,
        this.lostInfo.reason,
      );
    }
  }

  /** Whether the device has been lost. */
  get lost(): boolean {
    return this.lostInfo !== null;
  }

  /**
   * WGSL of a kernel: `[enable subgroups;]` + common.wgsl + the reduction fragment + `fragments` (file names in
   * shaders/ without `.wgsl`, e.g. `['vanilla', 'tokenpass']`). Extra WGSL text may be passed in `extra`.
   */
  source(fragments: readonly string[], extra = ''): string {
    const parts: string[] = [];
    if (this.subgroups) parts.push('enable subgroups;');
    parts.push(SHADER_SOURCES.common as string);
    parts.push(SHADER_SOURCES[this.subgroups ? 'reduce_subgroup' : 'reduce_tree'] as string);
    for (const f of fragments) {
      const s = SHADER_SOURCES[f];
      if (s === undefined) throw new GpuError(`no shader fragment shaders/${f}.wgsl`);
      parts.push(s);
    }
    if (extra) parts.push(extra);
    return parts.join('\n');
  }

  /**
   * The cached pipeline `name` (compiled from `code` with `constants` on first use). `code` may be a function,
   * called only when the pipeline is compiled.
   */
  pipeline(name: string, code: string | (() => string), constants: PipelineConstants = {}): Promise<GPUComputePipeline> {
    this.checkAlive();
    return this.pipelines.get(`${name}${this.subgroups ? '' : ':tree'}`, code, constants);
  }

  /**
   * Encode one compute dispatch: bind `resources` as bindings 0, 1, 2, … of group 0 (the layout the pipeline
   * declares), then dispatch `grid`. Every kernel of lumirag-rl is dispatched through this.
   */
  dispatch(enc: GPUCommandEncoder, pipeline: GPUComputePipeline, resources: readonly GPUBindingResource[], grid: Grid): void {
    const bind = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((resource, binding) => ({ binding, resource })),
    });
    const prof = this.profiler;
    let timestampWrites: GPUComputePassTimestampWrites | undefined;
    if (prof && prof.used < prof.max) {
      timestampWrites = { querySet: prof.querySet, beginningOfPassWriteIndex: 2 * prof.used, endOfPassWriteIndex: 2 * prof.used + 1 };
      prof.used++;
    } else if (prof) prof.dropped++;
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(grid.x, grid.y);
    pass.end();
  }

  private profiler: { querySet: GPUQuerySet; max: number; used: number; dropped: number } | null = null;

  /** Whether the device can time kernels ({@link GpuContext.profileStart}): it has the `timestamp-query` feature. */
  get canProfile(): boolean {
    return this.device.features.has('timestamp-query');
  }

  /**
   * Start timing every compute pass dispatched from now on (up to `maxPasses`) with timestamp queries, for
   * benchmarks: the GPU time of the kernels alone, without submits, waits or read-backs.
   * {@link GpuContext.profileStop} returns the total.
   *
   * @throws ConfigError without the device's `timestamp-query` feature ({@link GpuContext.canProfile})
   */
  profileStart(maxPasses = 256): void {
    if (!this.canProfile) throw new ConfigError("profiling needs the device's 'timestamp-query' feature", 'timestamp-query');
    this.profiler?.querySet.destroy();
    this.profiler = { querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * maxPasses }), max: maxPasses, used: 0, dropped: 0 };
  }

  /**
   * Stop timing ({@link GpuContext.profileStart}) and return the timed passes' total GPU time in nanoseconds, their
   * count, each pass's time in dispatch order (`perPass`, ns), and how many passes went untimed past `maxPasses`.
   * Waits for the GPU.
   */
  async profileStop(): Promise<{ ns: number; passes: number; perPass: number[]; untimed: number }> {
    const prof = this.profiler;
    if (!prof) throw new ConfigError('profileStop without profileStart', 'profile');
    this.profiler = null;
    try {
      if (prof.used === 0) return { ns: 0, passes: 0, perPass: [], untimed: prof.dropped };
      const bytes = 16 * prof.used;
      const resolve = this.device.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
      try {
        const enc = this.device.createCommandEncoder();
        enc.resolveQuerySet(prof.querySet, 0, 2 * prof.used, resolve, 0);
        const [raw] = await this.readback(enc, [{ buffer: resolve, bytes }]);
        const t = new BigUint64Array((raw as Float32Array).buffer, (raw as Float32Array).byteOffset, 2 * prof.used);
        const perPass = Array.from({ length: prof.used }, (_, i) => Number((t[2 * i + 1] as bigint) - (t[2 * i] as bigint)));
        const ns = perPass.reduce((a, x) => a + x, 0);
        return { ns, passes: prof.used, perPass, untimed: prof.dropped };
      } finally {
        resolve.destroy();
      }
    } finally {
      prof.querySet.destroy();
    }
  }

  /** A 2D grid of at least `nwg` workgroups (x ≤ the per-dimension limit). */
  grid(nwg: number): Grid {
    const x = Math.max(1, Math.min(nwg, this.maxGroupsPerDim));
    return { x, y: Math.max(1, Math.ceil(nwg / x)) };
  }

  /** A pooled uniform buffer holding `p` (release it with `pool.release` after the submit). */
  uniform(p: KernelParams): GPUBuffer {
    const ab = new ArrayBuffer(PARAMS_BYTES);
    const u = new Uint32Array(ab);
    const f = new Float32Array(ab);
    u[0] = p.n ?? 0;
    u[1] = p.base ?? 0;
    u[2] = p.T ?? 0;
    u[3] = p.wgOffset ?? 0;
    u[4] = p.groupsX ?? 0;
    u[5] = p.nwg ?? 0;
    u[6] = p.B ?? 0;
    u[7] = p.countAt ?? 0;
    f[8] = p.lo ?? 0;
    f[9] = p.hi ?? 0;
    f[10] = p.c ?? 0;
    f[11] = p.coef0 ?? 0;
    f[12] = p.tauPos ?? 0;
    f[13] = p.tauNeg ?? 0;
    f[14] = p.klCoef ?? 0;
    f[15] = p.epsLow ?? 0;
    f[16] = p.epsHigh ?? 0;
    u[17] = p.cutKey ?? 0;
    u[18] = p.cutIdx ?? 0;
    u[19] = p.rowVec4 ?? 0;
    const buf = this.pool.acquire(BufferUsage.UNIFORM | BufferUsage.COPY_DST, PARAMS_BYTES, 'lumirag-params');
    this.device.queue.writeBuffer(buf, 0, ab);
    return buf;
  }

  /** A pooled upload-only storage buffer holding `data` (`STORAGE | COPY_DST`, size rounded up to 16 bytes). */
  upload(data: Float32Array, length = data.length): GPUBuffer {
    const buf = this.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST, roundUp(Math.max(length, 4) * 4, 16), 'lumirag-input');
    if (length > 0) this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, length * 4);
    return buf;
  }

  /** A pooled storage buffer kernels write (`STORAGE | COPY_SRC`). */
  output(bytes: number, label = 'lumirag-output'): GPUBuffer {
    return this.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_SRC, roundUp(Math.max(bytes, 16), 16), label);
  }

  /**
   * Copy `regions` of GPU buffers (`bytes` from byte `offset`, default 0) into one pooled staging buffer, submit `encoder`, wait for the GPU and return
   * a copy of each region as a Float32Array (`into[i]` when given). In Node, work of at least
   * {@link GENTLE_WAIT_MIN_WORK} waits without Dawn's busy poll (see `gentleWait` in this module).
   *
   * @param tokens - work size (tokens, logits): from {@link GENTLE_WAIT_MIN_WORK} up the wait blocks in 1 ms steps
   * @param kind - no longer used (it named the work for an earlier sleep estimate); accepted for compatibility
   */
  async readback(
    encoder: GPUCommandEncoder,
    regions: readonly ReadRegion[],
    tokens = 0,
    kind = 'default',
  ): Promise<Float32Array[]> {
    return this.readbackStart(encoder, regions, tokens)();
  }

  /**
   * The first half of {@link GpuContext.readback}: encode the copies of `regions` into a pooled staging buffer,
   * submit `encoder` and start mapping. The returned function (call it once) waits for the map and copies the
   * regions out. Between the two, the host is free: a streamed token pass starts a piece's read-back as soon as
   * the piece is submitted and copies it out while the GPU works on the next.
   */
  readbackStart(
    encoder: GPUCommandEncoder,
    regions: readonly ReadRegion[],
    tokens = 0,
  ): () => Promise<Float32Array[]> {
    const offsets: number[] = [];
    let total = 0;
    for (const r of regions) {
      offsets.push(total);
      total += roundUp(r.bytes, 16);
    }
    const staging = this.pool.acquire(BufferUsage.MAP_READ | BufferUsage.COPY_DST, Math.max(total, 16), 'lumirag-staging');
    regions.forEach((r, i) => {
      if (r.bytes > 0) encoder.copyBufferToBuffer(r.buffer, r.offset ?? 0, staging, offsets[i] as number, roundUp(r.bytes, 4));
    });
    this.device.queue.submit([encoder.finish()]);
    const mapped = staging.mapAsync(MapMode.READ, 0, Math.max(total, 16));
    mapped.catch(() => undefined); // awaited (and reported) by the function below
    return async () => {
      try {
        await this.wait(mapped, tokens);
      } catch (err) {
        this.pool.release(staging);
        this.checkAlive();
        throw new GpuError(`reading results back failed: ${(err as Error).message}`);
      }
      const range = staging.getMappedRange(0, Math.max(total, 16));
      const out = regions.map((r, i) => {
        const view = new Float32Array(range, offsets[i] as number, r.bytes / 4);
        const dst = r.into ?? new Float32Array(r.bytes / 4);
        dst.set(view);
        return dst;
      });
      staging.unmap();
      this.pool.release(staging);
      return out;
    };
  }

  /**
   * Await a promise that settles when GPU work is done (a `mapAsync`, `queue.onSubmittedWorkDone()`). In Node, for
   * work (tokens, logits) of at least {@link GENTLE_WAIT_MIN_WORK}, without Dawn's busy poll: the thread blocks in
   * 1 ms steps between event-loop turns instead of spinning on a core the GPU's work needs (on a CPU adapter).
   */
  wait<T>(p: Promise<T>, work = 0): Promise<T> {
    return gentleWait && work >= GENTLE_WAIT_MIN_WORK ? gentleWait(p) : p;
  }

  /** Release every pooled buffer and, when the engine created the device, destroy the device. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pool.destroy();
    this.dummy.destroy();
    if (this.ownsDevice) this.device.destroy();
  }
}
