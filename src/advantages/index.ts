/**
 * Advantage estimators: every estimator verl registers (GRPO and its vectorized / pass@k variants, RLOO,
 * REINFORCE++, ReMax, OPO, GPG, GAE, the optimal-token baselines), as a float64 CPU reference with a registry.
 *
 * @module
 */
export {
  computeAdvantage,
  grpoAdvantages,
  registerAdvantageEstimator,
  unregisterAdvantageEstimator,
  listAdvantageEstimators,
  getAdvantageEstimator,
  VERL_ADVANTAGE_ESTIMATORS,
} from './registry.js';
export type { RegisterAdvantageEstimatorOptions, GrpoAdvantagesOptions } from './registry.js';
export { resolveAdvantageInputs, resolveAdvantageConfig, denseGroupIds, maskedWhiten } from './common.js';
export { groupMeanStdFloat32, GROUP_EPSILON, OTB_EPSILON } from './estimators.js';
export type { GroupStatsFloat32 } from './estimators.js';
export type { DenseGroupIds } from './common.js';
export type {
  AdvantageCallOptions,
  AdvantageConfig,
  AdvantageEstimatorEntry,
  AdvantageEstimatorFn,
  AdvantageInputName,
  AdvantageInputs,
  AdvantageResult,
  GroupId,
  ResolvedAdvantageConfig,
  ResolvedAdvantageInputs,
} from './types.js';
export { computeAdvantageGpu, GPU_ADVANTAGE_ESTIMATORS } from './gpu.js';
export type { AdvantageGpuResult, AdvantageGpuOptions } from './gpu.js';
