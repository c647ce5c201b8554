/**
 * Entropy of the next-token distribution (verl's `entropy_from_logits`, `compute_entropy_loss`) with gradients,
 * and the top-entropy token selection of the 80/20 mode.
 *
 * @module
 */
export { entropyFromLogits, computeEntropyLoss, toLogits } from './entropy.js';
export type { FlatLogits, EntropyOptions, EntropyResult, EntropyLossOptions, EntropyLossResult, LogitsInput, Shape3D } from './entropy.js';
export { entropyTopMask } from './topMask.js';
export { entropyFromLogitsGpu, entropyFromLogitsGpuBuffer } from './gpu.js';
export type { EntropyGpuOptions, EntropyGpuResult, EntropyGpuBufferResult } from './gpu.js';
