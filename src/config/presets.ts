/**
 * The seed's three strategies (`../shared/SEED.md`): the values its training script sets through the environment
 * variables `loss_mode`, `clip_ratio_low`, `clip_ratio_high` and `loss_agg_mode`, and the policy-loss config they
 * mean here.
 *
 * @module
 */
import { DAPO_LOSS_DEFAULTS, GSPO_LOSS_DEFAULTS, SAPO_LOSS_DEFAULTS } from '../losses/seed.js';
import type { LossAggMode, PolicyLossConfig } from './policyLoss.js';

/** The seed's strategy names. */
export type StrategyName = 'dapo' | 'gspo' | 'sapo';

/** The accepted {@link StrategyName}s, DAPO (the seed's default) first. */
export const STRATEGY_NAMES: readonly StrategyName[] = ['dapo', 'gspo', 'sapo'];

/** The four environment variables the seed sets per strategy, exactly as it sets them. */
export interface SeedStrategyEnv {
  /** `loss_mode`. */
  loss_mode: string;
  /** `clip_ratio_low` (SAPO: τ_neg). */
  clip_ratio_low: number;
  /** `clip_ratio_high` (SAPO: τ_pos). */
  clip_ratio_high: number;
  /** `loss_agg_mode`. */
  loss_agg_mode: LossAggMode;
}

/** One seed strategy. */
export interface StrategyPreset {
  /** Short name. */
  name: StrategyName;
  /** What it is. */
  title: string;
  /** The paper. */
  paper: string;
  /** `actor.policy_loss.loss_mode`. */
  lossMode: string;
  /**
   * The policy-loss options (the same objects as `DAPO_LOSS_DEFAULTS` / `GSPO_LOSS_DEFAULTS` / `SAPO_LOSS_DEFAULTS`
   * of the seed loss functions). For SAPO the seed's clip-ratio variables carry the temperatures, so they appear here
   * as `tauNeg` (from `clip_ratio_low` = 1.05) and `tauPos` (from `clip_ratio_high` = 1.00).
   */
  policyLoss: PolicyLossConfig;
  /** The seed's variables as written in its script. */
  env: SeedStrategyEnv;
  /** Remarks (how verl treats the setting). */
  note: string;
}

/**
 * The seed's settings (SEED.md table):
 *
 * | preset | loss_mode | clip_ratio_low | clip_ratio_high | loss_agg_mode |
 * |---|---|---|---|---|
 * | `dapo` (default) | `eighty-twenty` | 0.2 | 0.28 | `token-mean` |
 * | `gspo` | `gspo` | 0.0003 | 0.0004 | `seq-mean-token-mean` |
 * | `sapo` | `sapo` | 1.05 (= τ_neg) | 1.00 (= τ_pos) | `token-mean` |
 */
export const presets: Readonly<Record<StrategyName, Readonly<StrategyPreset>>> = Object.freeze({
  dapo: Object.freeze({
    name: 'dapo',
    title: 'DAPO: clip-higher, token-level loss, training on the high-entropy minority tokens (80/20)',
    paper: 'arXiv 2503.14476; 80/20: arXiv 2506.01939',
    lossMode: 'eighty-twenty',
    policyLoss: DAPO_LOSS_DEFAULTS,
    env: Object.freeze({ loss_mode: 'eighty-twenty', clip_ratio_low: 0.2, clip_ratio_high: 0.28, loss_agg_mode: 'token-mean' }),
    note: 'The seed\'s default and recommended strategy. eighty-twenty trains only the top 20% tokens by entropy (SPEC.md §11).',
  }) as StrategyPreset,
  gspo: Object.freeze({
    name: 'gspo',
    title: 'GSPO: sequence-level importance ratio with tight clipping',
    paper: 'arXiv 2507.18071',
    lossMode: 'gspo',
    policyLoss: GSPO_LOSS_DEFAULTS,
    env: Object.freeze({ loss_mode: 'gspo', clip_ratio_low: 0.0003, clip_ratio_high: 0.0004, loss_agg_mode: 'seq-mean-token-mean' }),
    note: 'verl\'s gspo always aggregates with seq-mean-token-mean, whatever loss_agg_mode says.',
  }) as StrategyPreset,
  sapo: Object.freeze({
    name: 'sapo',
    title: 'SAPO: soft sigmoid gate instead of clipping',
    paper: 'arXiv 2511.20347',
    lossMode: 'sapo',
    policyLoss: SAPO_LOSS_DEFAULTS,
    env: Object.freeze({ loss_mode: 'sapo', clip_ratio_low: 1.05, clip_ratio_high: 1.0, loss_agg_mode: 'token-mean' }),
    note:
      'The seed carries tau_neg in clip_ratio_low and tau_pos in clip_ratio_high. verl\'s sapo computes seq-mean-token-mean ' +
      'regardless of loss_agg_mode; lumirag-rl honours the token-mean the seed sets (configFromEnv warns).',
  }) as StrategyPreset,
});

/** The preset of a name, or undefined. */
export function getPreset(name: string): StrategyPreset | undefined {
  return (STRATEGY_NAMES as readonly string[]).includes(name) ? presets[name as StrategyName] : undefined;
}
