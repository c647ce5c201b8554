/**
 * The WebGPU backend: `createEngine` (WebGPU or the CPU reference behind one API), the GPU context other
 * kernels build on, and the WGSL sources of shaders/.
 *
 * @module
 */
export { createEngine, isGpuBuffer, GPU_LOSS_MODES } from './engine.js';
export type {
  BackendChoice,
  Engine,
  EngineOptions,
  EngineMatrix,
  EnginePolicyLossBatch,
  EngineCallOptions,
  EnginePolicyLossResult,
  EngineAggLossResult,
  EngineGpuCallOptions,
  EnginePolicyLossGpuResult,
  EngineAggLossGpuResult,
  GpuKernelFamily,
  GpuModeSpec,
} from './engine.js';
export { GpuContext, WORKGROUP_SIZE, VEC4_PER_INVOCATION_SOFTWARE, VEC4_PER_INVOCATION_GPU, PARAMS_BYTES, STREAM_PIECE_TOKENS } from './context.js';
export type { KernelParams, Grid, ReadRegion } from './context.js';
export { acquireDevice, getGpu } from './device.js';
export type { AcquireDeviceOptions, AcquiredDevice } from './device.js';
export { PipelineCache } from './pipelineCache.js';
export type { PipelineConstants } from './pipelineCache.js';
export { BufferPool, BufferUsage, MapMode, roundUp, sizeClass } from './buffers.js';
export { clipCovCorr, klCovSelection, topEntropyMask, topKIndices } from './selection.js';
export type { SelectionInputs } from './selection.js';
export { SHADER_SOURCES } from './shaderSources.generated.js';
