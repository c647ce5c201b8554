/**
 * The actor loss: a policy loss combined with an entropy bonus and a KL loss, as verl's actor does.
 *
 * @module
 */
export { actorLoss, ACTOR_LOSS_DEFAULTS } from './actorLoss.js';
export type { ActorLossBatch, ActorLossConfig, ActorLossResult } from './actorLoss.js';
