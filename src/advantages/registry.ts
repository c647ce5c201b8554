/**
 * The advantage-estimator registry (verl's `ADV_ESTIMATOR_REGISTRY`): every estimator verl registers, the
 * `computeAdvantage(estimator, inputs, config)` entry point, `registerAdvantageEstimator` for user estimators, and
 * the `grpoAdvantages` convenience for one outcome score per response.
 *
 * @module
 */
import { ConfigError, ShapeError, UnknownModeError, ValueError } from '../errors.js';
import { checkInto } from '../aggregate.js';
import { resolveAdvantageConfig, resolveAdvantageInputs } from './common.js';
import {
  gaeEstimator,
  gpgEstimator,
  grpoEstimator,
  grpoPasskEstimator,
  grpoVectorizedEstimator,
  opoEstimator,
  optimalTokenBaselineEstimator,
  reinforcePlusPlusBaselineEstimator,
  reinforcePlusPlusEstimator,
  remaxEstimator,
  rlooEstimator,
  rlooVectorizedEstimator,
  tirOptimalTokenBaselineEstimator,
} from './estimators.js';
import type {
  AdvantageCallOptions,
  AdvantageConfig,
  AdvantageEstimatorEntry,
  AdvantageEstimatorFn,
  AdvantageInputName,
  AdvantageInputs,
  AdvantageResult,
  GroupId,
} from './types.js';

const registry = new Map<string, AdvantageEstimatorEntry>();
const builtins = new Set<string>();

function builtin(name: string, fn: AdvantageEstimatorFn, requires: AdvantageInputName[]): void {
  registry.set(name, { name, fn, requires });
  builtins.add(name);
}

builtin('gae', gaeEstimator, ['values']);
builtin('grpo', grpoEstimator, ['index']);
builtin('grpo_vectorized', grpoVectorizedEstimator, ['index']);
builtin('grpo_passk', grpoPasskEstimator, ['index']);
builtin('reinforce_plus_plus', reinforcePlusPlusEstimator, []);
builtin('reinforce_plus_plus_baseline', reinforcePlusPlusBaselineEstimator, ['index']);
builtin('remax', remaxEstimator, ['rewardBaselines']);
builtin('rloo', rlooEstimator, ['index']);
builtin('rloo_vectorized', rlooVectorizedEstimator, ['index']);
builtin('opo', opoEstimator, ['index']);
builtin('gpg', gpgEstimator, ['index']);
builtin('optimal_token_baseline', optimalTokenBaselineEstimator, ['index', 'oldLogProbs', 'sumPiSquared']);
builtin('tir_optimal_token_baseline', tirOptimalTokenBaselineEstimator, ['index', 'oldLogProbs', 'sumPiSquared']);

/** The estimators verl registers (at the pinned commit), in registry order. */
export const VERL_ADVANTAGE_ESTIMATORS: readonly string[] = [...registry.keys()];

/** Options of {@link registerAdvantageEstimator}. */
export interface RegisterAdvantageEstimatorOptions {
  /** Replace an earlier user registration of the same name. Built-in names can never be replaced. */
  overwrite?: boolean;
  /** Optional inputs the estimator reads; `computeAdvantage` checks they are present before calling it. */
  requires?: readonly AdvantageInputName[];
}

/**
 * Register a user estimator under `name` (verl's `register_adv_est`); afterwards
 * `computeAdvantage(name, inputs, config)` runs it with validated inputs and a resolved config.
 */
export function registerAdvantageEstimator(
  name: string,
  fn: AdvantageEstimatorFn,
  options: RegisterAdvantageEstimatorOptions = {},
): void {
  if (typeof name !== 'string' || name.length === 0) throw new ConfigError('registerAdvantageEstimator: name must be a non-empty string', 'name');
  if (typeof fn !== 'function') throw new ConfigError('registerAdvantageEstimator: fn must be a function', 'fn');
  if (builtins.has(name)) throw new ConfigError(`registerAdvantageEstimator: ${JSON.stringify(name)} is a built-in estimator`, 'name');
  if (registry.has(name) && !options.overwrite) {
    throw new ConfigError(`registerAdvantageEstimator: ${JSON.stringify(name)} is already registered (pass { overwrite: true })`, 'name');
  }
  registry.set(name, { name, fn, requires: [...(options.requires ?? [])] });
}

/** Remove a user estimator. Returns whether one was removed. Built-ins stay. */
export function unregisterAdvantageEstimator(name: string): boolean {
  if (builtins.has(name)) return false;
  return registry.delete(name);
}

/** The names `computeAdvantage` accepts, built-ins first. */
export function listAdvantageEstimators(): string[] {
  return [...registry.keys()];
}

/** The registry entry of `name`, or an {@link UnknownModeError} listing the valid names. */
export function getAdvantageEstimator(name: string): AdvantageEstimatorEntry {
  const entry = registry.get(name);
  if (!entry) throw new UnknownModeError('advEstimator', name, listAdvantageEstimators());
  return entry;
}

/**
 * Compute advantages and returns with the estimator `estimator` (verl's `algorithm.adv_estimator`), on the CPU
 * in float64.
 *
 * @param estimator - a registered name: `grpo`, `grpo_vectorized`, `grpo_passk`, `rloo`, `rloo_vectorized`,
 *   `reinforce_plus_plus`, `reinforce_plus_plus_baseline`, `remax`, `opo`, `gpg`, `gae`, `optimal_token_baseline`,
 *   `tir_optimal_token_baseline`, or a user estimator
 * @param inputs - rewards, mask and what the estimator needs (`index`, `values`, `rewardBaselines`, …)
 * @param config - ε, normAdvByStdInGrpo, γ, λ, fNorm, handleZeroTail
 * @param options - arrays to write the results into ({@link AdvantageCallOptions}: `advantagesInto`, `returnsInto`)
 * @returns flat row-major `[B·T]` advantages and returns (exactly the caller's arrays when given)
 * @throws UnknownModeError for an unknown estimator; ShapeError / ValueError for bad inputs; EstimatorError where
 *   verl raises (grpo_passk with a singleton group; whitening with ≤ 1 valid token)
 */
export function computeAdvantage(estimator: string, inputs: AdvantageInputs, config: AdvantageConfig = {}, options: AdvantageCallOptions = {}): AdvantageResult {
  const entry = getAdvantageEstimator(estimator);
  const resolvedConfig = resolveAdvantageConfig(config);
  const resolved = resolveAdvantageInputs(inputs);
  for (const need of entry.requires) {
    // `values` through valuesData: reading `values` would make its float64 copy
    const present = need === 'values' ? (resolved.valuesData ?? resolved.values) != null : resolved[need] != null;
    if (!present) throw new ShapeError(`${estimator}: inputs.${need} is required`, need);
  }
  const n = resolved.B * resolved.T;
  const { advantagesInto, returnsInto } = options;
  if (advantagesInto !== undefined) checkInto(advantagesInto, n, 'advantagesInto');
  if (returnsInto !== undefined) checkInto(returnsInto, n, 'returnsInto');
  if (advantagesInto && returnsInto && advantagesInto.buffer === returnsInto.buffer) {
    throw new ConfigError('advantagesInto and returnsInto must not share memory', 'returnsInto');
  }
  if (!advantagesInto && !returnsInto) return entry.fn(resolved, resolvedConfig);
  const r = entry.fn(resolved, { ...resolvedConfig, advantagesInto, returnsInto });
  // an estimator that returned its own arrays: copy them into the caller's
  if (advantagesInto && r.advantages !== advantagesInto) advantagesInto.set(r.advantages.subarray(0, n));
  if (returnsInto && r.returns !== returnsInto) returnsInto.set(r.returns.subarray(0, n));
  return { advantages: advantagesInto ?? r.advantages, returns: returnsInto ?? r.returns };
}

/** Options of {@link grpoAdvantages}. */
export interface GrpoAdvantagesOptions {
  /** Divide by the group std (default true); false = Dr.GRPO. */
  normAdvByStdInGrpo?: boolean;
  /** ε added to the std (default 1e-6). */
  epsilon?: number;
  /** Use verl's `grpo_vectorized` (float32 statistics, variance floor) instead of `grpo`. Default false. */
  vectorized?: boolean;
}

/**
 * GRPO advantages for the common case of one outcome score per response: the per-response advantage
 * Â_i = (s_i − μ_g)/(σ_g + ε), exactly as `computeAdvantage('grpo', …)` gives on every valid token.
 *
 * @param scores - one score per response, length B
 * @param groupIds - the group (prompt) of each response, length B; groups may be interleaved
 * @returns one advantage per response (Float64Array of length B)
 */
export function grpoAdvantages(scores: ArrayLike<number>, groupIds: readonly GroupId[], opts: GrpoAdvantagesOptions = {}): Float64Array {
  const B = scores.length;
  if (!Array.isArray(groupIds) || groupIds.length !== B) {
    throw new ShapeError(`groupIds: length ${Array.isArray(groupIds) ? groupIds.length : 'n/a'} does not match scores (${B})`, 'groupIds');
  }
  for (let i = 0; i < B; i++) {
    if (!Number.isFinite(scores[i] as number)) throw new ValueError(`scores: non-finite value ${scores[i]} at ${i}`, 'scores');
  }
  const res = computeAdvantage(
    opts.vectorized ? 'grpo_vectorized' : 'grpo',
    { tokenLevelRewards: Float64Array.from(scores), responseMask: new Float64Array(B).fill(1), index: groupIds, shape: [B, 1] },
    { normAdvByStdInGrpo: opts.normAdvByStdInGrpo ?? true, epsilon: opts.epsilon },
  );
  return res.advantages;
}
