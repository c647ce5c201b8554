/**
 * Policy losses: importing this module registers every built-in strategy.
 *
 * @module
 */
import './vanilla.js';
import './gspo.js';
import './sapo.js';
import './gpg.js';
import './clipCov.js';
import './klCov.js';
import './geoMean.js';
import './cispo.js';
import './eightyTwenty.js';

export { policyLoss, registerPolicyLoss, unregisterPolicyLoss, listPolicyLosses, getPolicyLoss, resolveBatch } from './registry.js';
export type { RegisterPolicyLossOptions } from './registry.js';
export { vanillaLoss, vanillaTokenPass } from './vanilla.js';
export type { TokenPass } from './vanilla.js';
export { gspoLossStrategy, GSPO_LOG_RATIO_CAP } from './gspo.js';
export { sapoLossStrategy } from './sapo.js';
export { gpgLossStrategy } from './gpg.js';
export { clipCovLossStrategy, clipCovSelect } from './clipCov.js';
export { klCovLossStrategy } from './klCov.js';
export { geoMeanLossStrategy, GEO_MEAN_EPS, GEO_MEAN_LOG_W_EPS } from './geoMean.js';
export { cispoLossStrategy } from './cispo.js';
export { eightyTwentyLossStrategy, eightyTwentyCount } from './eightyTwenty.js';
export { dapoLoss, gspoLoss, sapoLoss, DAPO_LOSS_DEFAULTS, GSPO_LOSS_DEFAULTS, SAPO_LOSS_DEFAULTS } from './seed.js';
export { finishTokenLoss, topKByValue, LOG_RATIO_CLAMP, releaseScratch } from './common.js';
export { METRIC } from './types.js';
export type { PolicyLossBatch, PolicyLossEntry, PolicyLossOptions, PolicyLossResult, PolicyLossStrategy, ResolvedBatch } from './types.js';
export * from './bypassMode.js';
export * from './rolloutCorrection.js';
