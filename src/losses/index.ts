/**
 * Policy losses: importing this module registers every built-in strategy.
 *
 * @module
 */
import './vanilla.js';

export { policyLoss, registerPolicyLoss, unregisterPolicyLoss, listPolicyLosses, getPolicyLoss, resolveBatch } from './registry.js';
export type { RegisterPolicyLossOptions } from './registry.js';
export { vanillaLoss, vanillaTokenPass } from './vanilla.js';
export type { TokenPass } from './vanilla.js';
export { finishTokenLoss, LOG_RATIO_CLAMP } from './common.js';
export { METRIC } from './types.js';
export type { PolicyLossBatch, PolicyLossEntry, PolicyLossResult, PolicyLossStrategy, ResolvedBatch } from './types.js';
