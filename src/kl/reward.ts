/**
 * verl's KL-in-reward penalty (`apply_kl_penalty`, ray_trainer.py; SPEC.md §6), used when
 * `algorithm.use_kl_in_reward` is on: token_level_rewards = token_level_scores − β·kl·m, with β from a KL
 * controller that is then updated with the batch's KL.
 *
 * @module
 */
import { ShapeError } from '../errors.js';
import { type MatrixInput, type Shape2D, checkFiniteAtValid, expectShape, isNested, nestedShape, toMask, toMatrix } from '../matrix.js';
import type { KlController } from './controllers.js';
import { scratch } from '../losses/common.js';
import { type KlKind, klPenalty } from './penalty.js';

/** Inputs of {@link applyKlPenalty}: `[B][T]` matrices, nested or flat with `shape`. */
export interface KlPenaltyInputs {
  /** The reward manager's per-token scores (verl's `token_level_scores`). */
  tokenLevelScores: MatrixInput;
  /** Log-probs of the rollout under the actor before the update (`old_log_probs`). */
  oldLogProbs: MatrixInput;
  /** Log-probs under the reference policy (`ref_log_prob`). */
  refLogProbs: MatrixInput;
  /** 0/1 response mask. */
  responseMask: MatrixInput;
  /** `[B, T]` for flat inputs. */
  shape?: Shape2D;
}

/** Result of {@link applyKlPenalty}. */
export interface KlPenaltyRewardResult {
  /** token_level_scores − β·kl·m, flat `[B·T]` (verl's `token_level_rewards`). */
  tokenLevelRewards: Float64Array;
  /** The batch KL: the mean over all B rows of each row's masked mean of kl (a row with no valid token counts 0). */
  currentKl: number;
  /** The β that was applied (the controller's value before its update). */
  beta: number;
  /** `actor/reward_kl_penalty` (= currentKl) and `actor/reward_kl_penalty_coeff` (= β). */
  metrics: Record<string, number>;
}

/**
 * verl's `apply_kl_penalty(data, kl_ctrl, kl_penalty)`: subtract β·kl from the scores at valid positions, measure
 * the batch KL, and update the controller with n_steps = B (so an adaptive controller changes `klCtrl.value`).
 *
 * @param inputs - scores, old and reference log-probs, mask
 * @param klCtrl - a {@link FixedKLController} / {@link AdaptiveKLController} (or any {@link KlController}); updated in place
 * @param kind - the KL estimator (`algorithm.kl_penalty`, default `kl`)
 */
export function applyKlPenalty(inputs: KlPenaltyInputs, klCtrl: KlController, kind: KlKind = 'kl'): KlPenaltyRewardResult {
  const shape = inputs.shape ?? (isNested(inputs.responseMask) ? nestedShape(inputs.responseMask, 'responseMask') : undefined);
  if (!shape) throw new ShapeError('inputs.shape [B, T] is required when the inputs are flat arrays', 'shape');
  const mask = toMask(inputs.responseMask, 'responseMask', shape);
  const [B, T] = [mask.rows, mask.cols];
  const scores = toMatrix(inputs.tokenLevelScores, 'tokenLevelScores', shape);
  expectShape(scores, B, T, 'tokenLevelScores');
  const olp = toMatrix(inputs.oldLogProbs, 'oldLogProbs', shape);
  const ref = toMatrix(inputs.refLogProbs, 'refLogProbs', shape);
  expectShape(olp, B, T, 'oldLogProbs');
  expectShape(ref, B, T, 'refLogProbs');
  checkFiniteAtValid(olp, mask, 'oldLogProbs');
  checkFiniteAtValid(ref, mask, 'refLogProbs');
  // the KL values are used only here: scratch arrays instead of three fresh [B·T] ones
  const n = B * T;
  const { kld } = klPenalty(olp.data, ref.data, kind, [B, T], { klInto: scratch('klValue', n), gradInto: scratch('klGrad', n), gradRefInto: scratch('klGradRef', n) });
  const beta = klCtrl.value;
  const rewards = new Float64Array(B * T);
  let klSum = 0;
  for (let i = 0; i < B; i++) {
    let s = 0;
    let n = 0;
    for (let j = 0, k = i * T; j < T; j++, k++) {
      const sc = scores.data[k] as number;
      if (mask.data[k] !== 0) {
        const v = kld[k] as number;
        rewards[k] = sc - beta * v;
        s += v;
        n += 1;
      } else {
        rewards[k] = sc;
      }
    }
    klSum += s / (n + 1e-8);
  }
  const currentKl = B > 0 ? klSum / B : Number.NaN;
  klCtrl.update(currentKl, B);
  return {
    tokenLevelRewards: rewards,
    currentKl,
    beta,
    metrics: { 'actor/reward_kl_penalty': currentKl, 'actor/reward_kl_penalty_coeff': beta },
  };
}
