/**
 * Types of the advantage estimators: the inputs a caller passes (verl's argument names in camelCase), the
 * validated inputs an estimator sees, the options, the result, and the estimator signature.
 *
 * @module
 */
import type { FloatArray, MatrixInput, Shape2D } from '../matrix.js';

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
  /**
   * The caller's arrays for the results ({@link AdvantageCallOptions}), when given. An estimator may write its
   * advantages / returns there (every entry up to B·T) and return them; `computeAdvantage` copies a result returned
   * elsewhere into them. Every built-in estimator writes there directly.
   */
  advantagesInto?: Float64Array;
  /** See {@link ResolvedAdvantageConfig.advantagesInto}. */
  returnsInto?: Float64Array;
}

/** Validated inputs: row-major float64 `[B·T]` arrays (never written to) and dense group ids. */
export interface ResolvedAdvantageInputs {
  /** Number of rows (responses). */
  readonly B: number;
  /** Padded response length. */
  readonly T: number;
  /** Token-level rewards, finite everywhere (a float64 copy of float32 inputs, made on first access). */
  readonly rewards: Float64Array;
  /** 0/1 response mask (a float64 copy of a float32 mask, made on first access). */
  readonly mask: Float64Array;
  /**
   * The response mask as given (float32 or float64), read in place: the built-in estimators read it when present
   * (`resolveAdvantageInputs` sets it), else {@link ResolvedAdvantageInputs.mask}.
   */
  readonly maskData?: FloatArray;
  /** The token-level rewards as given (float32 or float64), read in place (set by `resolveAdvantageInputs`). */
  readonly rewardsData?: FloatArray;
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
  /** Critic values `[B·T]`, or null (a float64 copy of float32 values, made on first access). */
  readonly values: Float64Array | null;
  /** The critic values as given (float32 or float64, read in place), or null (set by `resolveAdvantageInputs`). */
  readonly valuesData?: FloatArray | null;
  /** Greedy-baseline rewards `[B]`, or null. */
  readonly rewardBaselines: Float64Array | null;
  /** Old log-probs `[B·T]`, or null. */
  readonly oldLogProbs: Float64Array | null;
  /** Σπ² per position `[B·T]`, or null. */
  readonly sumPiSquared: Float64Array | null;
  /** Rollout IS weights `[B·T]`, or null. */
  readonly rolloutIsWeights: Float64Array | null;
}

/**
 * Per-call options of `computeAdvantage`: arrays (length ≥ B·T, not sharing memory) to write the results into
 * instead of fresh ones, as `gradInto` is for the losses. The result then holds exactly these arrays (entries past B·T
 * are left untouched). In a training loop this saves two fresh `[B·T]` float64 arrays a step.
 */
export interface AdvantageCallOptions {
  /** Where the advantages are written (and returned). */
  advantagesInto?: Float64Array;
  /** Where the returns are written (and returned). */
  returnsInto?: Float64Array;
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
