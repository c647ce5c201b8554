/**
 * `createEngine`: one API over two backends, the float64 CPU reference and WGSL kernels on WebGPU.
 *
 * ```ts
 * const engine = await createEngine({ backend: 'auto' });
 * console.log(engine.backend, engine.reason);          // 'webgpu', 'adapter: llvmpipe ...'
 * const { loss, grad, metrics } = await engine.policyLoss('vanilla', batch, { clipRatioHigh: 0.28 });
 * engine.destroy();                                     // releases the device so Node can exit
 * ```
 *
 * ## How the WebGPU backend computes a policy loss
 * 1. Host: validate shapes, convert inputs to float32 (a caller's `Float32Array` is uploaded as is), and compute
 *    the aggregation's per-row coefficients with {@link aggregationCoefficients} in float64 — every agg mode is
 *    linear, d loss / d ℓ_it = m_it·coef_i. Per-row modes need the row lengths L_i (a host mask: one scan; a
 *    GPU-resident mask: a row-reduction kernel, read back, unless `rowLengths` is given); token-mean over the
 *    batch needs only N = Σ L_i, which shaders/maskcount.wgsl counts on the GPU (the token pass divides by it).
 * 2. Row pass (geo_mean; gspo on GPU-resident inputs: with host inputs the host's mask scan sums its log-ratio):
 *    shaders/rowreduce.wgsl, one workgroup per row on GPUs, one row per invocation with vec4 loads on software
 *    adapters (`barrierFree`). eighty-twenty: shaders/topk.wgsl (a one-pass band select from a sample, else a radix
 *    select).
 * 3. Token pass: shaders/tokenpass.wgsl with the family's `tok` (vanilla.wgsl, …): 64 to 512 tokens per invocation,
 *    vec4 loads, writes coef·w·∂ℓ/∂lp and one slot of partial sums per workgroup (subgroupAdd reductions when
 *    the adapter has `subgroups`, a barrier tree otherwise) or, on software adapters (`barrierFree`), one per
 *    invocation with no reduction at all. Host log-probs and advantages above one piece
 *    (`streamPieceTokens`) upload piece by piece, each piece's pass submitted and its gradient read back at once.
 * 4. Host: add the partial sums in float64 → loss and metrics.
 * Batches above `maxStorageBufferBindingSize` run as several dispatches over binding windows.
 * The selection steps of clip_cov and kl_cov run on the host (src/gpu/selection.ts); eighty-twenty's runs on the GPU
 * (shaders/topk.wgsl, `selectTopK`) except with IS weights or a seq-mean-token-sum / -mean mode (then on the host).
 *
 * ## Extending the engine (further kernels, e.g. GRPO normalisation or entropy)
 * A WebGPU engine exposes its {@link GpuContext} as `engine.gpu`: `gpu.device`, `gpu.source([...fragments])`
 * (adds `enable subgroups;`, shaders/common.wgsl and the `wgReduce` reduction), `gpu.pipeline(name, code,
 * constants)` (compiled once per name and constants), `gpu.pool` (buffers and host scratch, reused),
 * `gpu.uniform(params)`, `gpu.upload(f32)`, `gpu.output(bytes)`, `gpu.grid(nwg)` (2D dispatch) and
 * `gpu.readback(encoder, regions, tokens)` (one staging map; large work waits without Dawn's busy poll, see `GpuContext.wait`).
 * New kernels go in shaders/ (regenerate src/gpu/shaderSources.generated.ts with `npm run shaders`) and new
 * engine methods are plain functions taking `(gpu: GpuContext, ...)`, falling back to the CPU reference
 * when `engine.gpu` is null.
 *
 * @module
 */
import { aggLoss as cpuAggLoss, aggregationCoefficients, MASKED_MEAN_EPS } from '../aggregate.js';
import { checkLossAggMode, type GlobalBatchInfo, type LossAggMode, type PolicyLossConfig, resolvePolicyLossConfig } from '../config/policyLoss.js';
import { ConfigError, GpuDeviceLostError, GpuError, GpuUnavailableError, ShapeError, ValueError } from '../errors.js';
import { BAND_MIN_SAMPLE, BAND_SAMPLE, kthLargest, sampleBand } from '../losses/common.js';
import { getPolicyLoss, policyLoss as cpuPolicyLoss } from '../losses/registry.js';
import { checkRolloutCorrectionConfig, rolloutCorrectionArrays } from '../losses/rolloutCorrection.js';
import { METRIC, type PolicyLossBatch } from '../losses/types.js';
import { checkFiniteAtValid, isNested, type MatrixInput, nestedShape, type Shape2D } from '../matrix.js';
import { mulberry32 } from '../random.js';
import { BufferUsage, roundUp } from './buffers.js';
import { GpuContext, type Grid, type KernelParams, type ReadRegion, STREAM_PIECE_TOKENS, WORKGROUP_SIZE } from './context.js';
import { acquireDevice } from './device.js';
import type { PipelineConstants } from './pipelineCache.js';
import { clipCovCorr, klCovSelection, type SelectionInputs, topEntropyMask } from './selection.js';
import { checkClipCovRatio } from '../losses/clipCov.js';
import { checkKlCovRatio } from '../losses/klCov.js';
import { eightyTwentyCount } from '../losses/eightyTwenty.js';

/** Which backend to use. `'auto'` picks WebGPU when an adapter exists, else the CPU. */
export type BackendChoice = 'webgpu' | 'cpu' | 'auto';

/** Options of {@link createEngine}. */
export interface EngineOptions {
  /** `'webgpu'` (fail with {@link GpuUnavailableError} without an adapter), `'cpu'` or `'auto'` (default). */
  backend?: BackendChoice;
  /** Share a caller's `GPUDevice` (the engine never destroys it). */
  device?: GPUDevice;
  /** Adapter preference when the engine requests one. */
  powerPreference?: GPUPowerPreference;
  /** Compile the barrier-tree reductions even where `subgroups` exists (for testing the fallback). */
  disableSubgroups?: boolean;
  /**
   * Use storage-binding windows of at most this many bytes (a multiple of 16 KiB) instead of the device's
   * `maxStorageBufferBindingSize`: a testing aid that exercises the chunked dispatches on small batches.
   */
  maxBindingBytes?: number;
  /** vec4 loads per invocation of the token pass (a power of two; default 128 on software adapters, 16 on GPUs). */
  vec4PerInvocation?: number;
  /**
   * Kernels without workgroup barriers (default: on software adapters, where a barrier makes llvmpipe compile a shader
   * as a coroutine; off on GPUs): the token pass writes one partial-sum slot pair per invocation instead of reducing
   * each workgroup's, and the row pass (gspo and geo_mean with GPU-resident inputs, a resident mask's lengths) runs
   * one row per invocation with vec4 loads instead of one row per workgroup. Results do not depend on it beyond float
   * rounding.
   */
  barrierFree?: boolean;
  /**
   * Tokens per upload piece when a call's log-probs and advantages are host arrays (default
   * {@link STREAM_PIECE_TOKENS}; rounded to whole workgroups; `0` uploads each input at once). Each piece's token pass
   * is submitted as soon as the piece is uploaded, so the GPU works while the next piece uploads. Results do not
   * depend on it.
   */
  streamPieceTokens?: number;
}

/** A `[B][T]` input of an engine call: host values (as for the CPU functions) or a `GPUBuffer` of float32. */
export type EngineMatrix = MatrixInput | GPUBuffer;

/**
 * A policy-loss batch whose fields may live on the GPU: a `GPUBuffer` of `B·T` float32 values, row-major,
 * with `STORAGE` usage and a size of at least `4·B·T` rounded up to 16 bytes. `shape` is then required.
 */
export interface EnginePolicyLossBatch {
  /** Behaviour-policy log-probs `[B][T]`. */
  oldLogProbs: EngineMatrix;
  /** Current-policy log-probs `[B][T]` (the gradient is taken with respect to these). */
  logProbs: EngineMatrix;
  /** Advantages `[B][T]`. */
  advantages: EngineMatrix;
  /** 0/1 response mask `[B][T]`. */
  responseMask: EngineMatrix;
  /** Rollout IS weights `[B][T]` (ignored by bypass_mode, which computes its own). */
  rolloutIsWeights?: EngineMatrix | null;
  /** Per-token entropy `[B][T]` (eighty-twenty). */
  entropy?: EngineMatrix | null;
  /** `[B, T]`; required for flat arrays and GPU buffers. */
  shape?: Shape2D;
  /**
   * Row lengths L_i = Σ_t m_it, when the caller knows them and the mask is a `GPUBuffer`: skips the row-length
   * pass and its read-back (the aggregation coefficients need them on the host). Not checked against the mask.
   */
  rowLengths?: ArrayLike<number>;
}

/** Per-call options of `engine.policyLoss` / `engine.aggLoss`. */
export interface EngineCallOptions {
  /** Write the gradient into this array (length ≥ B·T) instead of allocating one: saves fresh-memory costs. */
  gradInto?: Float32Array;
}

/** Per-call options of `engine.policyLossGpu` / `engine.aggLossGpu`. */
export interface EngineGpuCallOptions {
  /** Write the gradient into this buffer (`STORAGE` usage, ≥ 4·B·T rounded up to 16 bytes); else a new one. */
  gradBuffer?: GPUBuffer;
}

/** What `engine.policyLoss` returns: the CPU functions' result, with the gradient as float32 on WebGPU. */
export interface EnginePolicyLossResult {
  /** The scalar loss. */
  loss: number;
  /**
   * d loss / d logProbs, flat `[B·T]`: a `Float64Array` from the cpu backend (the reference's own array), a
   * `Float32Array` from webgpu (or `gradInto`).
   */
  grad: Float32Array | Float64Array;
  /** verl's metrics. */
  metrics: Record<string, number>;
}

/** What `engine.policyLossGpu` returns: the gradient stays on the GPU. */
export interface EnginePolicyLossGpuResult {
  /** The scalar loss. */
  loss: number;
  /** d loss / d logProbs as `B·T` float32, row-major; the caller owns it (and destroys it) unless it passed `gradBuffer`. */
  gradBuffer: GPUBuffer;
  /** verl's metrics. */
  metrics: Record<string, number>;
}

/** What `engine.aggLoss` returns. */
export interface EngineAggLossResult {
  /** The aggregated loss. */
  loss: number;
  /** d loss / d lossMat (see {@link EnginePolicyLossResult.grad}). */
  grad: Float32Array | Float64Array;
}

/** What `engine.aggLossGpu` returns. */
export interface EngineAggLossGpuResult {
  /** The aggregated loss. */
  loss: number;
  /** d loss / d lossMat on the GPU (see {@link EnginePolicyLossGpuResult.gradBuffer}). */
  gradBuffer: GPUBuffer;
}

/** An engine: the same calls on the CPU reference or on WebGPU. */
export interface Engine {
  /** The backend in use. */
  readonly backend: 'webgpu' | 'cpu';
  /** Why this backend (e.g. `"auto: no WebGPU adapter (…)"`, or the adapter's description). */
  readonly reason: string;
  /** The WebGPU context (device, pipelines, pool) for further kernels; null on the cpu backend. */
  readonly gpu: GpuContext | null;
  /** verl's policy loss `lossMode` (see `policyLoss`); modes without a kernel (user strategies) run on the CPU. */
  policyLoss(lossMode: string, batch: EnginePolicyLossBatch, config?: PolicyLossConfig, options?: EngineCallOptions): Promise<EnginePolicyLossResult>;
  /**
   * GPU-resident form of {@link Engine.policyLoss}: inputs may be `GPUBuffer`s and the gradient is returned as a
   * `GPUBuffer`, never passing through JS memory (webgpu backend; modes with a kernel only).
   */
  policyLossGpu(lossMode: string, batch: EnginePolicyLossBatch, config?: PolicyLossConfig, options?: EngineGpuCallOptions): Promise<EnginePolicyLossGpuResult>;
  /** verl's `agg_loss` (see `aggLoss`). */
  aggLoss(
    lossMat: EngineMatrix,
    mask: EngineMatrix,
    lossAggMode: LossAggMode,
    globalBatchInfo?: GlobalBatchInfo,
    shape?: Shape2D,
    options?: EngineCallOptions,
  ): Promise<EngineAggLossResult>;
  /** GPU-resident form of {@link Engine.aggLoss} (webgpu backend). */
  aggLossGpu(
    lossMat: EngineMatrix,
    mask: EngineMatrix,
    lossAggMode: LossAggMode,
    globalBatchInfo?: GlobalBatchInfo,
    shape?: Shape2D,
    options?: EngineGpuCallOptions,
  ): Promise<EngineAggLossGpuResult>;
  /** Release the device and every buffer (the engine is unusable afterwards). Idempotent. */
  destroy(): void;
}

/** Whether `x` is a `GPUBuffer`. */
export function isGpuBuffer(x: unknown): x is GPUBuffer {
  return typeof x === 'object' && x !== null && typeof (x as GPUBuffer).mapAsync === 'function' && typeof (x as GPUBuffer).size === 'number';
}

function hostOnly(x: EngineMatrix | null | undefined, field: string): MatrixInput | null | undefined {
  if (isGpuBuffer(x)) throw new ConfigError(`${field}: GPU buffers need the webgpu backend`, field);
  return x;
}

// ---------------------------------------------------------------------------------------------------------
// CPU backend

class CpuEngine implements Engine {
  readonly backend = 'cpu' as const;
  readonly gpu = null;
  /** A float64 gradient reused across calls that pass `gradInto` (the reference writes it, then it is rounded into gradInto). */
  private grad64: Float64Array | null = null;
  constructor(readonly reason: string) {}

  /** The reusable float64 gradient for a call with `gradInto` and a flat `shape`, else undefined (a fresh one). */
  private stagingGrad(into: Float32Array | undefined, shape: Shape2D | undefined): Float64Array | undefined {
    if (!into || !shape) return undefined;
    const n = shape[0] * shape[1];
    if (!Number.isInteger(n) || n < 0 || into.length < n) return undefined; // the reference / copyInto report it
    if (!this.grad64 || this.grad64.length !== n) this.grad64 = new Float64Array(n);
    return this.grad64;
  }

  async policyLoss(lossMode: string, batch: EnginePolicyLossBatch, config: PolicyLossConfig = {}, options: EngineCallOptions = {}): Promise<EnginePolicyLossResult> {
    const b: PolicyLossBatch = {
      oldLogProbs: hostOnly(batch.oldLogProbs, 'oldLogProbs') as MatrixInput,
      logProbs: hostOnly(batch.logProbs, 'logProbs') as MatrixInput,
      advantages: hostOnly(batch.advantages, 'advantages') as MatrixInput,
      responseMask: hostOnly(batch.responseMask, 'responseMask') as MatrixInput,
      rolloutIsWeights: hostOnly(batch.rolloutIsWeights, 'rolloutIsWeights') ?? null,
      entropy: hostOnly(batch.entropy, 'entropy') ?? null,
      ...(batch.shape ? { shape: batch.shape } : {}),
    };
    const staging = this.stagingGrad(options.gradInto, batch.shape);
    const r = cpuPolicyLoss(lossMode, b, config, staging ? { gradInto: staging } : {});
    return { loss: r.loss, grad: copyInto(r.grad, options.gradInto), metrics: r.metrics };
  }

  async policyLossGpu(): Promise<EnginePolicyLossGpuResult> {
    throw new ConfigError('policyLossGpu needs the webgpu backend', 'backend');
  }

  async aggLossGpu(): Promise<EngineAggLossGpuResult> {
    throw new ConfigError('aggLossGpu needs the webgpu backend', 'backend');
  }

  async aggLoss(lossMat: EngineMatrix, mask: EngineMatrix, lossAggMode: LossAggMode, gbi?: GlobalBatchInfo, shape?: Shape2D, options: EngineCallOptions = {}): Promise<EngineAggLossResult> {
    const staging = this.stagingGrad(options.gradInto, shape);
    const r = cpuAggLoss(hostOnly(lossMat, 'lossMat') as MatrixInput, hostOnly(mask, 'mask') as MatrixInput, lossAggMode, gbi, shape, staging ? { gradInto: staging } : {});
    return { loss: r.loss, grad: copyInto(r.grad, options.gradInto) };
  }

  destroy(): void {}
}

function copyInto(g: Float64Array, into: Float32Array | undefined): Float32Array | Float64Array {
  if (!into) return g;
  if (into.length < g.length) throw new ShapeError(`gradInto: length ${into.length} < ${g.length}`, 'gradInto');
  into.set(g);
  return into;
}

// ---------------------------------------------------------------------------------------------------------
// WebGPU backend

/** The kernel families: shaders/<family>.wgsl, each a `tok` function run by shaders/tokenpass.wgsl. */
export type GpuKernelFamily = 'vanilla' | 'gspo' | 'sapo' | 'cispo' | 'gpg' | 'clip_cov' | 'kl_cov' | 'geo_mean' | 'agg';
type Family = GpuKernelFamily;

/** How the WebGPU engine runs one loss mode. */
export interface GpuModeSpec {
  /** The kernel family (bypass_mode switches to `gpg` for its REINFORCE loss type). */
  readonly family: GpuKernelFamily;
  /** Aggregation when config.lossAggMode is unset (verl's effective mode). */
  readonly defaultAgg: LossAggMode | 'row-mean';
  /** Whether config.lossAggMode is ignored (geo_mean's plain row mean). */
  readonly fixedAgg?: boolean;
}
type ModeSpec = GpuModeSpec;

/** The loss modes with WebGPU kernels (user strategies run on the CPU reference). */
export const GPU_LOSS_MODES: Readonly<Record<string, ModeSpec>> = {
  vanilla: { family: 'vanilla', defaultAgg: 'token-mean' },
  'eighty-twenty': { family: 'vanilla', defaultAgg: 'token-mean' },
  gspo: { family: 'gspo', defaultAgg: 'seq-mean-token-mean' },
  sapo: { family: 'sapo', defaultAgg: 'seq-mean-token-mean' },
  cispo: { family: 'cispo', defaultAgg: 'token-mean' },
  gpg: { family: 'gpg', defaultAgg: 'token-mean' },
  clip_cov: { family: 'clip_cov', defaultAgg: 'token-mean' },
  kl_cov: { family: 'kl_cov', defaultAgg: 'token-mean' },
  geo_mean: { family: 'geo_mean', defaultAgg: 'row-mean', fixedAgg: true },
  bypass_mode: { family: 'vanilla', defaultAgg: 'token-mean' },
};

/** A `[B·T]` input resolved for the GPU: host float32 values, or a caller's buffer. */
type Field = { host: Float32Array; scratch: Float32Array | null } | { buffer: GPUBuffer };
/** A token-pass input: a GPU buffer, or host values the pass uploads piece by piece (streamed). */
type PassInput = GPUBuffer | Float32Array;

const keyF32 = new Float32Array(1);
const keyU32 = new Uint32Array(keyF32.buffer);
/** shaders/common.wgsl's `sortKey` on the host: an unsigned key in the order of the float32 values (−0 and +0 share one). */
function sortKeyOf(x: number): number {
  keyF32[0] = x;
  let b = keyU32[0] as number;
  if (b === 0x80000000) b = 0;
  return (b & 0x80000000) !== 0 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

/** Header words of shaders/topk.wgsl's BAND output before its (index, key) pairs. */
const BAND_HEAD = 8;

/**
 * eighty-twenty's GPU selection ({@link WebGpuEngine.selectTopK}): k tokens, those with key > `cutKey` or key =
 * `cutKey` at a global index ≤ `cutIdx`; `nonFinite` valid entropies that are not finite (nothing else then holds);
 * `checked` when the band pass also counted the valid tokens and the mask entries that are not 0/1.
 */
interface TopKSelection {
  k: number;
  cutKey: number;
  cutIdx: number;
  nonFinite: number;
  checked?: { valid: number; badMask: number };
}

/** Histogram bins of shaders/topk.wgsl. */
const TOPK_BINS = 4096;
/** The radix select's levels over 32-bit keys: 12, 12 and 8 bits, each under the prefix fixed so far. */
const TOPK_LEVELS: readonly { shift: number; mask: number }[] = [
  { shift: 20, mask: 0 },
  { shift: 8, mask: 0xfff00000 },
  { shift: 0, mask: 0xffffff00 },
];

interface PartialSums {
  loss: number;
  m0: number;
  m1: number;
  m2: number;
  /** Valid tokens (Σ row lengths of the response mask, from the host). */
  valid: number;
  /** Σ of the inputs at valid positions: non-finite iff an input is (barring float32 overflow). */
  inputSum: number;
  /** Mask entries that are not 0/1 (counted by their bits in the token pass, NaN included): 0 iff the mask is 0/1. */
  badMask: number;
}

class WebGpuEngine implements Engine {
  readonly backend = 'webgpu' as const;
  constructor(
    readonly gpu: GpuContext,
    readonly reason: string,
    private readonly streamPieceTokens = STREAM_PIECE_TOKENS,
  ) {}

  destroy(): void {
    this.gpu.destroy();
  }

  private tail: Promise<unknown> = Promise.resolve();

  /**
   * Calls on one engine run one at a time (they share the pool's scratch and the device's error scopes),
   * each inside validation and out-of-memory error scopes: a WebGPU error becomes a {@link GpuError}.
   */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.gpu.checkAlive();
      const dev = this.gpu.device;
      dev.pushErrorScope('out-of-memory');
      dev.pushErrorScope('validation');
      let value: T | undefined;
      let failure: unknown = null;
      try {
        value = await f();
      } catch (err) {
        failure = err;
      }
      const errors: string[] = [];
      for (const kind of ['validation', 'out-of-memory']) {
        try {
          const e = await dev.popErrorScope();
          if (e) errors.push(`${kind}: ${e.message}`);
        } catch {
          // a lost device has no scopes left; the loss itself is reported below
        }
      }
      if (failure) throw failure;
      if (errors.length > 0) throw new GpuError(`WebGPU reported an error: ${errors.join('; ')}`);
      return value as T;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  // --- inputs ----------------------------------------------------------------------------------------

  private shapeOf(fields: (EngineMatrix | null | undefined)[], shape: Shape2D | undefined, maskName: string): Shape2D {
    if (shape) {
      const [b, t] = shape;
      if (!Number.isInteger(b) || !Number.isInteger(t) || b < 0 || t < 0) throw new ShapeError(`shape must be two non-negative integers, got [${b}, ${t}]`, 'shape');
      return shape;
    }
    for (const f of fields) {
      if (f != null && !isGpuBuffer(f) && isNested(f)) return nestedShape(f, maskName);
    }
    throw new ShapeError('batch.shape [B, T] is required when the inputs are flat arrays or GPU buffers', 'shape');
  }

  private field(x: EngineMatrix, name: string, shape: Shape2D): Field {
    const n = shape[0] * shape[1];
    if (isGpuBuffer(x)) {
      if ((x.usage & BufferUsage.STORAGE) === 0) throw new ConfigError(`${name}: a GPU buffer input needs STORAGE usage`, name);
      if (x.size < roundUp(n * 4, 16)) {
        throw new ShapeError(`${name}: GPU buffer of ${x.size} bytes is smaller than 4·B·T = ${n * 4} rounded up to 16 bytes`, name);
      }
      return { buffer: x };
    }
    if (x instanceof Float32Array) {
      if (x.length !== n) throw new ShapeError(`${name}: length ${x.length} does not match shape [${shape[0]}, ${shape[1]}] (${n})`, name);
      return { host: x, scratch: null };
    }
    if (isNested(x)) {
      const s = nestedShape(x, name);
      if (s[0] !== shape[0] || s[1] !== shape[1]) throw new ShapeError(`${name}: shape [${s[0]}, ${s[1]}] does not match [${shape[0]}, ${shape[1]}]`, name);
      const a = this.gpu.pool.acquireHost(n);
      const T = shape[1];
      for (let i = 0; i < shape[0]; i++) {
        const row = x[i] as readonly number[];
        for (let j = 0; j < T; j++) a[i * T + j] = row[j] as number;
      }
      return { host: a.subarray(0, n), scratch: a };
    }
    if (x == null || typeof (x as ArrayLike<number>).length !== 'number') throw new ShapeError(`${name}: expected a [B][T] array or a GPUBuffer`, name);
    const flat = x as ArrayLike<number>;
    if (flat.length !== n) throw new ShapeError(`${name}: length ${flat.length} does not match shape [${shape[0]}, ${shape[1]}] (${n})`, name);
    const a = this.gpu.pool.acquireHost(n);
    const v = a.subarray(0, n);
    v.set(flat);
    return { host: v, scratch: a };
  }

  private release(fields: (Field | null)[]): void {
    for (const f of fields) if (f && 'host' in f && f.scratch) this.gpu.pool.releaseHost(f.scratch);
  }

  /**
   * Row lengths of a host mask, validating 0/1 (Σ (v² − v)² is 0 exactly when every value is 0 or 1). With `ratio`,
   * the same scan also sums gspo's sequence log-ratio: x_i = Σ (lp − olp) over row i's valid tokens ÷ max(L_i, 1),
   * unclamped, in float64 as the CPU reference sums it (shaders/rowreduce.wgsl's MODE 1 on the GPU).
   */
  private hostLengths(mask: Float32Array, B: number, T: number, name: string): Float64Array;
  private hostLengths(mask: Float32Array, B: number, T: number, name: string, ratio: { lp: Float32Array; olp: Float32Array; x: Float64Array }): Float64Array;
  private hostLengths(mask: Float32Array, B: number, T: number, name: string, ratio?: { lp: Float32Array; olp: Float32Array; x: Float64Array }): Float64Array {
    const L = new Float64Array(B);
    let bad = 0;
    for (let i = 0; i < B; i++) {
      let s = 0;
      if (ratio) {
        const { lp, olp } = ratio;
        let d = 0;
        for (let j = 0, k = i * T; j < T; j++, k++) {
          const v = mask[k] as number;
          s += v;
          const q = v * v - v;
          bad += q * q;
          if (v !== 0) d += (lp[k] as number) - (olp[k] as number);
        }
        ratio.x[i] = d / Math.max(s, 1);
      } else {
        for (let j = 0, k = i * T; j < T; j++, k++) {
          const v = mask[k] as number;
          s += v;
          const q = v * v - v;
          bad += q * q;
        }
      }
      L[i] = s;
    }
    if (bad !== 0) {
      for (let k = 0; k < B * T; k++) {
        const v = mask[k] as number;
        if (v !== 0 && v !== 1) throw new ValueError(`${name}: a mask must be 0/1, got ${v} at [${Math.floor(k / T)}, ${k % T}]`, name);
      }
    }
    return L;
  }

  private givenLengths(L: ArrayLike<number>, B: number, T: number): Float64Array {
    if (L.length !== B) throw new ShapeError(`rowLengths: length ${L.length}, expected B = ${B}`, 'rowLengths');
    const out = Float64Array.from(L);
    for (let i = 0; i < B; i++) {
      const v = out[i] as number;
      if (!Number.isInteger(v) || v < 0 || v > T) throw new ValueError(`rowLengths[${i}] must be an integer in [0, ${T}], got ${v}`, 'rowLengths');
    }
    return out;
  }

  private bind(f: Field, temps: GPUBuffer[]): GPUBuffer {
    if ('buffer' in f) return f.buffer;
    const b = this.gpu.upload(f.host);
    temps.push(b);
    return b;
  }

  /**
   * The gradient target of a call: the caller's `gradBuffer` (checked: STORAGE usage and room for `n` float32s), a
   * fresh buffer handed to the caller (`toBuffer` without one; in `owned`, destroyed if the call fails), or a pooled
   * output buffer for the read-back (in `temps`).
   */
  private gradTarget(n: number, toBuffer: boolean, gradBuffer: GPUBuffer | undefined, temps: GPUBuffer[], owned: GPUBuffer[]): GPUBuffer {
    let bGrad: GPUBuffer;
    if (toBuffer && gradBuffer) {
      bGrad = gradBuffer;
      if ((bGrad.usage & BufferUsage.STORAGE) === 0 || bGrad.size < roundUp(n * 4, 16)) {
        throw new ShapeError(`gradBuffer: needs STORAGE usage and at least ${roundUp(n * 4, 16)} bytes`, 'gradBuffer');
      }
    } else if (toBuffer) {
      bGrad = this.gpu.device.createBuffer({ size: roundUp(Math.max(n, 4) * 4, 16), usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, label: 'lumirag-grad' });
      owned.push(bGrad);
    } else {
      bGrad = this.gpu.output(n * 4, 'lumirag-grad');
      temps.push(bGrad);
    }
    return bGrad;
  }

  /**
   * For a call that returns a host gradient (`!toBuffer`): check `gradInto`, add `bGrad`'s read-back region to
   * `regions` (unless the token pass is `streamed`: it reads the gradient back piece by piece) and return the array
   * it lands in (`gradInto`'s first `n` entries, or a fresh one). Null for `toBuffer`.
   */
  private gradRegion(
    regions: ReadRegion[],
    bGrad: GPUBuffer,
    n: number,
    toBuffer: boolean,
    gradInto: Float32Array | undefined,
    streamed = false,
  ): Float32Array | null {
    if (toBuffer) return null;
    if (gradInto && gradInto.length < n) throw new ShapeError(`gradInto: length ${gradInto.length} < ${n}`, 'gradInto');
    const gradArr = gradInto ? gradInto.subarray(0, n) : new Float32Array(n);
    if (!streamed) regions.push({ buffer: bGrad, bytes: n * 4, into: gradArr }); // streamed: read back piece by piece
    return gradArr;
  }

  // --- kernels ---------------------------------------------------------------------------------------

  private tokenPipeline(family: Family, c: PipelineConstants): Promise<GPUComputePipeline> {
    return this.gpu.pipeline(`tokenpass/${family}`, () => this.gpu.source([family, 'tokenpass']), {
      ...c,
      VPT: this.gpu.vec4PerInvocation,
      LANE_SLOTS: this.gpu.barrierFree,
    });
  }

  private rowPipeline(mode: number, hasW: boolean): Promise<GPUComputePipeline> {
    return this.gpu.pipeline('rowreduce', () => this.gpu.source(['rowreduce']), { MODE: mode, HAS_W: hasW, ROW_PER_LANE: this.gpu.barrierFree });
  }

  /** Encode the row pass over B rows of width T in binding-sized row chunks. */
  private encodeRowPass(
    enc: GPUCommandEncoder,
    pipe: GPUComputePipeline,
    ins: { olp: GPUBuffer; lp: GPUBuffer; adv: GPUBuffer; mask: GPUBuffer; w: GPUBuffer | null },
    rows: GPUBuffer,
    B: number,
    T: number,
    p: KernelParams,
    temps: GPUBuffer[],
  ): void {
    if (B === 0 || T === 0) return;
    const maxRows = Math.floor((this.gpu.maxBindingFloats - 64) / T);
    if (maxRows < 1) throw new ShapeError(`T = ${T} exceeds one storage binding (${this.gpu.maxBindingFloats} floats)`, 'shape');
    for (let r0 = 0; r0 < B; r0 += maxRows) {
      const R = Math.min(maxRows, B - r0);
      const startByte = r0 * T * 4;
      const off = Math.floor(startByte / 256) * 256;
      const shift = (startByte - off) / 4;
      const size = (b: GPUBuffer): number => Math.min(b.size - off, roundUp((shift + R * T) * 4, 16), Math.floor(this.gpu.maxBindingFloats) * 4);
      const g = this.gpu.grid(this.gpu.barrierFree ? Math.ceil(R / WORKGROUP_SIZE) : R); // rows per invocation or per workgroup
      const u = this.gpu.uniform({ ...p, n: R, base: r0, T, wgOffset: shift, groupsX: g.x, nwg: R, B });
      temps.push(u);
      const win = (b: GPUBuffer): GPUBufferBinding => ({ buffer: b, offset: off, size: size(b) });
      this.gpu.dispatch(
        enc,
        pipe,
        [{ buffer: u }, win(ins.olp), win(ins.lp), win(ins.adv), win(ins.mask), ins.w ? win(ins.w) : { buffer: this.gpu.dummy }, { buffer: rows }],
        g,
      );
    }
  }

  /**
   * Encode the token pass over n tokens. Inputs given as host arrays (`olp`, `lp`, `adv`) are streamed: each
   * piece of {@link streamPiece} tokens is uploaded into its own pooled buffer and its dispatch submitted at once,
   * so the GPU computes one piece while the next uploads. (Pieces need their own buffers: Dawn's `writeBuffer` into
   * a buffer that submitted work still reads takes a slow path, ~50 ns/token on lavapipe.) With `gradOut`, a
   * streamed pass also reads each piece's gradient back into it as soon as the piece is submitted: the returned
   * `pieces` wait and copy out (await them in order, each once). Returns the encoder to record further commands into
   * (a fresh one after a streamed pass).
   */
  private encodeTokenPass(
    enc: GPUCommandEncoder,
    pipe: GPUComputePipeline,
    b: { olp: PassInput; lp: PassInput; adv: PassInput; mask: GPUBuffer; aux: GPUBuffer | null; rows: GPUBuffer | null; grad: GPUBuffer },
    part: GPUBuffer,
    n: number,
    p: KernelParams,
    temps: GPUBuffer[],
    gradOut: Float32Array | null = null,
    tail: readonly ReadRegion[] = [],
  ): { enc: GPUCommandEncoder; pieces: (() => Promise<Float32Array[]>)[] } {
    const pieces: (() => Promise<Float32Array[]>)[] = [];
    const streamed = [b.olp, b.lp, b.adv].some((x) => x instanceof Float32Array);
    const chunks = [...this.tokenChunks(n, streamed)];
    for (const [i, { base, cnt, nwg, g, wgOffset }] of chunks.entries()) {
      const u = this.gpu.uniform({ ...p, n: cnt, base, wgOffset, groupsX: g.x, nwg });
      temps.push(u);
      const size = roundUp(Math.max(cnt, 4) * 4, 16);
      const win = (x: GPUBuffer): GPUBufferBinding => ({ buffer: x, offset: base * 4, size });
      const input = (x: PassInput): GPUBufferBinding => {
        if (!(x instanceof Float32Array)) return win(x);
        const buf = this.gpu.upload(x.subarray(base, base + cnt));
        temps.push(buf);
        return { buffer: buf, offset: 0, size };
      };
      this.gpu.dispatch(
        enc,
        pipe,
        [
          { buffer: u },
          input(b.olp),
          input(b.lp),
          input(b.adv),
          win(b.mask),
          b.aux ? win(b.aux) : { buffer: this.gpu.dummy },
          { buffer: b.rows ?? this.gpu.dummy },
          win(b.grad),
          { buffer: part },
        ],
        g,
      );
      if (streamed) {
        if (gradOut) {
          // the last piece's read-back also carries `tail` (the partial sums...): no extra round trip for them
          const piece: ReadRegion = { buffer: b.grad, offset: base * 4, bytes: cnt * 4, into: gradOut.subarray(base, base + cnt) };
          pieces.push(this.gpu.readbackStart(enc, i === chunks.length - 1 ? [piece, ...tail] : [piece], cnt));
        }
        else this.gpu.device.queue.submit([enc.finish()]);
        enc = this.gpu.device.createCommandEncoder();
      }
    }
    return { enc, pieces };
  }

  /**
   * Await a streamed pass's piece read-backs in order, every one of them (each releases its staging buffer), and
   * return the last one's regions after its gradient piece (the `tail` given to {@link encodeTokenPass}).
   */
  private static async drain(pieces: readonly (() => Promise<Float32Array[]>)[]): Promise<Float32Array[]> {
    let failure: unknown = null;
    let last: Float32Array[] = [];
    for (const f of pieces) {
      try {
        last = await f();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== null) throw failure;
    return last.slice(1);
  }

  /** Tokens per streamed piece: the engine's `streamPieceTokens` in whole workgroups, within one binding window. */
  private get streamPiece(): number {
    const tpw = this.gpu.tokensPerWorkgroup;
    const window = Math.floor(this.gpu.maxBindingFloats / tpw) * tpw;
    return this.streamPieceTokens > 0 ? Math.min(window, Math.max(1, Math.round(this.streamPieceTokens / tpw)) * tpw) : window;
  }

  /**
   * The chunks of a token pass over n tokens (one empty chunk when n = 0): binding windows, or stream pieces when
   * `streamed`. Each: first token, tokens, workgroups, grid, and the first workgroup (whose partial-sum slots follow
   * the previous chunks'). Chunks are whole workgroups, so the partial-sum slots number
   * ceil(n / tokensPerWorkgroup) · slotsPerWorkgroup either way ({@link WebGpuEngine.slots}).
   */
  private *tokenChunks(n: number, streamed = false): Generator<{ base: number; cnt: number; nwg: number; g: Grid; wgOffset: number }> {
    const tpw = this.gpu.tokensPerWorkgroup;
    const chunk = streamed ? this.streamPiece : Math.floor(this.gpu.maxBindingFloats / tpw) * tpw;
    let wgOffset = 0;
    for (let base = 0; base < n || (n === 0 && base === 0); base += chunk) {
      const cnt = Math.max(0, Math.min(chunk, n - base));
      const nwg = Math.max(1, Math.ceil(cnt / tpw));
      yield { base, cnt, nwg, g: this.gpu.grid(nwg), wgOffset };
      wgOffset += nwg;
      if (n === 0) break;
    }
  }

  private countPipeline(): Promise<GPUComputePipeline> {
    return this.gpu.pipeline('maskcount', () => this.gpu.source(['maskcount']), { VPT: this.gpu.vec4PerInvocation });
  }

  /** Encode shaders/maskcount.wgsl over the n mask entries: their non-zero count lands at `rows[countByte]` (a u32). */
  private encodeCountPass(enc: GPUCommandEncoder, pipe: GPUComputePipeline, mask: GPUBuffer, rows: GPUBuffer, countByte: number, n: number, temps: GPUBuffer[]): void {
    for (const { base, cnt, nwg, g } of this.tokenChunks(n)) {
      const u = this.gpu.uniform({ n: cnt, base, groupsX: g.x, nwg });
      temps.push(u);
      this.gpu.dispatch(enc, pipe, [{ buffer: u }, { buffer: mask, offset: base * 4, size: roundUp(Math.max(cnt, 4) * 4, 16) }, { buffer: rows, offset: countByte, size: 16 }], g);
    }
  }

  private topkPipeline(collect: boolean, byIndex = false, band = false, sample = false): Promise<GPUComputePipeline> {
    return this.gpu.pipeline('topk', () => this.gpu.source(['topk']), { VPT: this.gpu.vec4PerInvocation, COLLECT: collect, BY_INDEX: byIndex, BAND: band, SAMPLE: sample });
  }

  /** Encode one pass of shaders/topk.wgsl over the n tokens (histogram or tie collection into `out`). */
  private encodeTopKPass(
    enc: GPUCommandEncoder,
    pipe: GPUComputePipeline,
    ent: GPUBuffer,
    mask: GPUBuffer,
    out: GPUBuffer,
    n: number,
    sel: { shift: number; mask: number; prefix: number; cut?: number },
    temps: GPUBuffer[],
  ): void {
    const s = this.gpu.pool.acquire(BufferUsage.UNIFORM | BufferUsage.COPY_DST, 16, 'lumirag-select');
    temps.push(s);
    this.gpu.device.queue.writeBuffer(s, 0, new Uint32Array([sel.shift, sel.mask >>> 0, sel.prefix >>> 0, (sel.cut ?? 0) >>> 0]));
    for (const { base, cnt, nwg, g } of this.tokenChunks(n)) {
      const u = this.gpu.uniform({ n: cnt, base, groupsX: g.x, nwg });
      temps.push(u);
      const win = (x: GPUBuffer): GPUBufferBinding => ({ buffer: x, offset: base * 4, size: roundUp(Math.max(cnt, 4) * 4, 16) });
      this.gpu.dispatch(enc, pipe, [{ buffer: u }, { buffer: s }, win(ent), win(mask), { buffer: out }], g);
    }
  }

  /**
   * eighty-twenty's selection on the GPU (shaders/topk.wgsl): k = eightyTwentyCount(valid tokens, ratio), and the
   * cut such that the selected tokens are those whose entropy key is above `cutKey`, or equal to it at a global
   * index ≤ `cutIdx` (the lowest-index ties, as the CPU reference takes them). First the one-pass band select
   * ({@link selectTopKBand}); where it cannot decide, a radix select over the 32-bit keys in three histogram passes
   * (12, 12, 8 bits), each read back (16 KiB) and walked from the top on the host, then, when only some of the ties at
   * the cut are taken, one pass that collects their indices (or, with more ties than one binding holds, a second
   * radix select over their indices). `nonFinite` counts valid tokens with a non-finite entropy (then nothing else is
   * meaningful). `host`: the entropies and mask on the host, when they are there (the band's sample reads them).
   */
  private async selectTopK(
    ent: GPUBuffer,
    mask: GPUBuffer,
    n: number,
    ratio: number,
    temps: GPUBuffer[],
    host: { ent: Float32Array; mask: Float32Array } | null = null,
  ): Promise<TopKSelection> {
    const banded = await this.selectTopKBand(ent, mask, n, ratio, temps, host);
    if (banded) return banded;
    const out = this.gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, (TOPK_BINS + 4) * 4, 'lumirag-topk');
    temps.push(out);
    let k = 0;
    let early: { k: number; cutKey: number; cutIdx: number; nonFinite: number } | null = null;
    const byKey = await this.radixSelect(ent, mask, out, n, await this.topkPipeline(false), 0, temps, (c) => {
      const nonFinite = c[TOPK_BINS] as number;
      if (nonFinite > 0) {
        early = { k: 0, cutKey: 0, cutIdx: 0, nonFinite };
        return 0;
      }
      let m = 0;
      for (let b = 0; b < TOPK_BINS; b++) m += c[b] as number;
      k = eightyTwentyCount(m, ratio);
      if (k === 0) early = { k, cutKey: 0xffffffff, cutIdx: 0, nonFinite: 0 }; // nothing selected
      else if (k === m) early = { k, cutKey: 0, cutIdx: 0xffffffff, nonFinite: 0 }; // every valid token
      return early ? 0 : k;
    });
    if (early) return early;
    const { key: cutKey, rank: r, count: ties } = byKey;
    if (r === ties) return { k, cutKey, cutIdx: 0xffffffff, nonFinite: 0 }; // every tie at the cut
    if (ties + 1 > this.gpu.maxBindingFloats) {
      // too many ties to collect into one binding: a second radix select, over ~index among the ties
      const byIdx = await this.radixSelect(ent, mask, out, n, await this.topkPipeline(false, true), cutKey, temps, () => r);
      return { k, cutKey, cutIdx: ~byIdx.key >>> 0, nonFinite: 0 };
    }
    const idx = this.gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, roundUp((ties + 1) * 4, 16), 'lumirag-topk-ties');
    temps.push(idx);
    const enc = this.gpu.device.createCommandEncoder();
    enc.clearBuffer(idx, 0, 16);
    this.encodeTopKPass(enc, await this.topkPipeline(true), ent, mask, idx, n, { shift: 0, mask: 0xffffffff, prefix: cutKey }, temps);
    const [got] = await this.gpu.readback(enc, [{ buffer: idx, bytes: (ties + 1) * 4 }], n);
    const all = new Uint32Array((got as Float32Array).buffer, (got as Float32Array).byteOffset, ties + 1);
    const at = all.subarray(1, 1 + (all[0] as number)).slice().sort();
    return { k, cutKey, cutIdx: at[r - 1] as number, nonFinite: 0 };
  }

  /**
   * eighty-twenty's selection in one GPU pass: a sample of {@link BAND_SAMPLE} positions (one per equal block; read
   * from the host arrays when given, else drawn on the GPU by shaders/topk.wgsl's `SAMPLE` and read back) brackets the
   * cut between two keys lo ≤ hi (the sample's ranks around the ratio: `sampleBand`),
   * and shaders/topk.wgsl (`BAND`) counts the valid tokens and those above hi, and collects the index and key of each
   * token in [lo, hi]. The host then takes the cut among those (ties lowest index first). Null (the caller runs the
   * radix select) when the sample is too small, GPU-resident inputs exceed one binding, the band outgrows its buffer,
   * or the cut is not in the band; `nonFinite` as {@link selectTopK}. The same result as the radix select, in one
   * pass without histogram atomics instead of three.
   */
  private async selectTopKBand(
    ent: GPUBuffer,
    mask: GPUBuffer,
    n: number,
    ratio: number,
    temps: GPUBuffer[],
    host: { ent: Float32Array; mask: Float32Array } | null,
  ): Promise<TopKSelection | null> {
    const size = Math.min(BAND_SAMPLE, n);
    const sample = this.f64(size);
    let sv = 0;
    if (host) {
      const rng = mulberry32(0x5e1ec7);
      const stride = n / size;
      for (let i = 0; i < size; i++) {
        const at = Math.floor((i + rng()) * stride); // one position in each of `size` equal blocks, in order
        const x = host.ent[at] as number;
        if ((host.mask[at] as number) !== 0 && Number.isFinite(x)) sample[sv++] = sortKeyOf(x);
      }
    } else {
      // GPU-resident entropies: the same kind of sample, drawn on the GPU (shaders/topk.wgsl's SAMPLE) and read back
      if (n > this.gpu.maxBindingFloats || size < BAND_MIN_SAMPLE) return null;
      const keys = this.gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_SRC, size * 4, 'lumirag-topk-sample');
      temps.push(keys);
      const sel = this.gpu.pool.acquire(BufferUsage.UNIFORM | BufferUsage.COPY_DST, 16, 'lumirag-select');
      temps.push(sel);
      this.gpu.device.queue.writeBuffer(sel, 0, new Uint32Array([0, size, 0, 0]));
      const g = this.gpu.grid(Math.ceil(size / WORKGROUP_SIZE));
      const u = this.gpu.uniform({ n, base: 0, groupsX: g.x, nwg: Math.ceil(size / WORKGROUP_SIZE) });
      temps.push(u);
      const enc = this.gpu.device.createCommandEncoder();
      const whole = (x: GPUBuffer): GPUBufferBinding => ({ buffer: x, offset: 0, size: roundUp(Math.max(n, 4) * 4, 16) });
      this.gpu.dispatch(enc, await this.topkPipeline(false, false, false, true), [{ buffer: u }, { buffer: sel }, whole(ent), whole(mask), { buffer: keys }], g);
      const got = this.gpu.pool.acquireHost(size);
      try {
        await this.gpu.readback(enc, [{ buffer: keys, bytes: size * 4, into: got }], size);
        const k32 = new Uint32Array(got.buffer, got.byteOffset, size);
        for (let i = 0; i < size; i++) if ((k32[i] as number) !== 0) sample[sv++] = k32[i] as number;
      } finally {
        this.gpu.pool.releaseHost(got);
      }
    }
    if (sv < BAND_MIN_SAMPLE) return null;
    // the k-th largest sits near rank ratio·sv of the sample's keys; bracket it (keys past the ends: 0 and 2^32 − 1)
    const band = sampleBand(sample.subarray(0, sv), ratio);
    const hiKey = band.hi === Infinity ? 0xffffffff : band.hi;
    const loKey = band.lo === -Infinity ? 0 : band.lo;
    const expected = (band.ranks / size) * n;
    const cap = Math.min(Math.ceil(2 * expected) + 4096, Math.floor((this.gpu.maxBindingFloats - BAND_HEAD) / 2));
    if (cap < expected) return null;
    const words = BAND_HEAD + 2 * cap;
    const out = this.gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, words * 4, 'lumirag-topk-band');
    temps.push(out);
    const enc = this.gpu.device.createCommandEncoder();
    enc.clearBuffer(out, 0, BAND_HEAD * 4);
    this.encodeTopKPass(enc, await this.topkPipeline(false, false, true), ent, mask, out, n, { shift: 0, mask: cap, prefix: loKey, cut: hiKey }, temps);
    const got = this.gpu.pool.acquireHost(words); // pooled: fresh memory costs more than this selection
    try {
      await this.gpu.readback(enc, [{ buffer: out, bytes: words * 4, into: got }], n);
      return this.bandCut(new Uint32Array(got.buffer, got.byteOffset, words), ratio, cap);
    } finally {
      this.gpu.pool.releaseHost(got);
    }
  }

  /** The cut from {@link selectTopKBand}'s pass output `u` (see there). */
  private bandCut(u: Uint32Array, ratio: number, cap: number): TopKSelection | null {
    const [m, above, nonFinite, inBand, badMask] = [u[0] as number, u[1] as number, u[2] as number, u[3] as number, u[4] as number];
    // the pass also counted the valid tokens and checked the mask: the token pass need not
    const checked = { valid: m, badMask };
    if (nonFinite > 0 || badMask > 0) return { k: 0, cutKey: 0, cutIdx: 0, nonFinite, checked };
    const k = eightyTwentyCount(m, ratio);
    if (k === 0) return { k, cutKey: 0xffffffff, cutIdx: 0, nonFinite: 0, checked };
    if (k === m) return { k, cutKey: 0, cutIdx: 0xffffffff, nonFinite: 0, checked };
    if (inBand > cap || !(above < k && k <= above + inBand)) return null;
    // the (k − above)-th largest key in the band, and the indices of its ties
    const keys = this.f64(inBand);
    for (let i = 0; i < inBand; i++) keys[i] = u[BAND_HEAD + 1 + 2 * i] as number;
    const r = k - above;
    const cutKey = kthLargest(keys, r);
    let over = 0;
    const ties: number[] = [];
    for (let i = 0; i < inBand; i++) {
      const key = keys[i] as number;
      if (key > cutKey) over++;
      else if (key === cutKey) ties.push(u[BAND_HEAD + 2 * i] as number);
    }
    if (r - over === ties.length) return { k, cutKey, cutIdx: 0xffffffff, nonFinite: 0, checked }; // every tie at the cut
    const sorted = Float64Array.from(ties).sort();
    return { k, cutKey, cutIdx: sorted[r - over - 1] as number, nonFinite: 0, checked };
  }

  private f64Scratch = new Float64Array(0);
  /**
   * A host float64 scratch of `length` (one per engine, grown as needed; calls on one engine run one at a time). Not
   * the CPU losses' `scratch`: this one is held across awaits, where another engine's call may run.
   */
  private f64(length: number): Float64Array {
    if (this.f64Scratch.length < length) this.f64Scratch = new Float64Array(Math.max(length, 2 * this.f64Scratch.length));
    return this.f64Scratch.subarray(0, length);
  }

  /**
   * A three-level radix select (12, 12, 8 bits) with shaders/topk.wgsl's histogram pipeline `pipe` (keyed by entropy,
   * or by ~index among the ties at `cut`): `first` sees the first level's histogram (and its non-finite slot) and
   * returns r, the rank from the top to find (0 stops). Returns the key of the r-th largest, how many tokens share
   * that key (`count`), and the rank within them that is still to take (`rank`, 1 ≤ rank ≤ count).
   */
  private async radixSelect(
    ent: GPUBuffer,
    mask: GPUBuffer,
    out: GPUBuffer,
    n: number,
    pipe: GPUComputePipeline,
    cut: number,
    temps: GPUBuffer[],
    first: (hist: Uint32Array) => number,
  ): Promise<{ key: number; rank: number; count: number }> {
    let prefix = 0;
    let r = 0;
    let count = 0;
    for (const [li, { shift, mask: prefixMask }] of TOPK_LEVELS.entries()) {
      const enc = this.gpu.device.createCommandEncoder();
      enc.clearBuffer(out, 0, (TOPK_BINS + 4) * 4);
      this.encodeTopKPass(enc, pipe, ent, mask, out, n, { shift, mask: prefixMask, prefix: prefix & prefixMask, cut }, temps);
      const [h] = await this.gpu.readback(enc, [{ buffer: out, bytes: (TOPK_BINS + 1) * 4 }], n);
      const c = new Uint32Array((h as Float32Array).buffer, (h as Float32Array).byteOffset, TOPK_BINS + 1);
      if (li === 0) {
        r = first(c);
        if (r === 0) return { key: 0, rank: 0, count: 0 };
      }
      let b = TOPK_BINS - 1;
      let above = 0;
      while (above + (c[b] as number) < r) above += c[b--] as number;
      r -= above;
      prefix = ((prefix & ~((TOPK_BINS - 1) << shift)) | (b << shift)) >>> 0;
      count = c[b] as number;
    }
    return { key: prefix, rank: r, count };
  }

  private static slots(n: number, gpu: GpuContext): number {
    const tpw = gpu.tokensPerWorkgroup;
    const chunk = Math.floor(gpu.maxBindingFloats / tpw) * tpw;
    let s = 0;
    for (let base = 0; base < n; base += chunk) s += Math.ceil(Math.min(chunk, n - base) / tpw);
    return Math.max(1, s) * gpu.slotsPerWorkgroup;
  }

  private static sumPartials(part: Float32Array, slots: number, lengths: Float64Array | null): PartialSums {
    let loss = 0;
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    let inputSum = 0;
    let counted = 0;
    let nonZero = 0;
    for (let i = 0; i < slots; i++) {
      const o = 8 * i;
      loss += part[o] as number;
      m0 += part[o + 1] as number;
      m1 += part[o + 2] as number;
      m2 += part[o + 3] as number;
      inputSum += part[o + 4] as number;
      counted += part[o + 5] as number;
      nonZero += part[o + 6] as number;
    }
    // the token pass counts the mask's entries equal to 1 and its non-zero ones: the mask is 0/1 iff they agree
    const badMask = nonZero - counted;
    let valid = counted;
    if (lengths) {
      valid = 0;
      for (let i = 0; i < lengths.length; i++) valid += lengths[i] as number;
    }
    return { loss, m0, m1, m2, valid, inputSum, badMask };
  }

  /** Lengths of a GPU-resident mask (row pass MODE 0, read back). */
  private async deviceLengths(mask: GPUBuffer, B: number, T: number): Promise<Float64Array> {
    const temps: GPUBuffer[] = [];
    const rows = this.gpu.output(B * 16, 'lumirag-rows');
    try {
      const pipe = await this.rowPipeline(0, false);
      const enc = this.gpu.device.createCommandEncoder();
      this.encodeRowPass(enc, pipe, { olp: mask, lp: mask, adv: mask, mask, w: null }, rows, B, T, {}, temps);
      const [r] = await this.gpu.readback(enc, [{ buffer: rows, bytes: B * 16 }]);
      const L = new Float64Array(B);
      for (let i = 0; i < B; i++) L[i] = (r as Float32Array)[4 * i + 2] as number;
      return L;
    } finally {
      for (const t of temps) this.gpu.pool.release(t);
      this.gpu.pool.release(rows);
    }
  }

  // --- public calls ----------------------------------------------------------------------------------

  async policyLoss(lossMode: string, batch: EnginePolicyLossBatch, config: PolicyLossConfig = {}, options: EngineCallOptions = {}): Promise<EnginePolicyLossResult> {
    if (!GPU_LOSS_MODES[lossMode]) {
      // bypass_mode and user strategies: the CPU reference (host inputs only), gradient as float32.
      getPolicyLoss(lossMode);
      const r = await new CpuEngine('fallback').policyLoss(lossMode, batch, config, options);
      return { ...r, grad: r.grad instanceof Float64Array ? Float32Array.from(r.grad) : r.grad };
    }
    const r = await this.serial(() => this.runPolicy(lossMode, batch, config, false, options.gradInto, undefined));
    return { loss: r.loss, grad: r.grad as Float32Array, metrics: r.metrics };
  }

  async policyLossGpu(lossMode: string, batch: EnginePolicyLossBatch, config: PolicyLossConfig = {}, options: EngineGpuCallOptions = {}): Promise<EnginePolicyLossGpuResult> {
    if (!GPU_LOSS_MODES[lossMode]) {
      getPolicyLoss(lossMode);
      throw new ConfigError(`lossMode ${JSON.stringify(lossMode)} has no WebGPU kernel; use policyLoss`, 'lossMode');
    }
    const r = await this.serial(() => this.runPolicy(lossMode, batch, config, true, undefined, options.gradBuffer));
    return { loss: r.loss, gradBuffer: r.gradBuffer as GPUBuffer, metrics: r.metrics };
  }

  /**
   * Run one call with its buffers: `fields` (host scratch of the inputs), `temps` (pooled buffers, released at the
   * end) and `owned` (buffers handed to the caller, such as a fresh gradient buffer, destroyed only if the call
   * fails). Errors pass through {@link wrap}.
   */
  private async scoped<R>(body: (s: { fields: (Field | null)[]; temps: GPUBuffer[]; owned: GPUBuffer[]; hostTemps: Float32Array[] }) => Promise<R>): Promise<R> {
    const s = { fields: [] as (Field | null)[], temps: [] as GPUBuffer[], owned: [] as GPUBuffer[], hostTemps: [] as Float32Array[] };
    try {
      return await body(s);
    } catch (err) {
      for (const b of s.owned) b.destroy();
      throw this.wrap(err);
    } finally {
      for (const t of s.temps) this.gpu.pool.release(t);
      for (const a of s.hostTemps) this.gpu.pool.releaseHost(a);
      this.release(s.fields);
    }
  }

  /** A pooled host array of at least `length` floats for this call's read-backs (released when the call ends). */
  private hostTemp(length: number, hostTemps: Float32Array[]): Float32Array {
    const a = this.gpu.pool.acquireHost(length);
    hostTemps.push(a);
    return a;
  }

  private async runPolicy(
    lossMode: string,
    batch: EnginePolicyLossBatch,
    config: PolicyLossConfig,
    toBuffer: boolean,
    gradInto: Float32Array | undefined,
    gradBuffer: GPUBuffer | undefined,
  ): Promise<{ loss: number; grad: Float32Array | null; gradBuffer: GPUBuffer | null; metrics: Record<string, number> }> {
    const spec = GPU_LOSS_MODES[lossMode] as ModeSpec;
    if (batch == null || typeof batch !== 'object') throw new ShapeError('batch must be an object', 'batch');
    this.gpu.checkAlive();
    const cfg = resolvePolicyLossConfig(config);
    const shape = this.shapeOf([batch.responseMask, batch.logProbs, batch.oldLogProbs, batch.advantages], batch.shape, 'responseMask');
    const [B, T] = shape;
    const n = B * T;
    const need = (x: EngineMatrix | null | undefined, name: string): EngineMatrix => {
      if (x == null) throw new ShapeError(`batch.${name} is required`, name);
      return x;
    };
    return this.scoped(async ({ fields, temps, owned, hostTemps }) => {
      const olp = this.field(need(batch.oldLogProbs, 'oldLogProbs'), 'oldLogProbs', shape);
      fields.push(olp);
      const lp = this.field(need(batch.logProbs, 'logProbs'), 'logProbs', shape);
      fields.push(lp);
      const adv = this.field(need(batch.advantages, 'advantages'), 'advantages', shape);
      fields.push(adv);
      let mask = this.field(need(batch.responseMask, 'responseMask'), 'responseMask', shape);
      fields.push(mask);
      let w = batch.rolloutIsWeights == null || lossMode === 'bypass_mode' ? null : this.field(batch.rolloutIsWeights, 'rolloutIsWeights', shape);
      fields.push(w);
      let family = spec.family;

      // Host selection steps.
      let sel: Float32Array | null = null;
      let wHost: Float32Array | null = null;
      let zeroed = 0;
      const selectionInputs = (): SelectionInputs => {
        const h = (f: Field, name: string): Float32Array => {
          if ('buffer' in f) throw new ConfigError(`${lossMode}: ${name} must be a host array (its selection step runs on the CPU)`, name);
          return f.host;
        };
        return { oldLogProbs: h(olp, 'oldLogProbs'), logProbs: h(lp, 'logProbs'), advantages: h(adv, 'advantages'), mask: h(mask, 'responseMask'), n };
      };
      let aggMaskHost: Float32Array | null = null;
      let gpuTopK: Field | null = null;
      let extraMetrics: Record<string, number> | null = null;
      if (lossMode === 'bypass_mode') {
        // The rollout correction (IS weights, rejection mask, diagnostics) runs on the host in float64 with the
        // CPU reference's own code; the kernel then runs vanilla (ppo_clip) or gpg (REINFORCE, ℓ = −A·lp·w).
        const rc = cfg.rolloutCorrection;
        checkRolloutCorrectionConfig(rc);
        const reinforce = rc.lossType === 'reinforce';
        family = reinforce ? 'gpg' : 'vanilla';
        const si = selectionInputs();
        let valid = 0;
        for (let k = 0; k < n; k++) if ((si.mask[k] as number) !== 0) valid++;
        if (valid > 0) {
          const corr = rolloutCorrectionArrays(Float64Array.from(si.logProbs), Float64Array.from(si.oldLogProbs), Float64Array.from(si.mask), B, T, rc);
          mask = { host: Float32Array.from(corr.mask), scratch: null };
          if (reinforce && corr.weights) wHost = Float32Array.from(corr.weights);
          extraMetrics = corr.metrics;
        }
        w = null;
      } else if (spec.family === 'clip_cov') {
        checkClipCovRatio(cfg);
        const r = clipCovCorr(selectionInputs(), 1 - cfg.clipRatioLow, 1 + cfg.clipRatioHigh, cfg.clipCovRatio, cfg.clipCovLb, cfg.clipCovUb, cfg.clipCovSeed);
        zeroed = r.zeroed;
        wHost = r.corr;
        if (w) {
          if ('buffer' in w) throw new ConfigError('clip_cov: rolloutIsWeights must be a host array', 'rolloutIsWeights');
          for (let k = 0; k < n; k++) wHost[k] = (wHost[k] as number) * (w.host[k] as number);
        }
      } else if (spec.family === 'kl_cov') {
        checkKlCovRatio(cfg);
        sel = klCovSelection(selectionInputs(), cfg.klCovRatio);
      } else if (lossMode === 'eighty-twenty') {
        if (batch.entropy == null) throw new ShapeError('batch.entropy is required by eighty-twenty', 'entropy');
        const ent = this.field(batch.entropy, 'entropy', shape);
        fields.push(ent);
        const agg0 = cfg.lossAggMode ?? spec.defaultAgg;
        if (w === null && (agg0 === 'token-mean' || agg0 === 'seq-mean-token-sum-norm')) {
          gpuTopK = ent; // selected on the GPU below (shaders/topk.wgsl); host or GPU-resident entropies
        } else {
          // with IS weights or per-row coefficients: the host selection (AUX carries the weights; rows need counts)
          const si = selectionInputs();
          if ('buffer' in ent) throw new ConfigError('eighty-twenty: entropy must be a host array with rolloutIsWeights or a seq-mean-token-sum / seq-mean-token-mean mode (that selection runs on the CPU)', 'entropy');
          const selArr = this.gpu.pool.acquireHost(n); // pooled: fresh memory costs more than the selection
          fields.push({ host: selArr.subarray(0, n), scratch: selArr });
          sel = topEntropyMask(ent.host, si.mask, n, cfg.entropyTopRatio, selArr.subarray(0, n));
          aggMaskHost = sel;
        }
      }

      // Row lengths and aggregation coefficients (float64, on the host).
      // Row lengths are needed for per-row coefficients (seq-mean-*) and the host-side selections. Token-mean with
      // batchNumTokens and sum-norm need none: the kernel counts the valid tokens (metrics) and checks that the mask
      // is 0/1 itself. (Scaling token-mean's gradient by 1/N during the read-back instead of counting on the GPU was
      // tried: 0.8 ns/token slower at 2^23 on lavapipe.)
      const aggMode = spec.fixedAgg ? spec.defaultAgg : (cfg.lossAggMode ?? spec.defaultAgg);
      const gbi = cfg.globalBatchInfo;
      const hostStep = aggMaskHost !== null || gpuTopK !== null || lossMode === 'bypass_mode' || spec.family === 'clip_cov' || spec.family === 'kl_cov';
      const knownCoef = !hostStep && (aggMode === 'seq-mean-token-sum-norm' || (aggMode === 'token-mean' && gbi.batchNumTokens !== undefined));
      // Token-mean over this batch (N = Σ m): the GPU counts N (shaders/maskcount.wgsl) and the token pass divides
      // by it, so neither a host mask scan nor a read-back of a resident mask's lengths is needed.
      const givenLengths = 'buffer' in mask && batch.rowLengths !== undefined;
      const gpuCount = !hostStep && !knownCoef && aggMode === 'token-mean' && !givenLengths;
      // (the GPU selection's coefficient needs only the selected count k: set below)
      const needLengths = gpuTopK === null && (!(knownCoef || gpuCount || aggMode === 'row-mean') || givenLengths);
      // gspo with host inputs: its sequence log-ratio is summed on the host, in the mask scan (hostLengths), in float64
      // as the CPU reference sums it, and the inputs can then stream. (With the GPU row pass instead, ~1 ns/token on
      // lavapipe since it runs a row per invocation, the call took as long in paired runs at 2^23.)
      const gspoX = family === 'gspo' && 'host' in olp && 'host' in lp && 'host' in mask ? new Float64Array(B) : null;
      const scanned =
        'host' in mask && (needLengths || gspoX)
          ? gspoX && 'host' in olp && 'host' in lp
            ? this.hostLengths(mask.host, B, T, 'responseMask', { lp: lp.host, olp: olp.host, x: gspoX })
            : this.hostLengths(mask.host, B, T, 'responseMask')
          : null;
      let lengths: Float64Array | null = null;
      if (needLengths) {
        if (scanned) lengths = scanned;
        else if (batch.rowLengths) lengths = this.givenLengths(batch.rowLengths, B, T);
        else if ('buffer' in mask) lengths = await this.deviceLengths(mask.buffer, B, T);
      }
      let aggLengths = lengths;
      if (aggMaskHost && lengths) {
        aggLengths = new Float64Array(B);
        for (let i = 0; i < B; i++) {
          let s = 0;
          for (let j = 0, k = i * T; j < T; j++, k++) if ((aggMaskHost[k] as number) !== 0 && ((mask as { host: Float32Array }).host[k] as number) !== 0) s++;
          aggLengths[i] = s;
        }
      }
      let coef: Float64Array | null = null;
      let coef0 = 1;
      let perRow = false;
      if (aggMode !== 'row-mean') {
        // Without lengths (token-mean with batchNumTokens, sum-norm) the coefficients do not depend on them: a
        // stand-in of full rows gives the same (an all-masked batch then contributes nothing either way).
        coef = aggregationCoefficients(aggLengths ?? new Float64Array(B).fill(T), T, aggMode, gbi);
        perRow = aggMode === 'seq-mean-token-sum' || aggMode === 'seq-mean-token-mean';
        coef0 = perRow ? 1 : B > 0 && T > 0 ? (coef[0] ?? 0) : 0;
        if (gpuCount) coef0 = gbi.dpSize ?? 1; // divided by the GPU's count in the token pass
      }

      // Upload, the mask first: token-mean's count pass is submitted at once and runs on the GPU while the other
      // inputs upload (on a CPU adapter the upload's memcpy leaves a core idle).
      const bMask = this.bind(mask, temps);
      const isGeo = family === 'geo_mean';
      // Per-row data: x, y, z written by the row pass (or gspo's from the host scan), w = the aggregation coefficient.
      const needRows = family === 'gspo' || isGeo;
      const rowPass = needRows && !(gspoX && scanned);
      let bRows: GPUBuffer | null = null;
      // The GPU's valid-token count sits after the rows, at a binding-aligned offset (zeroed by this upload).
      const rowBytes = needRows || perRow ? 16 * Math.max(B, 1) : 0;
      const countByte = gpuCount ? roundUp(rowBytes, this.gpu.device.limits.minStorageBufferOffsetAlignment) : 0;
      if (needRows || perRow || gpuCount) {
        const rows = new Float32Array((gpuCount ? countByte + 16 : rowBytes) / 4);
        if (perRow && coef) for (let i = 0; i < B; i++) rows[4 * i + 3] = coef[i] as number;
        if (gspoX && scanned) {
          for (let i = 0; i < B; i++) {
            rows[4 * i] = gspoX[i] as number;
            rows[4 * i + 2] = scanned[i] as number;
          }
        }
        bRows = this.gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, rows.byteLength, 'lumirag-rows');
        this.gpu.device.queue.writeBuffer(bRows, 0, rows.buffer, 0, rows.byteLength);
        temps.push(bRows);
      }
      if (gpuCount && bRows) {
        const countPipe = await this.countPipeline();
        this.gpu.checkAlive();
        const enc0 = this.gpu.device.createCommandEncoder();
        this.encodeCountPass(enc0, countPipe, bMask, bRows, countByte, n, temps);
        this.gpu.device.queue.submit([enc0.finish()]);
      }
      // Host log-probs and advantages of a batch above one piece are streamed by the token pass (encodeTokenPass);
      // the GPU row pass (geo_mean, gspo on GPU inputs) reads them whole before it, so they are uploaded at once there.
      const stream = !rowPass && n > this.streamPiece && 'host' in olp && 'host' in lp && 'host' in adv;
      const passInput = (f: Field): PassInput => (stream && 'host' in f ? f.host : this.bind(f, temps));
      const bOlp = passInput(olp);
      const bLp = passInput(lp);
      const bAdv = passInput(adv);
      // Weights (IS weights, clip_cov's corr) and kl_cov / eighty-twenty's selection share one AUX input.
      let bW: GPUBuffer | null = null;
      if (wHost) {
        bW = this.gpu.upload(wHost);
        temps.push(bW);
      } else if (w) bW = this.bind(w, temps);
      const hasW = bW !== null;
      let bAux: GPUBuffer | null = isGeo ? null : bW;
      if (sel) {
        const auxArr = this.gpu.pool.acquireHost(n);
        fields.push({ host: auxArr.subarray(0, n), scratch: auxArr });
        const aux = auxArr.subarray(0, n);
        const wv: Float32Array | null = wHost ?? (w && 'host' in w ? w.host : null);
        if (hasW && !wv) throw new ConfigError(`${lossMode}: rolloutIsWeights must be a host array (its selection step runs on the CPU)`, 'rolloutIsWeights');
        for (let k = 0; k < n; k++) {
          const on = (sel[k] as number) !== 0;
          if (wv) {
            const x = wv[k] as number;
            if (x < 0) throw new ValueError(`rolloutIsWeights: must be >= 0 with ${lossMode}, got ${x} at [${Math.floor(k / T)}, ${k % T}]`, 'rolloutIsWeights');
            aux[k] = on ? x : -x;
          } else aux[k] = on ? 1 : -1;
        }
        bAux = this.gpu.upload(aux);
        temps.push(bAux);
      }
      // eighty-twenty selected on the GPU: the token pass reads the entropies (AUX) against the cut.
      let cut: TopKSelection | null = null;
      if (gpuTopK) {
        const bEnt = this.bind(gpuTopK, temps);
        const hostSel = 'host' in gpuTopK && 'host' in mask ? { ent: gpuTopK.host, mask: mask.host } : null;
        const r = await this.selectTopK(bEnt, bMask, n, cfg.entropyTopRatio, temps, hostSel);
        if (r.checked && r.checked.badMask > 0) {
          if ('host' in mask) this.hostLengths(mask.host, B, T, 'responseMask'); // the reference's message
          throw new ValueError('responseMask: a mask must be 0/1', 'responseMask');
        }
        if (r.nonFinite > 0) {
          if ('host' in gpuTopK && 'host' in mask) checkFiniteAtValid({ data: gpuTopK.host, rows: B, cols: T }, { data: mask.host, rows: B, cols: T }, 'entropy');
          throw new ValueError('entropy: a non-finite value at a valid position', 'entropy');
        }
        cut = r;
        bAux = bEnt;
        if (aggMode === 'token-mean') {
          const denom = gbi.batchNumTokens ?? r.k; // aggregationCoefficients' token-mean over the k selected tokens
          coef0 = r.k === 0 || denom === 0 ? 0 : (gbi.dpSize ?? 1) / denom;
        }
      }

      const bGrad = this.gradTarget(n, toBuffer, gradBuffer, temps, owned);
      const slots = WebGpuEngine.slots(n, this.gpu);
      const bPart = this.gpu.output(slots * 32, 'lumirag-partials');
      temps.push(bPart);

      const params: KernelParams = {
        T,
        B,
        lo: 1 - cfg.clipRatioLow,
        hi: 1 + cfg.clipRatioHigh,
        c: cfg.clipRatioC,
        coef0,
        tauPos: cfg.tauPos,
        tauNeg: cfg.tauNeg,
        klCoef: cfg.ppoKlCoef,
        epsLow: cfg.clipRatioLow,
        epsHigh: cfg.clipRatioHigh,
        countAt: countByte / 16,
        cutKey: cut?.cutKey ?? 0,
        cutIdx: cut?.cutIdx ?? 0,
        rowVec4: T % 4 === 0 ? 1 : 0,
      };
      const tokenConsts: PipelineConstants = {
        HAS_W: hasW && !isGeo,
        HAS_SEL: sel !== null,
        SEL_AGG: lossMode === 'eighty-twenty' && sel !== null,
        SEL_TOPK: cut !== null,
        SEL_TIES: cut !== null && cut.cutIdx !== 0xffffffff, // all ties at the cut taken: one comparison per token
        PER_ROW: perRow,
        NEED_ROW: needRows,
        COUNT_COEF: gpuCount,
        // the mask's count and 0/1 check are done already: by maskcount.wgsl, the host's length scan or the band pass
        MASK_CHECKED: gpuCount || scanned !== null || cut?.checked !== undefined,
      };
      const [tokPipe, rowPipe] = await Promise.all([
        this.tokenPipeline(family, tokenConsts),
        rowPass ? this.rowPipeline(isGeo ? 2 : 1, isGeo && bW !== null) : Promise.resolve(null),
      ]);
      this.gpu.checkAlive();
      let enc = this.gpu.device.createCommandEncoder();
      if (rowPipe && bRows) {
        if (bOlp instanceof Float32Array || bLp instanceof Float32Array || bAdv instanceof Float32Array) throw new GpuError('internal: the row pass needs its inputs uploaded whole');
        this.encodeRowPass(enc, rowPipe, { olp: bOlp, lp: bLp, adv: bAdv, mask: bMask, w: bW }, bRows, B, T, params, temps);
      }
      // the partial sums (64 per workgroup without barriers: 0.5 MB at 2^23) and geo_mean's rows land in pooled host
      // arrays, not fresh ones each call (a 0.5 MB array on fresh pages costs ~1.8 ms here; in steady state malloc
      // mostly recycles them, and paired e2e runs at 2^23 showed no difference)
      const partHost = this.hostTemp(slots * 8, hostTemps);
      const regions: ReadRegion[] = [{ buffer: bPart, bytes: slots * 32, into: partHost }];
      if (isGeo && bRows) regions.push({ buffer: bRows, bytes: B * 16, into: this.hostTemp(B * 4, hostTemps) });
      if (gpuCount && bRows) regions.push({ buffer: bRows, bytes: 16, offset: countByte });
      const gradArr = this.gradRegion(regions, bGrad, n, toBuffer, gradInto, stream);
      const pass = this.encodeTokenPass(enc, tokPipe, { olp: bOlp, lp: bLp, adv: bAdv, mask: bMask, aux: bAux, rows: bRows, grad: bGrad }, bPart, n, params, temps, stream ? gradArr : null, regions);
      const out = pass.pieces.length > 0 ? await WebGpuEngine.drain(pass.pieces) : await this.gpu.readback(pass.enc, regions, n);
      const S = WebGpuEngine.sumPartials(out[0] as Float32Array, slots, lengths);
      if (gpuCount) {
        const c = out[isGeo ? 2 : 1] as Float32Array;
        const cnt = new Uint32Array(c.buffer, c.byteOffset, 2); // maskcount.wgsl's (valid tokens, entries not 0/1)
        S.valid = cnt[0] as number;
        S.badMask = cnt[1] as number;
      }
      if (cut?.checked) S.valid = cut.checked.valid; // the band pass counted them (the token pass did not)
      if (S.badMask !== 0 && 'host' in mask) this.hostLengths(mask.host, B, T, 'responseMask');
      if (S.badMask !== 0) throw new ValueError('responseMask: a mask must be 0/1', 'responseMask');
      if (!Number.isFinite(S.inputSum)) this.reportNonFinite(olp, lp, adv, mask, w, n, T);
      let loss = S.loss;
      if (isGeo) {
        const rows = out[1] as Float32Array;
        loss = 0;
        for (let i = 0; i < B; i++) loss += rows[4 * i + 1] as number;
      }
      const metrics = this.metrics(lossMode, family, S, zeroed);
      if (extraMetrics) Object.assign(metrics, extraMetrics);
      return { loss, grad: gradArr ? (gradInto ?? gradArr) : null, gradBuffer: toBuffer ? bGrad : null, metrics };
    });
  }

  private metrics(lossMode: string, family: Family, S: PartialSums, zeroed: number): Record<string, number> {
    const mean = (x: number): number => x / (S.valid + MASKED_MEAN_EPS);
    switch (family) {
      case 'gpg':
        return lossMode === 'bypass_mode' ? { [METRIC.ppoKl]: mean(S.m1) } : {};
      case 'kl_cov':
        return { [METRIC.ppoKl]: mean(S.m1) };
      case 'clip_cov':
        return { [METRIC.pgClipfrac]: mean(zeroed), [METRIC.ppoKl]: mean(S.m1) };
      case 'sapo':
        return { [METRIC.pgClipfrac]: 0, [METRIC.ppoKl]: mean(S.m1), [METRIC.pgClipfracLower]: 0 };
      case 'gspo':
      case 'cispo':
        return { [METRIC.pgClipfrac]: mean(S.m0), [METRIC.ppoKl]: mean(S.m1), [METRIC.pgClipfracLower]: 0 };
      default:
        return { [METRIC.pgClipfrac]: mean(S.m0), [METRIC.ppoKl]: mean(S.m1), [METRIC.pgClipfracLower]: mean(S.m2) };
    }
  }

  /**
   * The GPU's sum of the inputs at valid positions is not finite: name the non-finite input when the inputs are
   * on the host (if there is none, the sum merely overflowed float32 and the call goes on).
   */
  private reportNonFinite(olp: Field, lp: Field, adv: Field, mask: Field, w: Field | null, n: number, T: number): void {
    const onHost = [olp, lp, adv, mask, w].every((f) => f === null || 'host' in f);
    if ('host' in mask) {
      const named: [Field | null, string][] = [[olp, 'oldLogProbs'], [lp, 'logProbs'], [adv, 'advantages'], [w, 'rolloutIsWeights']];
      for (const [f, name] of named) {
        if (!f || !('host' in f)) continue;
        for (let k = 0; k < n; k++) {
          if ((mask.host[k] as number) !== 0 && !Number.isFinite(f.host[k] as number)) {
            throw new ValueError(`${name}: non-finite value ${f.host[k]} at valid position [${Math.floor(k / T)}, ${k % T}]`, name);
          }
        }
      }
    }
    if (onHost) return;
    throw new ValueError('oldLogProbs / logProbs / advantages / rolloutIsWeights: a non-finite value (or a float32 overflow) at a valid position', 'logProbs');
  }

  private wrap(err: unknown): unknown {
    if (this.gpu.lost && !(err instanceof GpuDeviceLostError)) {
      try {
        this.gpu.checkAlive();
      } catch (lost) {
        return lost;
      }
    }
    return err;
  }

  async aggLoss(lossMat: EngineMatrix, mask: EngineMatrix, lossAggMode: LossAggMode, gbi: GlobalBatchInfo = {}, shape?: Shape2D, options: EngineCallOptions = {}): Promise<EngineAggLossResult> {
    const r = await this.serial(() => this.runAgg(lossMat, mask, lossAggMode, gbi, shape, false, options.gradInto, undefined));
    return { loss: r.loss, grad: r.grad as Float32Array };
  }

  async aggLossGpu(lossMat: EngineMatrix, mask: EngineMatrix, lossAggMode: LossAggMode, gbi: GlobalBatchInfo = {}, shape?: Shape2D, options: EngineGpuCallOptions = {}): Promise<EngineAggLossGpuResult> {
    const r = await this.serial(() => this.runAgg(lossMat, mask, lossAggMode, gbi, shape, true, undefined, options.gradBuffer));
    return { loss: r.loss, gradBuffer: r.gradBuffer as GPUBuffer };
  }

  private async runAgg(
    lossMat: EngineMatrix,
    mask: EngineMatrix,
    lossAggMode: LossAggMode,
    gbi: GlobalBatchInfo,
    shape: Shape2D | undefined,
    toBuffer: boolean,
    gradInto: Float32Array | undefined,
    gradBuffer: GPUBuffer | undefined,
  ): Promise<{ loss: number; grad: Float32Array | null; gradBuffer: GPUBuffer | null }> {
    const mode = checkLossAggMode(lossAggMode);
    const cfg = resolvePolicyLossConfig({ globalBatchInfo: gbi });
    this.gpu.checkAlive();
    const s = this.shapeOf([mask, lossMat], shape, 'mask');
    const [B, T] = s;
    const n = B * T;
    return this.scoped(async ({ fields, temps, owned, hostTemps }) => {
      const l = this.field(lossMat, 'lossMat', s);
      fields.push(l);
      const m = this.field(mask, 'mask', s);
      fields.push(m);
      const lengths = 'host' in m ? this.hostLengths(m.host, B, T, 'mask') : await this.deviceLengths(m.buffer, B, T);
      const coef = aggregationCoefficients(lengths, T, mode, cfg.globalBatchInfo);
      const perRow = mode === 'seq-mean-token-sum' || mode === 'seq-mean-token-mean';
      const bL = this.bind(l, temps);
      const bM = this.bind(m, temps);
      let bRows: GPUBuffer | null = null;
      if (perRow) {
        const rows = new Float32Array(4 * Math.max(B, 1));
        for (let i = 0; i < B; i++) rows[4 * i + 3] = coef[i] as number;
        bRows = this.gpu.upload(rows);
        temps.push(bRows);
      }
      const bGrad = this.gradTarget(n, toBuffer, gradBuffer, temps, owned);
      const slots = WebGpuEngine.slots(n, this.gpu);
      const bPart = this.gpu.output(slots * 32, 'lumirag-partials');
      temps.push(bPart);
      const pipe = await this.tokenPipeline('agg', { HAS_W: false, HAS_SEL: false, SEL_AGG: false, PER_ROW: perRow, NEED_ROW: false });
      const { enc } = this.encodeTokenPass(this.gpu.device.createCommandEncoder(), pipe, { olp: bL, lp: bL, adv: bL, mask: bM, aux: null, rows: bRows, grad: bGrad }, bPart, n, { T, B, coef0: perRow ? 1 : (coef[0] ?? 0), rowVec4: T % 4 === 0 ? 1 : 0 }, temps);
      const regions: ReadRegion[] = [{ buffer: bPart, bytes: slots * 32, into: this.hostTemp(slots * 8, hostTemps) }];
      const gradArr = this.gradRegion(regions, bGrad, n, toBuffer, gradInto);
      const out = await this.gpu.readback(enc, regions, n);
      const S = WebGpuEngine.sumPartials(out[0] as Float32Array, slots, lengths);
      if (S.badMask !== 0) throw new ValueError('mask: a mask must be 0/1', 'mask'); // a GPU-resident mask (a host one was scanned)
      if (!Number.isFinite(S.inputSum)) {
        if ('host' in l && 'host' in m) toMatrixCheck(l.host, m.host, T);
        else throw new ValueError('lossMat: a non-finite value (or a float32 overflow) at a valid position', 'lossMat');
      }
      return { loss: S.loss, grad: gradArr ? (gradInto ?? gradArr) : null, gradBuffer: toBuffer ? bGrad : null };
    });
  }
}

function toMatrixCheck(l: Float32Array, m: Float32Array, T: number): void {
  for (let k = 0; k < l.length; k++) {
    if ((m[k] as number) !== 0 && !Number.isFinite(l[k] as number)) {
      throw new ValueError(`lossMat: non-finite value ${l[k]} at valid position [${Math.floor(k / T)}, ${k % T}]`, 'lossMat');
    }
  }
}

/**
 * Create an engine. `'webgpu'` throws {@link GpuUnavailableError} (code `E_GPU_UNAVAILABLE`) without an
 * adapter; `'auto'` (the default) falls back to the CPU and says why in `engine.reason`. In Node the adapter
 * comes from Dawn (the `webgpu` package), in browsers from `navigator.gpu`. Create one engine and reuse it
 * (start-up costs ~150 ms plus ~10 ms per kernel compiled on first use); call `destroy()` when done.
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const backend = options.backend ?? 'auto';
  if (backend !== 'webgpu' && backend !== 'cpu' && backend !== 'auto') {
    throw new ConfigError(`backend must be 'webgpu', 'cpu' or 'auto', got ${JSON.stringify(backend)}`, 'backend');
  }
  const piece = options.streamPieceTokens ?? STREAM_PIECE_TOKENS;
  if (!Number.isSafeInteger(piece) || piece < 0) throw new ConfigError(`streamPieceTokens must be an integer >= 0, got ${piece}`, 'streamPieceTokens');
  if (backend === 'cpu') return new CpuEngine('backend: cpu requested');
  try {
    const acquired = await acquireDevice(options);
    const ctx = new GpuContext(acquired, options.maxBindingBytes, options.vec4PerInvocation, options.barrierFree);
    return new WebGpuEngine(ctx, `${backend}: WebGPU adapter ${acquired.description}${acquired.subgroups ? ' (subgroups)' : ' (no subgroups: barrier-tree reductions)'}`, piece);
  } catch (err) {
    if (backend === 'auto' && err instanceof GpuUnavailableError) return new CpuEngine(`auto: ${err.message}`);
    if (err instanceof GpuUnavailableError) throw err;
    if (backend === 'auto') return new CpuEngine(`auto: WebGPU device request failed (${(err as Error).message})`);
    throw new GpuError(`WebGPU device request failed: ${(err as Error).message}`);
  }
}

