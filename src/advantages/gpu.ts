/**
 * GRPO-family group normalisation on WebGPU (shaders/grpo_normalize.wgsl), built on the engine's
 * {@link GpuContext} (`engine.gpu`). `grpo`, `grpo_vectorized` (and Dr.GRPO, normAdvByStdInGrpo = false), `rloo`,
 * `rloo_vectorized` and `gpg` run on the GPU in float32; every other estimator, and every estimator on an engine
 * without a GPU, runs the float64 CPU reference.
 *
 * @module
 */
import { BufferUsage, roundUp } from '../gpu/buffers.js';
import type { Engine } from '../gpu/engine.js';
import { resolveAdvantageConfig, resolveAdvantageInputs } from './common.js';
import { GROUP_EPSILON } from './estimators.js';
import { computeAdvantage, getAdvantageEstimator } from './registry.js';
import type { AdvantageConfig, AdvantageInputs } from './types.js';

/** The estimators with a WebGPU kernel (shaders/grpo_normalize.wgsl) and their kernel mode. */
const GPU_MODES: Readonly<Record<string, number>> = { grpo: 0, grpo_vectorized: 0, rloo: 1, rloo_vectorized: 2, gpg: 3 };

/** The estimators with a WebGPU kernel: the group-mean baselines. */
export const GPU_ADVANTAGE_ESTIMATORS: readonly string[] = Object.keys(GPU_MODES);

/** Options of {@link computeAdvantageGpu}. */
export interface AdvantageGpuOptions {
  /**
   * Compute only the per-row advantages on the GPU and broadcast them over the mask on the host. Automatic when
   * `B·T` exceeds one storage binding of the device.
   */
  broadcastOnHost?: boolean;
}

/** Result of {@link computeAdvantageGpu}. */
export interface AdvantageGpuResult {
  /** Advantages, flat `[B·T]`: float32 from WebGPU, float64 from the CPU reference. */
  advantages: Float32Array | Float64Array;
  /** Returns (a copy of the advantages for the outcome estimators). */
  returns: Float32Array | Float64Array;
  /** One advantage per row (`[B]`), when the GPU kernel ran. */
  rowAdvantages?: Float32Array;
  /** Which backend computed it. */
  backend: 'webgpu' | 'cpu';
}

/**
 * `computeAdvantage` on an engine: the group-mean estimators (`grpo`, `grpo_vectorized`, `rloo`,
 * `rloo_vectorized`, `gpg`; {@link GPU_ADVANTAGE_ESTIMATORS}) run the WGSL group-normalisation kernel (group mean
 * and std over arbitrary group sizes and interleaved rows, in float32); other estimators, or an engine without a
 * GPU, run the float64 CPU reference. Same inputs, options and errors as {@link computeAdvantage}.
 *
 * Float32 differences: the statistics are computed stably (two passes, shifted by the group's first score), so
 * they agree with the float64 reference at float32 tolerance; `grpo_vectorized`'s own float32 sums are not
 * replicated operation by operation.
 */
export async function computeAdvantageGpu(
  engine: Pick<Engine, 'gpu'>,
  estimator: string,
  inputs: AdvantageInputs,
  config: AdvantageConfig = {},
  options: AdvantageGpuOptions = {},
): Promise<AdvantageGpuResult> {
  const gpu = engine.gpu;
  if (!gpu || !GPU_ADVANTAGE_ESTIMATORS.includes(estimator)) {
    const r = computeAdvantage(estimator, inputs, config);
    return { advantages: r.advantages, returns: r.returns, backend: 'cpu' };
  }
  getAdvantageEstimator(estimator);
  const c = resolveAdvantageConfig(config);
  const x = resolveAdvantageInputs(inputs);
  if (x.groupIds == null) return cpuFallbackMissingIndex(estimator, inputs, config);
  const { B, T, numGroups } = x;
  if (B === 0) return { advantages: new Float32Array(0), returns: new Float32Array(0), rowAdvantages: new Float32Array(0), backend: 'webgpu' };
  gpu.checkAlive();
  // Rows sorted by group (counting sort): MEMBERS[OFFSETS[g] .. OFFSETS[g+1]) are the rows of group g.
  const offsets = new Uint32Array(numGroups + 1);
  for (let i = 0; i < B; i++) offsets[(x.groupIds[i] as number) + 1] = (offsets[(x.groupIds[i] as number) + 1] as number) + 1;
  for (let g = 0; g < numGroups; g++) offsets[g + 1] = (offsets[g + 1] as number) + (offsets[g] as number);
  const fill = offsets.slice(0, numGroups);
  const members = new Uint32Array(B);
  for (let i = 0; i < B; i++) {
    const g = x.groupIds[i] as number;
    members[fill[g] as number] = i;
    fill[g] = (fill[g] as number) + 1;
  }
  const scores = Float32Array.from(x.scores);
  const rowsOnly = options.broadcastOnHost === true || B * T > gpu.maxBindingFloats;
  const md = x.maskData ?? x.mask; // read in place (uploaded as is when float32)
  const mask = rowsOnly ? new Float32Array(4) : md instanceof Float32Array ? md : Float32Array.from(md);
  const eps = c.epsilon ?? GROUP_EPSILON;
  const mode = GPU_MODES[estimator] as number;
  const flags = (mode === 0 && c.normAdvByStdInGrpo ? 1 : 0) | (estimator === 'grpo_vectorized' ? 2 : 0) | (rowsOnly ? 4 : 0) | (mode << 3);
  let gpgScale = 0;
  if (mode === 3) {
    // verl's α = B / max(#nonzero scores, 1), evaluated in float32 as torch does, then divided by f_norm.
    let m = 0;
    for (let i = 0; i < B; i++) if (x.scores[i] !== 0) m++;
    gpgScale = Math.fround(Math.fround(1 / Math.max(m, 1)) * B) / c.fNorm;
  }

  const pipeline = await gpu.pipeline('grpo_normalize', gpu.source(['grpo_normalize']));
  const dev = gpu.device;
  const up = (a: Float32Array | Uint32Array): GPUBuffer => {
    const buf = gpu.pool.acquire(BufferUsage.STORAGE | BufferUsage.COPY_DST, roundUp(Math.max(a.byteLength, 16), 16), 'lumirag-grpo-in');
    dev.queue.writeBuffer(buf, 0, a.buffer, a.byteOffset, a.byteLength);
    return buf;
  };
  const bScores = up(scores);
  const bMembers = up(members);
  const bOffsets = up(offsets);
  const bMask = up(mask);
  const bRow = gpu.output(B * 4, 'lumirag-grpo-row');
  const bAdv = gpu.output(rowsOnly ? 16 : B * T * 4, 'lumirag-grpo-adv');
  const grid = gpu.grid(numGroups);
  const u = gpu.uniform({ n: numGroups, B, T, groupsX: grid.x, base: flags, coef0: eps, lo: gpgScale });
  try {
    const enc = dev.createCommandEncoder();
    gpu.dispatch(enc, pipeline, [u, bScores, bMembers, bOffsets, bMask, bRow, bAdv].map((buffer) => ({ buffer })), grid);
    if (rowsOnly) {
      const [row] = await gpu.readback(enc, [{ buffer: bRow, bytes: B * 4 }], B * T);
      const r = row as Float32Array;
      const a = new Float32Array(B * T);
      for (let i = 0; i < B; i++) {
        const v = r[i] as number;
        for (let j = 0, k = i * T; j < T; j++, k++) if (md[k] !== 0) a[k] = v;
      }
      return { advantages: a, returns: a.slice(), rowAdvantages: r, backend: 'webgpu' };
    }
    const [adv, row] = await gpu.readback(enc, [
      { buffer: bAdv, bytes: B * T * 4 },
      { buffer: bRow, bytes: B * 4 },
    ], B * T);
    const a = adv as Float32Array;
    return { advantages: a, returns: a.slice(), rowAdvantages: row as Float32Array, backend: 'webgpu' };
  } finally {
    for (const b of [bScores, bMembers, bOffsets, bMask, bRow, bAdv, u]) gpu.pool.release(b);
  }
}

function cpuFallbackMissingIndex(estimator: string, inputs: AdvantageInputs, config: AdvantageConfig): AdvantageGpuResult {
  // computeAdvantage raises the same typed error the CPU path would (index is required).
  const r = computeAdvantage(estimator, inputs, config);
  return { advantages: r.advantages, returns: r.returns, backend: 'cpu' };
}
