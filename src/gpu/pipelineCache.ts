/**
 * Compute pipelines compiled once per (kernel, compile-time constants) and cached. Shader compilation errors
 * surface as {@link GpuShaderError} with the WGSL compiler's messages (from `getCompilationInfo`).
 *
 * @module
 */
import { GpuShaderError } from '../errors.js';

/** Compile-time (`override`) constants of a pipeline. */
export type PipelineConstants = Record<string, number | boolean>;

/** The pipeline cache of one device. */
export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

  /** @param device - the device pipelines are compiled for */
  constructor(private readonly device: GPUDevice) {}

  /** Number of pipelines compiled so far (a new batch shape must never add one). */
  get size(): number {
    return this.pipelines.size;
  }

  /**
   * The pipeline of `name` built from `code` with `constants` (entry point `main`), compiled on first use.
   * `name` plus the constants is the cache key: the same name must always come with the same code. `code` may
   * be a function, called only on a cache miss (assembling WGSL per call costs more than the lookup).
   */
  get(name: string, code: string | (() => string), constants: PipelineConstants = {}): Promise<GPUComputePipeline> {
    const keys = Object.keys(constants).sort();
    const key = `${name}|${keys.map((k) => `${k}=${Number(constants[k])}`).join(',')}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(name, typeof code === 'function' ? code() : code, constants);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private async compile(name: string, code: string, constants: PipelineConstants): Promise<GPUComputePipeline> {
    const module = this.device.createShaderModule({ code, label: name });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) {
      const lines = code.split('\n');
      const text = errors
        .map((m) => `${name}:${m.lineNum}:${m.linePos}: ${m.message}\n    ${lines[m.lineNum - 1] ?? ''}`)
        .join('\n');
      throw new GpuShaderError(name, `WGSL compilation of kernel "${name}" failed:\n${text}`);
    }
    const numeric: Record<string, number> = {};
    for (const [k, v] of Object.entries(constants)) numeric[k] = Number(v);
    try {
      return await this.device.createComputePipelineAsync({
        label: name,
        layout: 'auto',
        compute: { module, entryPoint: 'main', constants: numeric },
      });
    } catch (err) {
      throw new GpuShaderError(name, `pipeline creation of kernel "${name}" failed: ${(err as Error).message}`);
    }
  }
}
