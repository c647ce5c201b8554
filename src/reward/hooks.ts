/**
 * verl-compatible reward hooks: `defineReward(fn)` / `defineBatchReward(fn)` turn a TypeScript function into a
 * {@link RewardHook} that scores one sample or a batch, with verl's return contract (a number, or a dict that must
 * contain `score`; SPEC.md §10), a per-call timeout, bounded concurrency, and per-item errors that never turn into a
 * silent score.
 *
 * @module
 */
import { ConfigError, RewardError } from '../errors.js';

/** A JSON value: what crosses the bridge and what `groundTruth`, `extraInfo` and extras may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * One sample to score: verl's `compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **reward_kwargs)`
 * in camelCase.
 */
export interface RewardInput {
  /** verl `data_source` (the `data.reward_fn_key` column, default `data_source`). */
  dataSource: string;
  /** verl `solution_str`: the decoded response. */
  solutionStr: string;
  /** verl `ground_truth` (`non_tensor_batch["reward_model"]["ground_truth"]`), usually a string. */
  groundTruth: JsonValue;
  /** verl `extra_info` (a dict or None). */
  extraInfo: JsonObject | null;
  /** `custom_reward_function.reward_kwargs` and any other JSON keyword arguments verl passed; `{}` when none. */
  kwargs: JsonObject;
  /** Aborted when the call times out or the caller gives up; cooperative rewards may stop early on it. */
  signal?: AbortSignal;
}

/** A dict result: `score` plus extras, every key collected into verl's `reward_extra_info`. */
export interface RewardDict {
  /** The reward (a boolean counts as 0 / 1, like Python's `float(True)`). */
  score: number | boolean;
  /** Extra keys (JSON values), e.g. `acc`, `pred`. */
  [key: string]: JsonValue;
}

/** What a reward function may return: a number, a boolean, or a dict with `score` (verl's contract). */
export type RewardValue = number | boolean | RewardDict;

/** A per-sample reward function. */
export type RewardFn = (input: RewardInput) => RewardValue | Promise<RewardValue>;

/**
 * A batch reward function (verl's `batch` reward manager form). It returns one entry per input, in order; an `Error`
 * entry marks that item as failed while the others are still scored.
 */
export type BatchRewardFn = (inputs: RewardInput[]) => (RewardValue | Error)[] | Promise<(RewardValue | Error)[]>;

/** A normalised successful score. `extras` is `null` when the function returned a plain number or boolean. */
export interface ScoredReward {
  /** The reward as a finite float. */
  score: number;
  /** The dict's other keys, or `null` for a plain number (verl then adds nothing, or `acc` in the DAPO manager). */
  extras: JsonObject | null;
}

/** Why an item failed: it threw, timed out, or returned something that is not a number / `{ score }`. */
export type RewardFailureStatus = 'error' | 'timeout' | 'invalid';

/** Stable codes for item failures. */
export type RewardFailureCode =
  | 'E_REWARD_THREW'
  | 'E_REWARD_TIMEOUT'
  | 'E_REWARD_INVALID'
  | 'E_UNKNOWN_DATA_SOURCE'
  | 'E_REWARD_BATCH_LENGTH';

/** The outcome of scoring one item: never a silent score. */
export type RewardItemResult =
  | ({ status: 'ok' } & ScoredReward)
  | { status: RewardFailureStatus; code: RewardFailureCode; message: string };

/** How a batch is run. */
export interface RewardRunOptions {
  /** Per-call timeout in ms (one sample for a per-sample reward, one call for a batch reward); 0 = none. */
  timeoutMs?: number;
  /** A shared limiter bounding concurrent reward calls; default: unbounded. */
  limiter?: RewardLimiter;
  /** Abort to give up on the whole batch (the pending items fail with status `error`). */
  signal?: AbortSignal;
}

/** The brand carried by every hook, so a module's default export can be told apart from a plain function. */
export const REWARD_HOOK_BRAND = 'lumirag-rl/reward' as const;

/** A reward ready to be scored directly or served over the bridge. */
export interface RewardHook {
  /** Brand: always {@link REWARD_HOOK_BRAND}. */
  readonly kind: typeof REWARD_HOOK_BRAND;
  /** A name for messages and health output. */
  readonly name: string;
  /** Score one sample; rejects with a {@link RewardError} on failure (throw, timeout, invalid return). */
  score(input: RewardInput, options?: RewardRunOptions): Promise<ScoredReward>;
  /** Score a batch; resolves with one {@link RewardItemResult} per input, in order (never rejects for item errors). */
  scoreBatch(inputs: readonly RewardInput[], options?: RewardRunOptions): Promise<RewardItemResult[]>;
}

/** Options of {@link defineReward} and {@link defineBatchReward}. */
export interface DefineRewardOptions {
  /** A name for messages; default: the function's name or `"reward"`. */
  name?: string;
}

/** A counting semaphore bounding concurrent reward calls. */
export class RewardLimiter {
  /** Maximum number of holders at once. */
  readonly max: number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  /** @param max - maximum concurrent holders (a positive integer or Infinity) */
  constructor(max: number) {
    if (!(max >= 1) || (Number.isFinite(max) && !Number.isInteger(max))) {
      throw new ConfigError(`maxConcurrency must be a positive integer, got ${max}`, 'maxConcurrency');
    }
    this.max = max;
  }

  /** Number of current holders. */
  get inUse(): number {
    return this.active;
  }

  /** Number of callers waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Wait for a slot; call the returned function exactly once to release it. */
  async acquire(): Promise<() => void> {
    if (this.active >= this.max) await new Promise<void>((res) => this.waiting.push(res));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Describe a value's type for messages. */
function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (typeof v === 'object') return isPlainObject(v) ? 'object' : `${(v as object).constructor?.name ?? 'object'} instance`;
  return typeof v;
}

/** Returns a path to the first non-JSON value (function, undefined, non-finite number, class instance), or null. */
function findNonJson(v: unknown, path: string, depth = 0): string | null {
  if (depth > 64) return `${path} (nested deeper than 64 levels)`;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return null;
  if (typeof v === 'number') return Number.isFinite(v) ? null : `${path} = ${v}`;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const bad = findNonJson(v[i], `${path}[${i}]`, depth + 1);
      if (bad) return bad;
    }
    return null;
  }
  if (isPlainObject(v)) {
    for (const k of Object.keys(v)) {
      const bad = findNonJson(v[k], `${path}.${k}`, depth + 1);
      if (bad) return bad;
    }
    return null;
  }
  return `${path} (${describeType(v)})`;
}

/**
 * Normalise a reward function's return value to {@link ScoredReward} or throw a {@link RewardError} saying what is
 * wrong (verl's contract: a number, or a dict that must contain `score`; JSON cannot carry NaN/Infinity, so a
 * non-finite score is rejected rather than silently nulled).
 */
export function normalizeRewardValue(value: unknown, where = 'reward'): ScoredReward {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RewardError(`${where} returned a non-finite score (${value})`, where);
    return { score: value, extras: null };
  }
  if (typeof value === 'boolean') return { score: value ? 1 : 0, extras: null };
  if (isPlainObject(value)) {
    if (!('score' in value)) {
      throw new RewardError(`${where} returned a dict without "score" (keys: ${Object.keys(value).join(', ') || 'none'})`, where);
    }
    const s = value.score;
    let score: number;
    if (typeof s === 'boolean') score = s ? 1 : 0;
    else if (typeof s === 'number' && Number.isFinite(s)) score = s;
    else throw new RewardError(`${where} returned "score" of type ${describeType(s)}; expected a finite number`, where);
    const extras: JsonObject = {};
    for (const k of Object.keys(value)) {
      const v = value[k];
      if (v === undefined) continue;
      const bad = findNonJson(v, k);
      if (bad) throw new RewardError(`${where} returned an extra that is not JSON: ${bad}`, where);
      extras[k] = v as JsonValue;
    }
    extras.score = score;
    return { score, extras };
  }
  throw new RewardError(
    `${where} returned ${describeType(value)}; expected a number, a boolean or an object with "score"`,
    where,
  );
}

/** Turn a caught failure into a failed item. */
export function toRewardFailure(err: unknown): RewardItemResult {
  if (err instanceof RewardTimeoutError) return { status: 'timeout', code: 'E_REWARD_TIMEOUT', message: err.message };
  if (err instanceof RewardInvalidReturnError) return { status: 'invalid', code: 'E_REWARD_INVALID', message: err.message };
  if (err instanceof UnknownDataSourceError) return { status: 'error', code: 'E_UNKNOWN_DATA_SOURCE', message: err.message };
  return { status: 'error', code: 'E_REWARD_THREW', message: failureMessage(err) };
}

function failureMessage(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : `threw ${String(err)}`;
}

/** The reward call took longer than its `timeoutMs` (item status `timeout`). */
export class RewardTimeoutError extends RewardError {}
/** The reward returned something that is not a number / `{ score }` (item status `invalid`). */
export class RewardInvalidReturnError extends RewardError {}
/** No reward registered for the sample's `dataSource` (item code `E_UNKNOWN_DATA_SOURCE`). */
export class UnknownDataSourceError extends RewardError {}

/** Run `fn` with a timeout (0 = none) and an optional outer cancel signal; the signal given to `fn` aborts on either. */
async function withTimeout<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  timeoutMs: number,
  what: string,
  outer?: AbortSignal,
): Promise<T> {
  if (outer?.aborted) throw new RewardError(`${what} was cancelled`);
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onOuter: (() => void) | undefined;
  try {
    const work = Promise.resolve().then(() => fn(ctl.signal));
    work.catch(() => undefined); // a late rejection after a timeout is not an unhandled rejection
    const stop = new Promise<never>((_, rej) => {
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          const err = new RewardTimeoutError(`${what} timed out after ${timeoutMs} ms`);
          rej(err);
          ctl.abort(err);
        }, timeoutMs);
      }
      if (outer) {
        onOuter = () => {
          const err = new RewardError(`${what} was cancelled`);
          rej(err);
          ctl.abort(err);
        };
        outer.addEventListener('abort', onOuter, { once: true });
      }
    });
    return await Promise.race([work, stop]);
  } finally {
    if (timer) clearTimeout(timer);
    if (onOuter) outer?.removeEventListener('abort', onOuter);
  }
}

/** Node's `events` module when running in Node (for `setMaxListeners`); undefined in browsers, which do not warn. */
const nodeEvents = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.(
  'node:events',
) as typeof import('node:events') | undefined;

/**
 * One child signal per batch that follows `outer`, so a batch of N items adds one listener to the caller's signal,
 * not N (node warns past 10). Call `dispose` when the batch is done.
 */
function fanOut(outer: AbortSignal | undefined): { signal: AbortSignal | undefined; dispose: () => void } {
  if (!outer) return { signal: undefined, dispose: () => undefined };
  const ctl = new AbortController();
  nodeEvents?.setMaxListeners(0, ctl.signal);
  if (outer.aborted) ctl.abort(outer.reason);
  const on = () => ctl.abort(outer.reason);
  outer.addEventListener('abort', on, { once: true });
  return { signal: ctl.signal, dispose: () => outer.removeEventListener('abort', on) };
}

function checkTimeout(t: number | undefined): number {
  const v = t ?? 0;
  if (!(v >= 0) || !Number.isFinite(v)) throw new ConfigError(`timeoutMs must be a finite number >= 0, got ${t}`, 'timeoutMs');
  return v;
}

async function limited<T>(limiter: RewardLimiter | undefined, fn: () => Promise<T>): Promise<T> {
  if (!limiter) return fn();
  const release = await limiter.acquire();
  try {
    return await fn();
  } finally {
    release();
  }
}

function nameOf(fn: RewardFn | BatchRewardFn, options?: DefineRewardOptions): string {
  const n = (fn as { name?: unknown }).name;
  return options?.name ?? (typeof n === 'string' && n && n !== 'default' ? n : 'reward');
}

/** True if `x` is a {@link RewardHook}. */
export function isRewardHook(x: unknown): x is RewardHook {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as { kind?: unknown }).kind === REWARD_HOOK_BRAND &&
    typeof (x as { scoreBatch?: unknown }).scoreBatch === 'function'
  );
}

/**
 * Define a per-sample reward: `fn({ dataSource, solutionStr, groundTruth, extraInfo, kwargs })` returns (or resolves
 * to) a number or `{ score, ...extras }`. Passing a hook returns it unchanged.
 *
 * @example
 * ```ts
 * export default defineReward(({ solutionStr, groundTruth }) => ({ score: solutionStr.includes(String(groundTruth)) ? 1 : 0 }));
 * ```
 */
export function defineReward(fn: RewardFn | RewardHook, options?: DefineRewardOptions): RewardHook {
  if (isRewardHook(fn)) return fn;
  if (typeof fn !== 'function') throw new ConfigError(`defineReward expects a function, got ${describeType(fn)}`, 'fn');
  const name = nameOf(fn, options);
  const runOne = async (input: RewardInput, opts: RewardRunOptions | undefined, where: string): Promise<ScoredReward> => {
    const timeoutMs = checkTimeout(opts?.timeoutMs);
    return limited(opts?.limiter, async () => {
      const value = await withTimeout((signal) => fn({ ...input, signal }), timeoutMs, `reward "${name}" on ${where}`, opts?.signal);
      try {
        return normalizeRewardValue(value, `reward "${name}" on ${where}`);
      } catch (e) {
        throw new RewardInvalidReturnError((e as Error).message, where);
      }
    });
  };
  return {
    kind: REWARD_HOOK_BRAND,
    name,
    score: (input, opts) =>
      runOne(input, opts, 'the sample').catch((e: unknown) => {
        throw e instanceof RewardError ? e : new RewardError(`reward "${name}" threw: ${failureMessage(e)}`);
      }),
    scoreBatch: async (inputs, opts) => {
      const fan = fanOut(opts?.signal);
      const itemOpts: RewardRunOptions = { ...opts, signal: fan.signal };
      try {
        return await Promise.all(
          inputs.map((input) =>
            runOne(input, itemOpts, 'a sample').then(
              (r): RewardItemResult => ({ status: 'ok', ...r }),
              toRewardFailure,
            ),
          ),
        );
      } finally {
        fan.dispose();
      }
    },
  };
}

/**
 * Define a batch reward (verl's `batch` reward manager form): `fn(inputs)` returns one value per input, in order; an
 * `Error` entry fails just that item. The timeout applies to the whole call; a throw or timeout fails every item.
 * `score(input)` calls `fn([input])`.
 */
export function defineBatchReward(fn: BatchRewardFn, options?: DefineRewardOptions): RewardHook {
  if (typeof fn !== 'function') throw new ConfigError(`defineBatchReward expects a function, got ${describeType(fn)}`, 'fn');
  const name = nameOf(fn, options);
  const scoreBatch = async (inputs: readonly RewardInput[], opts?: RewardRunOptions): Promise<RewardItemResult[]> => {
    if (inputs.length === 0) return [];
    const timeoutMs = checkTimeout(opts?.timeoutMs);
    let values: (RewardValue | Error)[];
    try {
      values = await limited(opts?.limiter, () =>
        withTimeout(
          (signal) => fn(inputs.map((input) => ({ ...input, signal }))),
          timeoutMs,
          `batch reward "${name}" (${inputs.length} items)`,
          opts?.signal,
        ),
      );
    } catch (e) {
      const f = toRewardFailure(e);
      return inputs.map(() => f);
    }
    if (!Array.isArray(values) || values.length !== inputs.length) {
      const message = `batch reward "${name}" returned ${
        Array.isArray(values) ? `${values.length} results` : describeType(values)
      } for ${inputs.length} inputs; expected one result per input`;
      return inputs.map((): RewardItemResult => ({ status: 'invalid', code: 'E_REWARD_BATCH_LENGTH', message }));
    }
    return values.map((v, i): RewardItemResult => {
      if (v instanceof Error) return toRewardFailure(v);
      try {
        return { status: 'ok', ...normalizeRewardValue(v, `batch reward "${name}" on item ${i} of its call`) };
      } catch (e) {
        return { status: 'invalid', code: 'E_REWARD_INVALID', message: (e as Error).message };
      }
    });
  };
  return {
    kind: REWARD_HOOK_BRAND,
    name,
    scoreBatch,
    score: async (input, opts) => {
      const [r] = await scoreBatch([input], opts);
      if (r.status !== 'ok') throw new RewardError(r.message);
      return { score: r.score, extras: r.extras };
    },
  };
}

/** Build a {@link RewardInput} from verl's snake_case keyword arguments (for tests and in-process use). */
export function rewardInput(args: {
  data_source: string;
  solution_str: string;
  ground_truth?: JsonValue;
  extra_info?: JsonObject | null;
  [kw: string]: JsonValue | undefined;
}): RewardInput {
  const { data_source, solution_str, ground_truth, extra_info, ...rest } = args;
  const kwargs: JsonObject = {};
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) kwargs[k] = v;
  return { dataSource: data_source, solutionStr: solution_str, groundTruth: ground_truth ?? null, extraInfo: extra_info ?? null, kwargs };
}
