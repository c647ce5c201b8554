/**
 * KL penalties (verl's `kl_penalty`: k1, abs, k2, k3 and the "+" straight-through kinds) and the KL coefficient
 * controllers.
 *
 * @module
 */
export { klPenalty, checkKlKind, KL_BASE_KINDS, KL_KINDS, K3_LOG_RATIO_CLAMP, K3_VALUE_CLAMP } from './penalty.js';
export type { KlBaseKind, KlKind, KlPenaltyOptions, KlPenaltyResult } from './penalty.js';
export { FixedKLController, AdaptiveKLController, createKlController } from './controllers.js';
export type { KlController, KlControllerConfig } from './controllers.js';
export { applyKlPenalty } from './reward.js';
export type { KlPenaltyInputs, KlPenaltyRewardResult } from './reward.js';
