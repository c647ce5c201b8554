/**
 * `fromVerlConfig`: read verl's snake_case actor keys — as a nested object, as dotted keys, or as the
 * `key=value` overrides a verl run script passes (`actor_rollout_ref.actor.policy_loss.loss_mode=gspo`) — into a
 * validated, typed {@link PolicyLossConfig} plus the loss mode.
 *
 * @module
 */
import { ConfigError } from '../errors.js';
import {
  type GlobalBatchInfo,
  type PolicyLossConfig,
  type RolloutCorrectionConfig,
  resolvePolicyLossConfig,
} from './policyLoss.js';

/** A policy-loss config read from verl keys, with the loss mode and what was not understood. */
export interface VerlPolicyConfig extends PolicyLossConfig {
  /** `actor.policy_loss.loss_mode` (verl's default `vanilla`). */
  lossMode: string;
  /** Keys that are not policy-loss keys (other verl sections, unknown actor keys); never silently dropped. */
  ignoredKeys: string[];
}

const TOP: Record<string, keyof PolicyLossConfig | 'lossMode'> = {
  clip_ratio: 'clipRatio',
  clip_ratio_low: 'clipRatioLow',
  clip_ratio_high: 'clipRatioHigh',
  clip_ratio_c: 'clipRatioC',
  tau_pos: 'tauPos',
  tau_neg: 'tauNeg',
  loss_agg_mode: 'lossAggMode',
  clip_cov_ratio: 'clipCovRatio',
  clip_cov_lb: 'clipCovLb',
  clip_cov_ub: 'clipCovUb',
  kl_cov_ratio: 'klCovRatio',
  ppo_kl_coef: 'ppoKlCoef',
  entropy_top_ratio: 'entropyTopRatio',
  loss_mode: 'lossMode',
};

const ROLLOUT: Record<string, keyof RolloutCorrectionConfig> = {
  rollout_is: 'rolloutIs',
  rollout_is_threshold: 'rolloutIsThreshold',
  rollout_is_batch_normalize: 'rolloutIsBatchNormalize',
  rollout_rs: 'rolloutRs',
  rollout_rs_threshold: 'rolloutRsThreshold',
  loss_type: 'lossType',
};

const GLOBAL: Record<string, keyof GlobalBatchInfo> = {
  dp_size: 'dpSize',
  batch_num_tokens: 'batchNumTokens',
  global_batch_size: 'globalBatchSize',
  loss_scale_factor: 'lossScaleFactor',
};

/** Parse a command-line override value the way Hydra would for these keys: numbers, booleans, null. */
export function parseOverrideValue(raw: string): unknown {
  const s = raw.trim();
  if (s === 'null' || s === 'None' || s === '~' || s === '') return null;
  if (s === 'true' || s === 'True') return true;
  if (s === 'false' || s === 'False') return false;
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) return s.slice(1, -1);
  return s;
}

function flatten(input: unknown, prefix: string, out: [string, unknown][]): void {
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
      else out.push([key, v]);
    }
  } else {
    out.push([prefix, input]);
  }
}

/** The input forms {@link fromVerlConfig} accepts. */
export type VerlConfigInput = Record<string, unknown> | readonly string[] | string;

function entries(input: VerlConfigInput): [string, unknown][] {
  const out: [string, unknown][] = [];
  if (typeof input === 'string' || Array.isArray(input)) {
    const parts = typeof input === 'string' ? input.split(/\s+/) : (input as readonly string[]);
    for (const part of parts) {
      const p = part.trim().replace(/\\$/, '');
      if (!p) continue;
      const eq = p.indexOf('=');
      if (eq < 0) throw new ConfigError(`fromVerlConfig: override ${JSON.stringify(p)} is not key=value`, p);
      out.push([p.slice(0, eq).replace(/^\+\+?/, ''), parseOverrideValue(p.slice(eq + 1))]);
    }
    return out;
  }
  flatten(input, '', out);
  return out;
}

const PREFIXES = ['actor_rollout_ref.actor.', 'actor.'];

/**
 * Convert verl's keys to a validated config. Accepts `{ clip_ratio_low: 0.2, policy_loss: { loss_mode: 'gspo' } }`,
 * `{ 'actor_rollout_ref.actor.clip_ratio_low': 0.2 }`, or `['actor_rollout_ref.actor.policy_loss.loss_mode=gspo', …]`.
 * Keys outside the actor's policy-loss settings are listed in `ignoredKeys`. Invalid values throw
 * {@link ConfigError} / {@link UnknownModeError} naming the key.
 */
export function fromVerlConfig(input: VerlConfigInput): VerlPolicyConfig {
  const config: PolicyLossConfig & { lossMode?: string } = {};
  const rollout: RolloutCorrectionConfig = {};
  const global: GlobalBatchInfo = {};
  const ignoredKeys: string[] = [];
  for (const [fullKey, value] of entries(input)) {
    let key = fullKey;
    for (const p of PREFIXES) if (key.startsWith(p)) key = key.slice(p.length);
    key = key.replace(/^policy_loss\./, '');
    const set = <T extends object>(target: T, name: keyof T): void => {
      (target as Record<string, unknown>)[name as string] = value;
    };
    if (key.startsWith('rollout_correction.') && ROLLOUT[key.slice(19)]) set(rollout, ROLLOUT[key.slice(19)] as keyof RolloutCorrectionConfig);
    else if (key.startsWith('global_batch_info.') && GLOBAL[key.slice(18)]) set(global, GLOBAL[key.slice(18)] as keyof GlobalBatchInfo);
    else if (key === 'loss_scale_factor') set(global, 'lossScaleFactor');
    else if (TOP[key]) set(config, TOP[key] as keyof typeof config);
    else ignoredKeys.push(fullKey);
  }
  if (Object.keys(rollout).length) config.rolloutCorrection = rollout;
  if (Object.values(global).some((v) => v !== null && v !== undefined)) config.globalBatchInfo = global;
  const lossMode = config.lossMode ?? 'vanilla';
  if (typeof lossMode !== 'string') throw new ConfigError(`loss_mode must be a string, got ${String(lossMode)}`, 'loss_mode');
  delete config.lossMode;
  for (const k of Object.keys(config) as (keyof PolicyLossConfig)[]) if (config[k] === null) delete config[k];
  resolvePolicyLossConfig(config); // validate now, so a bad value fails at the boundary
  return { ...config, lossMode, ignoredKeys };
}
