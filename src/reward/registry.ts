/**
 * A reward registry that dispatches on `dataSource`, like verl's `default_compute_score`
 * (`verl/utils/reward_score/__init__.py`): exact names first, then prefixes (verl: `aime*` → math_dapo), then regular
 * expressions, then an optional fallback; anything else is a clear per-item error, never a silent score.
 *
 * @module
 */
import { ConfigError } from '../errors.js';
import {
  REWARD_HOOK_BRAND,
  UnknownDataSourceError,
  defineReward,
  toRewardFailure,
  type RewardFn,
  type RewardHook,
  type RewardInput,
  type RewardItemResult,
  type RewardRunOptions,
  type ScoredReward,
} from './hooks.js';
import { mathDapoReward } from './mathDapo.js';

/** How a registry entry matches a data source. */
export type DataSourceMatch = string | { prefix: string } | RegExp | ((dataSource: string) => boolean);

/** Options of {@link createRewardRegistry}. */
export interface RewardRegistryOptions {
  /** Name for messages; default `"registry"`. */
  name?: string;
  /** Reward for data sources no entry matches; default: none (an `E_UNKNOWN_DATA_SOURCE` item error). */
  fallback?: RewardFn | RewardHook;
}

/** A {@link RewardHook} that dispatches each sample to the reward registered for its `dataSource`. */
export interface RewardRegistry extends RewardHook {
  /** Add an entry (later entries of the same kind do not override earlier ones; exact names must be unique). */
  register(match: DataSourceMatch, reward: RewardFn | RewardHook): RewardRegistry;
  /** The hook that would score `dataSource`, or `undefined`. */
  resolve(dataSource: string): RewardHook | undefined;
  /** Human-readable list of what is registered (exact names, `prefix*`, `/regex/`, `<predicate>`). */
  describe(): string[];
}

/**
 * Create a registry. `entries` maps exact data-source names to rewards.
 *
 * @example
 * ```ts
 * const reward = createRewardRegistry({ gsm8k: myGsm8k }).register({ prefix: 'aime' }, mathDapoReward);
 * ```
 */
export function createRewardRegistry(
  entries: Record<string, RewardFn | RewardHook> = {},
  options: RewardRegistryOptions = {},
): RewardRegistry {
  const exact = new Map<string, RewardHook>();
  const rules: { label: string; test: (ds: string) => boolean; hook: RewardHook }[] = [];
  const fallback = options.fallback ? defineReward(options.fallback) : undefined;
  const name = options.name ?? 'registry';

  const resolve = (ds: string): RewardHook | undefined => {
    const hit = exact.get(ds);
    if (hit) return hit;
    for (const r of rules) if (r.test(ds)) return r.hook;
    return fallback;
  };
  const describe = (): string[] => [...exact.keys(), ...rules.map((r) => r.label), ...(fallback ? ['<fallback>'] : [])];
  const unknown = (ds: string) =>
    new UnknownDataSourceError(
      `no reward registered for data_source ${JSON.stringify(ds)} in ${name}; registered: ${describe().join(', ') || 'none'}`,
      'dataSource',
    );

  const registry: RewardRegistry = {
    kind: REWARD_HOOK_BRAND,
    name,
    register(match, reward) {
      const hook = defineReward(reward);
      if (typeof match === 'string') {
        if (exact.has(match)) throw new ConfigError(`data source ${JSON.stringify(match)} is already registered`, 'dataSource');
        exact.set(match, hook);
      } else if (match instanceof RegExp) {
        const re = new RegExp(match.source, match.flags.replace('g', '').replace('y', ''));
        rules.push({ label: String(match), test: (ds) => re.test(ds), hook });
      } else if (typeof match === 'function') {
        rules.push({ label: `<${match.name || 'predicate'}>`, test: match, hook });
      } else if (match && typeof match === 'object' && typeof match.prefix === 'string') {
        const p = match.prefix;
        rules.push({ label: `${p}*`, test: (ds) => ds.startsWith(p), hook });
      } else {
        throw new ConfigError('register(match, reward): match must be a string, { prefix }, a RegExp or a predicate', 'match');
      }
      return registry;
    },
    resolve,
    describe,
    async score(input: RewardInput, opts?: RewardRunOptions): Promise<ScoredReward> {
      const hook = resolve(input.dataSource);
      if (!hook) throw unknown(input.dataSource);
      return hook.score(input, opts);
    },
    async scoreBatch(inputs: readonly RewardInput[], opts?: RewardRunOptions): Promise<RewardItemResult[]> {
      const out: RewardItemResult[] = new Array(inputs.length);
      const groups = new Map<RewardHook, number[]>();
      inputs.forEach((input, i) => {
        const hook = resolve(input.dataSource);
        if (!hook) {
          out[i] = toRewardFailure(unknown(input.dataSource));
          return;
        }
        const g = groups.get(hook);
        if (g) g.push(i);
        else groups.set(hook, [i]);
      });
      await Promise.all(
        [...groups].map(async ([hook, idx]) => {
          const res = await hook.scoreBatch(
            idx.map((i) => inputs[i]),
            opts,
          );
          idx.forEach((i, k) => (out[i] = res[k]));
        }),
      );
      return out;
    },
  };
  for (const [k, v] of Object.entries(entries)) registry.register(k, v);
  return registry;
}

/**
 * The part of verl's `default_compute_score` that lumirag-rl reimplements: `math_dapo`, `math` and every `aime*`
 * data source go to {@link mathDapoReward}, as in verl. Other verl data sources (gsm8k, the MATH variants,
 * numina_*, code, geometry3k, searchR1_*) are not built in; register your own on the returned registry.
 */
export function createDefaultRewardRegistry(options: RewardRegistryOptions = {}): RewardRegistry {
  return createRewardRegistry({ math_dapo: mathDapoReward, math: mathDapoReward }, { name: 'default_compute_score', ...options }).register(
    { prefix: 'aime' },
    mathDapoReward,
  );
}
