/**
 * Types of the advantage estimators: the inputs a caller passes (verl's argument names in camelCase), the
 * validated inputs an estimator sees, the options, the result, and the estimator signature.
 *
 * @module
 */
import type { MatrixInput, Shape2D } from '../matrix.js';

/** A group id: verl's `uid` (a string per prompt); numbers are accepted and compared as their string form. */
export type GroupId = string | number;

/**
 * What an advantage estimator reads. Every matrix is `[B][T]`: nested `number[][]`, or flat row-major with
 * `shape` set. Only `tokenLevelRewards` and `responseMask` are always required; the others are required by the
 * estimators that read them (`getAdvantageEstimator(name).requires`).
 */
export interface AdvantageInputs {
  /** Per-token rewards (the outcome reward sits on the last valid token). Summed over **all** positions, as verl does. */
  tokenLevelRewards: MatrixInput;
  /** 1 at valid response tokens, 0 at padding. */
  responseMask: MatrixInput;
  /** Group id of each row (verl's `index`, the prompt uid); rows of a group may be interleaved. Length B. */
  index?: readonly GroupId[];
  /** Critic values (`gae`). */
  values?: MatrixInput;
  /** Reward of the greedy baseline response, one per row (`remax`). Length B. */
  rewardBaselines?: ArrayLike<number>;
  /** Log-probs of the sampled tokens under the rollout/training policy (optimal-token-baseline estimators). */
  oldLogProbs?: MatrixInput;
  /** Σ_v π_v² over the vocabulary at each position (optimal-token-baseline estimators). */
  sumPiSquared?: MatrixInput;
  /** Rollout IS weights; the optimal-token-baseline estimators scale W by their square when given. */
  rolloutIsWeights?: MatrixInput | null;
  /** `[B, T]`; required when the matrices are flat arrays. */
  shape?: Shape2D;
}

/** Options of the estimators: verl's argument / `algorithm.*` names in camelCase. All are optional. */
export interface AdvantageConfig {
  /**
   * Numerical ε. Default 1e-6 for the group estimators (verl's `epsilon`; the trainer never changes it for
   * GRPO) and 1e-8 for `optimal_token_baseline` / `tir_optimal_token_baseline`.
   */
  epsilon?: number;
  /** Divide by the group std (`algorithm.norm_adv_by_std_in_grpo`, default true); false = Dr.GRPO. Read by grpo, grpo_vectorized, grpo_passk. */
  normAdvByStdInGrpo?: boolean;
  /** Discount γ (`algorithm.gamma`, default 1.0). Read by gae and reinforce_plus_plus. */
  gamma?: number;
  /** GAE λ (`algorithm.lam`, default 1.0). */
  lam?: number;
  /** GPG's normaliser f_norm (default 1.0). */
  fNorm?: number;
  /** Optimal-token-baseline: zero the baseline on the part of the single longest trajectory beyond the second longest (default true). */
  handleZeroTail?: boolean;
}

/** {@link AdvantageConfig} with every default filled in. */
export interface ResolvedAdvantageConfig {
  /** The ε the caller gave, or undefined (each estimator then uses its own default). */
  epsilon: number | undefined;
  /** Divide by the group std (default true). */
  normAdvByStdInGrpo: boolean;
  /** Discount γ (default 1.0). */
  gamma: number;
  /** GAE λ (default 1.0). */
  lam: number;
  /** GPG's f_norm (default 1.0). */
  fNorm: number;
  /** Optimal-token-baseline zero-tail rule (default true). */
  handleZeroTail: boolean;
}

/** Validated inputs: row-major float64 `[B·T]` arrays (never written to) and dense group ids. */
export interface ResolvedAdvantageInputs {
  /** Number of rows (responses). */
  readonly B: number;
  /** Padded response length. */
  readonly T: number;
  /** Token-level rewards, finite everywhere. */
  readonly rewards: Float64Array;
  /** 0/1 response mask. */
  readonly mask: Float64Array;
  /** L_i = Σ_t m_it. */
  readonly lengths: Float64Array;
  /** s_i = Σ_t rewards_it over all T positions (verl's `token_level_rewards.sum(-1)`). */
  readonly scores: Float64Array;
  /** The caller's group ids as strings, or null when no `index` was given. */
  readonly index: readonly string[] | null;
  /** Dense group id per row (0..G-1, in order of first appearance), or null without `index`. */
  readonly groupIds: Int32Array | null;
  /** Number of groups G (0 without `index`). */
  readonly numGroups: number;
  /** Critic values `[B·T]`, or null. */
  readonly values: Float64Array | null;
  /** Greedy-baseline rewards `[B]`, or null. */
  readonly rewardBaselines: Float64Array | null;
  /** Old log-probs `[B·T]`, or null. */
  readonly oldLogProbs: Float64Array | null;
  /** Σπ² per position `[B·T]`, or null. */
  readonly sumPiSquared: Float64Array | null;
  /** Rollout IS weights `[B·T]`, or null. */
  readonly rolloutIsWeights: Float64Array | null;
}

/** What every estimator returns: flat row-major `[B·T]` arrays. */
export interface AdvantageResult {
  /** Advantages Â_it. */
  advantages: Float64Array;
  /** Returns (for the outcome estimators verl returns the advantages again; here a separate copy). */
  returns: Float64Array;
}

/** An advantage estimator: the one signature every registered estimator has. */
export type AdvantageEstimatorFn = (inputs: ResolvedAdvantageInputs, config: ResolvedAdvantageConfig) => AdvantageResult;

/** The optional inputs an estimator may require. */
export type AdvantageInputName = 'index' | 'values' | 'rewardBaselines' | 'oldLogProbs' | 'sumPiSquared';

/** A registry entry. */
export interface AdvantageEstimatorEntry {
  /** Registered name (verl's `adv_estimator`). */
  readonly name: string;
  /** The float64 CPU implementation. */
  readonly fn: AdvantageEstimatorFn;
  /** Inputs that must be present (checked before `fn` runs, with an error naming the field). */
  readonly requires: readonly AdvantageInputName[];
}
