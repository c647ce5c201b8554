/**
 * Types shared by every policy-loss strategy: the batch a caller passes, the validated batch a strategy sees,
 * the result, and the strategy signature (verl's `POLICY_LOSS_REGISTRY` signature, in JS form).
 *
 * @module
 */
import type { LossAggMode, ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray, MatrixInput, Shape2D } from '../matrix.js';

/**
 * A policy-loss batch. Each field is `[B][T]`: nested `number[][]`, or flat row-major
 * (`Float64Array` / `Float32Array` / `number[]`) with `shape` set.
 */
export interface PolicyLossBatch {
  /** Log-probs of the sampled tokens under the behaviour (old) policy. */
  oldLogProbs: MatrixInput;
  /** Log-probs under the current policy; the gradient is taken with respect to these. */
  logProbs: MatrixInput;
  /** Advantages (per token; outcome estimators broadcast one value per sequence). */
  advantages: MatrixInput;
  /** 1 at valid response tokens, 0 at padding. */
  responseMask: MatrixInput;
  /** Precomputed, detached rollout importance-sampling weights (verl's `rollout_is_weights`). */
  rolloutIsWeights?: MatrixInput | null;
  /** Per-token entropy of the current policy (read by `eighty-twenty`). */
  entropy?: MatrixInput | null;
  /** `[B, T]`; required when the fields are flat arrays. */
  shape?: Shape2D;
}

/**
 * A validated batch: row-major arrays of length `B·T`. A caller's flat `Float64Array` / `Float32Array` is used
 * in place (never copied, never written to); read elements are float64 JS numbers, so strategies compute in float64
 * whatever the storage. Nested inputs arrive as fresh `Float64Array`s.
 */
export interface ResolvedBatch {
  /** Number of sequences. */
  readonly B: number;
  /** Padded response length. */
  readonly T: number;
  /** Behaviour-policy log-probs. */
  readonly oldLogProbs: FloatArray;
  /** Current-policy log-probs (the gradient's variable). */
  readonly logProbs: FloatArray;
  /** Advantages. */
  readonly advantages: FloatArray;
  /** 0/1 response mask. */
  readonly mask: FloatArray;
  /** Per-row valid length L_i = Σ_t m_it. */
  readonly lengths: Float64Array;
  /** Rollout IS weights, or null. */
  readonly rolloutIsWeights: FloatArray | null;
  /** Per-token entropy, or null. */
  readonly entropy: FloatArray | null;
  /**
   * The caller's gradient array (`policyLoss`'s `options.gradInto`, length `B·T`), or absent. {@link finishTokenLoss}
   * writes the gradient into it; a strategy that returns another array has it copied in by `policyLoss`.
   */
  readonly gradInto?: Float64Array | null;
}

/** Options of `policyLoss` (its 4th argument). */
export interface PolicyLossOptions {
  /**
   * A caller-owned `Float64Array` of exactly `B·T` entries to write the gradient into; the result's `grad` is then
   * this very array (every entry written, zeros at masked positions). Reusing it across steps avoids allocating
   * (and page-faulting) a fresh gradient per call.
   */
  gradInto?: Float64Array;
}

/** What every policy loss returns. */
export interface PolicyLossResult {
  /** The scalar loss (to be minimised). */
  loss: number;
  /** d loss / d logProbs, flat row-major `[B·T]`, zero at masked positions (`options.gradInto` when given). */
  grad: Float64Array;
  /** verl's metric keys (`actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower`, …) and values. */
  metrics: Record<string, number>;
}

/** A policy-loss strategy: the one signature every registered loss has. */
export type PolicyLossStrategy = (batch: ResolvedBatch, config: ResolvedPolicyLossConfig) => PolicyLossResult;

/** A registry entry: the CPU reference, the aggregation it uses when none is given, and its WGSL kernel. */
export interface PolicyLossEntry {
  /** Registered name (verl's `loss_mode`). */
  readonly name: string;
  /** The float64 CPU reference. */
  readonly cpu: PolicyLossStrategy;
  /** The aggregation the strategy uses when `config.lossAggMode` is unset (verl's effective mode). */
  readonly defaultAggMode: LossAggMode | 'row-mean';
  /** Name of the WGSL kernel (a file in `shaders/`) that runs it on WebGPU, when one exists. */
  readonly kernel?: string;
}

/** verl's metric keys. */
export const METRIC = {
  /** Fraction of valid tokens where the clipped term won (verl's `pg_clipfrac`). */
  pgClipfrac: 'actor/pg_clipfrac',
  /** masked_mean(olp − lp), the approximate KL to the behaviour policy (verl's `ppo_kl`). */
  ppoKl: 'actor/ppo_kl',
  /** Fraction of valid tokens cut by the dual-clip bound c (verl's `pg_clipfrac_lower`). */
  pgClipfracLower: 'actor/pg_clipfrac_lower',
} as const;
