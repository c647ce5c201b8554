/**
 * The policy-loss registry (verl's `POLICY_LOSS_REGISTRY`): named strategies with one signature, the
 * `policyLoss(lossMode, batch, config)` entry point, and `registerPolicyLoss` for user strategies.
 *
 * @module
 */
import { type PolicyLossConfig, resolvePolicyLossConfig } from '../config/policyLoss.js';
import { ConfigError, ShapeError, UnknownModeError } from '../errors.js';
import { checkGradInto } from '../aggregate.js';
import { finiteAtValid, validateRows } from './common.js';
import {
  type FloatArray,
  type Matrix,
  type Shape2D,
  checkFiniteAtValid,
  expectShape,
  isNested,
  nestedShape,
  rowLengths,
  toMask,
  toMatrix,
} from '../matrix.js';
import type { PolicyLossBatch, PolicyLossEntry, PolicyLossOptions, PolicyLossResult, PolicyLossStrategy, ResolvedBatch } from './types.js';

const registry = new Map<string, PolicyLossEntry>();

/** Names registered by lumirag-rl itself (verl's registry plus `eighty-twenty`); they cannot be replaced. */
const builtins = new Set<string>();

/** @internal Register a built-in strategy (used by the strategy modules). */
export function registerBuiltin(entry: PolicyLossEntry): void {
  registry.set(entry.name, entry);
  builtins.add(entry.name);
}

/** Options of {@link registerPolicyLoss}. */
export interface RegisterPolicyLossOptions {
  /** Replace an earlier user registration of the same name. Built-in names can never be replaced. */
  overwrite?: boolean;
  /** Aggregation used when `config.lossAggMode` is unset (default `token-mean`). */
  defaultAggMode?: PolicyLossEntry['defaultAggMode'];
}

/**
 * Register a user strategy under `name`; afterwards `policyLoss(name, batch, config)` runs it with a validated
 * batch and a resolved config, exactly like the built-ins.
 */
export function registerPolicyLoss(name: string, strategy: PolicyLossStrategy, options: RegisterPolicyLossOptions = {}): void {
  if (typeof name !== 'string' || name.length === 0) throw new ConfigError('registerPolicyLoss: name must be a non-empty string', 'name');
  if (typeof strategy !== 'function') throw new ConfigError('registerPolicyLoss: strategy must be a function', 'strategy');
  if (builtins.has(name)) throw new ConfigError(`registerPolicyLoss: ${JSON.stringify(name)} is a built-in strategy`, 'name');
  if (registry.has(name) && !options.overwrite) {
    throw new ConfigError(`registerPolicyLoss: ${JSON.stringify(name)} is already registered (pass { overwrite: true })`, 'name');
  }
  registry.set(name, { name, cpu: strategy, defaultAggMode: options.defaultAggMode ?? 'token-mean' });
}

/** Remove a user strategy. Returns whether one was removed. Built-ins stay. */
export function unregisterPolicyLoss(name: string): boolean {
  if (builtins.has(name)) return false;
  return registry.delete(name);
}

/** The names `policyLoss` accepts, built-ins first. */
export function listPolicyLosses(): string[] {
  return [...registry.keys()];
}

/** The registry entry of `lossMode`, or an {@link UnknownModeError} listing the valid names. */
export function getPolicyLoss(lossMode: string): PolicyLossEntry {
  const entry = registry.get(lossMode);
  if (!entry) throw new UnknownModeError('lossMode', lossMode, listPolicyLosses());
  return entry;
}

function batchShape(batch: PolicyLossBatch): Shape2D {
  if (batch.shape) return batch.shape;
  const m = batch.responseMask;
  if (m != null && isNested(m)) return nestedShape(m, 'responseMask');
  throw new ShapeError('batch.shape [B, T] is required when the inputs are flat arrays', 'shape');
}

/**
 * Validate a {@link PolicyLossBatch}: equal shapes, no ragged rows, a 0/1 mask, finite values at valid
 * positions. Flat `Float64Array` / `Float32Array` fields are used in place (no copy); the result's arrays are never
 * written to.
 *
 * Validation runs as one fused pass over the mask and the three required fields (plus one pass per optional field
 * present); when that pass finds any problem, the field-by-field checks below rerun and throw the first error in
 * their order (mask shape and 0/1 values, then each field's shape and finiteness in turn), so the error a caller
 * sees does not depend on the fast path.
 */
export function resolveBatch(batch: PolicyLossBatch): ResolvedBatch {
  if (batch == null || typeof batch !== 'object') throw new ShapeError('batch must be an object', 'batch');
  const shape = batchShape(batch);
  let fast: ResolvedBatch | null;
  try {
    fast = resolveFused(batch, shape);
  } catch {
    fast = null; // a shape or missing-field error: the sequential checks below report it in their order
  }
  return fast ?? resolveSequential(batch, shape);
}

/** The fused validation: the resolved batch when every check passes, else null (never throws a value error). */
function resolveFused(batch: PolicyLossBatch, shape: Shape2D): ResolvedBatch | null {
  const mask = toMatrix(batch.responseMask, 'responseMask', shape);
  const { rows: B, cols: T } = mask;
  const field = (name: 'oldLogProbs' | 'logProbs' | 'advantages' | 'rolloutIsWeights' | 'entropy'): FloatArray => {
    const v = batch[name];
    if (v == null) throw new ShapeError(`batch.${name} is required`, name);
    const m = toMatrix(v, name, shape);
    expectShape(m, B, T, name);
    return m.data;
  };
  const oldLogProbs = field('oldLogProbs');
  const logProbs = field('logProbs');
  const advantages = field('advantages');
  const rolloutIsWeights = batch.rolloutIsWeights == null ? null : field('rolloutIsWeights');
  const entropy = batch.entropy == null ? null : field('entropy');
  const lengths = new Float64Array(B);
  if (!validateRows(mask.data, oldLogProbs, logProbs, advantages, rolloutIsWeights, B, T, lengths)) return null;
  if (entropy && !finiteAtValid(entropy, mask.data, B * T)) return null;
  return { B, T, oldLogProbs, logProbs, advantages, mask: mask.data, lengths, rolloutIsWeights, entropy };
}

/** The field-by-field validation (the reference order of checks and errors). */
function resolveSequential(batch: PolicyLossBatch, shape: Shape2D): ResolvedBatch {
  const mask = toMask(batch.responseMask, 'responseMask', shape);
  const [B, T] = [mask.rows, mask.cols];
  const field = (name: 'oldLogProbs' | 'logProbs' | 'advantages' | 'rolloutIsWeights' | 'entropy'): Matrix => {
    const v = batch[name];
    if (v == null) throw new ShapeError(`batch.${name} is required`, name);
    const m = toMatrix(v, name, shape);
    expectShape(m, B, T, name);
    checkFiniteAtValid(m, mask, name);
    return m;
  };
  return {
    B,
    T,
    oldLogProbs: field('oldLogProbs').data,
    logProbs: field('logProbs').data,
    advantages: field('advantages').data,
    mask: mask.data,
    lengths: rowLengths(mask),
    rolloutIsWeights: batch.rolloutIsWeights == null ? null : field('rolloutIsWeights').data,
    entropy: batch.entropy == null ? null : field('entropy').data,
  };
}

/**
 * Run the policy loss `lossMode` (any registered name: `vanilla`, `gspo`, `sapo`, `gpg`, `clip_cov`, `kl_cov`,
 * `geo_mean`, `cispo`, `bypass_mode`, `eighty-twenty`, or a user strategy) on the CPU float64 reference.
 *
 * Flat `Float32Array` inputs are read in place (each value widened to float64; no conversion copy).
 *
 * @param options - `gradInto`: a caller-owned `Float64Array` of exactly `B·T` entries; when given, the returned
 *   `grad` IS that array (overwritten in full, zeros at masked positions), so a training loop can reuse one
 *   gradient buffer across steps. A {@link ShapeError} names `gradInto` when its length differs.
 * @returns the loss, d loss / d logProbs (flat `[B·T]`, zero at masked positions) and verl's metrics
 */
export function policyLoss(lossMode: string, batch: PolicyLossBatch, config: PolicyLossConfig = {}, options: PolicyLossOptions = {}): PolicyLossResult {
  const entry = getPolicyLoss(lossMode);
  const resolved = resolvePolicyLossConfig(config);
  const rb = resolveBatch(batch);
  const into = options?.gradInto;
  if (into == null) return entry.cpu(rb, resolved);
  checkGradInto(into, rb.B * rb.T);
  const inputs = [rb.oldLogProbs, rb.logProbs, rb.advantages, rb.mask, rb.rolloutIsWeights, rb.entropy];
  if (inputs.some((x) => x === into)) throw new ShapeError('gradInto: must not be one of the batch arrays (inputs are never written)', 'gradInto');
  const result = entry.cpu({ ...rb, gradInto: into }, resolved);
  if (result.grad === into) return result;
  into.set(result.grad); // a strategy that did not use batch.gradInto
  return { ...result, grad: into };
}
