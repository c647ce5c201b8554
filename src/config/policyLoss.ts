/**
 * The policy-loss configuration: verl's actor keys in camelCase, their defaults, and validation.
 *
 * @module
 */
import { ConfigError, UnknownModeError } from '../errors.js';

/** The loss-aggregation modes verl accepts (`actor.loss_agg_mode`). */
export const LOSS_AGG_MODES = [
  'token-mean',
  'seq-mean-token-sum',
  'seq-mean-token-mean',
  'seq-mean-token-sum-norm',
] as const;

/** One of verl's four loss-aggregation modes. */
export type LossAggMode = (typeof LOSS_AGG_MODES)[number];

/** Validate a loss-aggregation mode name, throwing {@link UnknownModeError} that lists the valid ones. */
export function checkLossAggMode(mode: string): LossAggMode {
  if (!(LOSS_AGG_MODES as readonly string[]).includes(mode)) throw new UnknownModeError('lossAggMode', mode, LOSS_AGG_MODES);
  return mode as LossAggMode;
}

/**
 * verl's global-batch arguments of `agg_loss` (the new engine path). With none given, aggregation is over the
 * batch passed in (verl's legacy path and its micro-batch semantics).
 */
export interface GlobalBatchInfo {
  /** Data-parallel world size; token-mean and seq-mean-* multiply by it. */
  dpSize?: number;
  /** Σ mask over the whole mini-batch, all ranks (token-mean's denominator). */
  batchNumTokens?: number;
  /** Number of sequences in the mini-batch, fully masked ones included (seq-mean-*'s denominator). */
  globalBatchSize?: number;
  /** seq-mean-token-sum-norm's divisor; defaults to the padded width T. */
  lossScaleFactor?: number;
}

/** `policy_loss.rollout_correction` for `bypass_mode` (verl's `RolloutCorrectionConfig`). */
export interface RolloutCorrectionConfig {
  /** IS weight level: `'token'`, `'sequence'` or null (off). Default null. */
  rolloutIs?: 'token' | 'sequence' | null;
  /** Upper truncation of the IS weights. Default 2.0. */
  rolloutIsThreshold?: number;
  /** Divide the IS weights by their batch mean. Default false. */
  rolloutIsBatchNormalize?: boolean;
  /** Rejection-sampling rule name (e.g. `'token_k1'`, `'seq_mean_k3'`) or null (off). Default null. */
  rolloutRs?: string | null;
  /** Rejection-sampling threshold(s): a number, or `"lo_hi"` as verl writes it. Default null. */
  rolloutRsThreshold?: number | string | null;
  /** `'ppo_clip'` (default) or `'reinforce'`. */
  lossType?: 'ppo_clip' | 'reinforce';
}

/** Options of every policy loss: verl's actor keys in camelCase. All are optional; see {@link POLICY_LOSS_DEFAULTS}. */
export interface PolicyLossConfig {
  /** ε when `clipRatioLow` / `clipRatioHigh` are not set (`actor.clip_ratio`, 0.2). */
  clipRatio?: number;
  /** Lower clip ε (`actor.clip_ratio_low`); falls back to `clipRatio`. */
  clipRatioLow?: number | null;
  /** Upper clip ε (`actor.clip_ratio_high`); falls back to `clipRatio`. */
  clipRatioHigh?: number | null;
  /** Dual-clip constant c > 1 (`actor.clip_ratio_c`, 3.0). */
  clipRatioC?: number;
  /** SAPO temperature for positive advantages (`actor.tau_pos`, 1.0). */
  tauPos?: number;
  /** SAPO temperature for non-positive advantages (`actor.tau_neg`, 1.05). */
  tauNeg?: number;
  /** Aggregation mode. Unset: the strategy's own default (verl's behaviour); set: honoured. */
  lossAggMode?: LossAggMode;
  /** clip_cov: fraction of tokens to clip (`policy_loss.clip_cov_ratio`, 0.0002). */
  clipCovRatio?: number;
  /** clip_cov: covariance lower bound (`policy_loss.clip_cov_lb`, 1.0). */
  clipCovLb?: number;
  /** clip_cov: covariance upper bound (`policy_loss.clip_cov_ub`, 5.0). */
  clipCovUb?: number;
  /**
   * clip_cov: seed of the PRNG that picks which candidates to zero when there are more than n_clip (verl uses an
   * unseeded `torch.randperm`; lumirag-rl is deterministic for a given seed). Default 0. Not a verl key.
   */
  clipCovSeed?: number;
  /** kl_cov: fraction of tokens that get the KL term (`policy_loss.kl_cov_ratio`, 0.0002). */
  klCovRatio?: number;
  /** kl_cov: coefficient of |log-ratio| (`policy_loss.ppo_kl_coef`, 0.1). */
  ppoKlCoef?: number;
  /** eighty-twenty: fraction of valid tokens (by entropy) that are trained (`actor.entropy_top_ratio`, 0.2). */
  entropyTopRatio?: number;
  /** bypass_mode's rollout correction. */
  rolloutCorrection?: RolloutCorrectionConfig;
  /** Global-batch normalisers forwarded to aggregation. */
  globalBatchInfo?: GlobalBatchInfo;
}

/** A {@link PolicyLossConfig} with every default filled in and every value validated. */
export interface ResolvedPolicyLossConfig {
  clipRatio: number;
  clipRatioLow: number;
  clipRatioHigh: number;
  clipRatioC: number;
  tauPos: number;
  tauNeg: number;
  /** undefined = the strategy's own default. */
  lossAggMode: LossAggMode | undefined;
  clipCovRatio: number;
  clipCovLb: number;
  clipCovUb: number;
  clipCovSeed: number;
  klCovRatio: number;
  ppoKlCoef: number;
  entropyTopRatio: number;
  rolloutCorrection: Required<RolloutCorrectionConfig>;
  globalBatchInfo: GlobalBatchInfo;
}

/** verl's defaults (SPEC.md §15). */
export const POLICY_LOSS_DEFAULTS = {
  clipRatio: 0.2,
  clipRatioC: 3.0,
  tauPos: 1.0,
  tauNeg: 1.05,
  clipCovRatio: 0.0002,
  clipCovLb: 1.0,
  clipCovUb: 5.0,
  clipCovSeed: 0,
  klCovRatio: 0.0002,
  ppoKlCoef: 0.1,
  entropyTopRatio: 0.2,
  rolloutCorrection: {
    rolloutIs: null,
    rolloutIsThreshold: 2.0,
    rolloutIsBatchNormalize: false,
    rolloutRs: null,
    rolloutRsThreshold: null,
    lossType: 'ppo_clip',
  } as Required<RolloutCorrectionConfig>,
} as const;

function num(v: unknown, field: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${field} must be a finite number, got ${String(v)}`, field);
  return v;
}

function positive(v: number, field: string): number {
  if (!(v > 0)) throw new ConfigError(`${field} must be > 0, got ${v}`, field);
  return v;
}

function checkGlobalBatchInfo(g: GlobalBatchInfo | undefined): GlobalBatchInfo {
  const out: GlobalBatchInfo = {};
  if (!g) return out;
  for (const key of ['dpSize', 'batchNumTokens', 'globalBatchSize', 'lossScaleFactor'] as const) {
    const v = g[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(`globalBatchInfo.${key} must be a positive number, got ${String(v)}`, `globalBatchInfo.${key}`);
    }
    out[key] = v;
  }
  return out;
}

/**
 * Fill in verl's defaults and validate. Throws {@link ConfigError} naming the offending key
 * (e.g. `clipRatioC <= 1`, a negative ε, a ratio outside [0, 1]).
 */
export function resolvePolicyLossConfig(config: PolicyLossConfig = {}): ResolvedPolicyLossConfig {
  const clipRatio = num(config.clipRatio, 'clipRatio', POLICY_LOSS_DEFAULTS.clipRatio);
  const clipRatioLow = num(config.clipRatioLow, 'clipRatioLow', clipRatio);
  const clipRatioHigh = num(config.clipRatioHigh, 'clipRatioHigh', clipRatio);
  if (clipRatioLow < 0) throw new ConfigError(`clipRatioLow must be >= 0, got ${clipRatioLow}`, 'clipRatioLow');
  if (clipRatioHigh < 0) throw new ConfigError(`clipRatioHigh must be >= 0, got ${clipRatioHigh}`, 'clipRatioHigh');
  const clipRatioC = num(config.clipRatioC, 'clipRatioC', POLICY_LOSS_DEFAULTS.clipRatioC);
  if (!(clipRatioC > 1)) {
    throw new ConfigError(`clipRatioC must be > 1 for dual-clip (verl asserts it), got ${clipRatioC}`, 'clipRatioC');
  }
  const tauPos = positive(num(config.tauPos, 'tauPos', POLICY_LOSS_DEFAULTS.tauPos), 'tauPos');
  const tauNeg = positive(num(config.tauNeg, 'tauNeg', POLICY_LOSS_DEFAULTS.tauNeg), 'tauNeg');
  const lossAggMode = config.lossAggMode === undefined || config.lossAggMode === null
    ? undefined
    : checkLossAggMode(config.lossAggMode);
  const clipCovRatio = num(config.clipCovRatio, 'clipCovRatio', POLICY_LOSS_DEFAULTS.clipCovRatio);
  const clipCovLb = num(config.clipCovLb, 'clipCovLb', POLICY_LOSS_DEFAULTS.clipCovLb);
  const clipCovUb = num(config.clipCovUb, 'clipCovUb', POLICY_LOSS_DEFAULTS.clipCovUb);
  const clipCovSeed = num(config.clipCovSeed, 'clipCovSeed', POLICY_LOSS_DEFAULTS.clipCovSeed);
  const klCovRatio = num(config.klCovRatio, 'klCovRatio', POLICY_LOSS_DEFAULTS.klCovRatio);
  const ppoKlCoef = num(config.ppoKlCoef, 'ppoKlCoef', POLICY_LOSS_DEFAULTS.ppoKlCoef);
  const entropyTopRatio = num(config.entropyTopRatio, 'entropyTopRatio', POLICY_LOSS_DEFAULTS.entropyTopRatio);
  if (entropyTopRatio < 0 || entropyTopRatio > 1) {
    throw new ConfigError(`entropyTopRatio must be in [0, 1], got ${entropyTopRatio}`, 'entropyTopRatio');
  }
  const rc = { ...POLICY_LOSS_DEFAULTS.rolloutCorrection, ...(config.rolloutCorrection ?? {}) };
  if (rc.lossType !== 'ppo_clip' && rc.lossType !== 'reinforce') {
    throw new UnknownModeError('rolloutCorrection.lossType', String(rc.lossType), ['ppo_clip', 'reinforce']);
  }
  if (rc.rolloutIs !== null && rc.rolloutIs !== 'token' && rc.rolloutIs !== 'sequence') {
    throw new UnknownModeError('rolloutCorrection.rolloutIs', String(rc.rolloutIs), ['token', 'sequence', 'null']);
  }
  return {
    clipRatio,
    clipRatioLow,
    clipRatioHigh,
    clipRatioC,
    tauPos,
    tauNeg,
    lossAggMode,
    clipCovRatio,
    clipCovLb,
    clipCovUb,
    clipCovSeed,
    klCovRatio,
    ppoKlCoef,
    entropyTopRatio,
    rolloutCorrection: rc,
    globalBatchInfo: checkGlobalBatchInfo(config.globalBatchInfo),
  };
}
