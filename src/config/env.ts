/**
 * `configFromEnv`: the seed's environment variables (`../shared/SEED.md`) read into one validated, typed config, with
 * warnings for settings that are legal but probably not what was meant.
 *
 * Precedence, lowest first: lumirag-rl's defaults (DAPO recipe values for the data side) → the strategy preset
 * (`options.preset`, else the one matching `loss_mode` — `eighty-twenty`/`vanilla` → dapo, `gspo`, `sapo` — else
 * `dapo`) → the environment.
 *
 * @module
 */
import { ConfigError, UnknownModeError } from '../errors.js';
import { listPolicyLosses } from '../losses/index.js';
import type { OverlongConfig } from '../reward/overlong.js';
import { type LossAggMode, POLICY_LOSS_DEFAULTS, type PolicyLossConfig, checkLossAggMode, resolvePolicyLossConfig } from './policyLoss.js';
import { STRATEGY_NAMES, type StrategyName, presets } from './presets.js';

/** The truncation modes (`data.truncation`); the same list as the sampling module's. */
type Truncation = 'error' | 'left' | 'right' | 'middle';
const TRUNCATIONS: readonly Truncation[] = ['error', 'left', 'right', 'middle'];

/** Where a resolved value came from. */
export type ValueOrigin = 'env' | 'preset' | 'default';

/** A setting that is accepted but deserves attention. */
export interface ConfigWarning {
  /** Stable id, e.g. `'gspo-token-mean'`, `'overlong-buffer-too-long'`. */
  code: string;
  /** The variable concerned. */
  field: string;
  /** What is odd and what happens. */
  message: string;
}

/** Prompt/response limits of one training file. */
export interface LengthLimits {
  /** Longest prompt in tokens. */
  maxPromptLength: number;
  /** Longest response in tokens. */
  maxResponseLength: number;
}

/** The data side of the config. */
export interface SeedDataConfig {
  /** `TRAIN_4K_FILE`. */
  train4kFile?: string;
  /** `TRAIN_16K_FILE`. */
  train16kFile?: string;
  /** `max_prompt_length`. */
  maxPromptLength: number;
  /** `max_response_length`. */
  maxResponseLength: number;
  /** `enable_overlong_prompts_filter` (verl's `data.filter_overlong_prompts`). */
  filterOverlongPrompts: boolean;
  /** `truncation` (verl's `data.truncation`). */
  truncation: Truncation;
  /** Limits of the 4K file: `TRAIN_4K_MAX_PROMPT_LENGTH` / `TRAIN_4K_MAX_RESPONSE_LENGTH`, else the global ones. */
  limits4k: LengthLimits;
  /** Limits of the 16K file: `TRAIN_16K_MAX_PROMPT_LENGTH` / `TRAIN_16K_MAX_RESPONSE_LENGTH`, else the global ones. */
  limits16k: LengthLimits;
}

/** The resolved configuration of a seed-style run. */
export interface SeedConfig {
  /** The preset the values started from. */
  preset: StrategyName;
  /** `MODEL_PATH`. */
  modelPath?: string;
  /** `CKPTS_DIR`. */
  ckptsDir?: string;
  /** `loss_mode`. */
  lossMode: string;
  /** The policy-loss options (validated with `resolvePolicyLossConfig`). */
  policyLoss: PolicyLossConfig;
  /** The data side. */
  data: SeedDataConfig;
  /** The overlong buffer (`max_response_length`, `enable_overlong_buffer`, `overlong_buffer_len`, `overlong_penalty_factor`). */
  overlong: OverlongConfig;
  /** Where each variable's value came from. */
  origins: Record<string, ValueOrigin>;
  /** Settings worth a second look; see {@link ConfigWarning}. */
  warnings: ConfigWarning[];
}

/** The variables {@link configFromEnv} reads (the seed's, plus lumirag-rl's optional extensions). */
export const SEED_ENV_VARS: readonly { name: string; kind: 'path' | 'int' | 'float' | 'bool' | 'string'; seed: boolean; meaning: string }[] = [
  { name: 'MODEL_PATH', kind: 'path', seed: true, meaning: 'pretrained model (tokenizer.json + chat template for the prompt filter)' },
  { name: 'TRAIN_4K_FILE', kind: 'path', seed: true, meaning: 'training data of 4K length (parquet or JSONL)' },
  { name: 'TRAIN_16K_FILE', kind: 'path', seed: true, meaning: 'training data of 16K length (parquet or JSONL)' },
  { name: 'CKPTS_DIR', kind: 'path', seed: true, meaning: 'where checkpoints are written' },
  { name: 'loss_mode', kind: 'string', seed: true, meaning: 'policy loss (eighty-twenty, gspo, sapo, vanilla, …)' },
  { name: 'clip_ratio_low', kind: 'float', seed: true, meaning: 'lower clip ε (SAPO: tau_neg)' },
  { name: 'clip_ratio_high', kind: 'float', seed: true, meaning: 'upper clip ε (SAPO: tau_pos)' },
  { name: 'loss_agg_mode', kind: 'string', seed: true, meaning: 'loss aggregation mode' },
  { name: 'max_prompt_length', kind: 'int', seed: true, meaning: 'longest prompt in tokens' },
  { name: 'max_response_length', kind: 'int', seed: true, meaning: 'longest response in tokens' },
  { name: 'enable_overlong_buffer', kind: 'bool', seed: true, meaning: 'soft overlong penalty on' },
  { name: 'overlong_buffer_len', kind: 'int', seed: true, meaning: 'overlong buffer in tokens' },
  { name: 'overlong_penalty_factor', kind: 'float', seed: true, meaning: 'penalty at the response limit' },
  { name: 'enable_overlong_prompts_filter', kind: 'bool', seed: true, meaning: 'drop prompts longer than max_prompt_length' },
  { name: 'tau_pos', kind: 'float', seed: false, meaning: 'SAPO tau_pos (wins over clip_ratio_high)' },
  { name: 'tau_neg', kind: 'float', seed: false, meaning: 'SAPO tau_neg (wins over clip_ratio_low)' },
  { name: 'truncation', kind: 'string', seed: false, meaning: 'data.truncation: error, left, right, middle' },
  { name: 'TRAIN_4K_MAX_PROMPT_LENGTH', kind: 'int', seed: false, meaning: 'prompt limit of the 4K file (default max_prompt_length)' },
  { name: 'TRAIN_4K_MAX_RESPONSE_LENGTH', kind: 'int', seed: false, meaning: 'response limit of the 4K file (default max_response_length)' },
  { name: 'TRAIN_16K_MAX_PROMPT_LENGTH', kind: 'int', seed: false, meaning: 'prompt limit of the 16K file (default max_prompt_length)' },
  { name: 'TRAIN_16K_MAX_RESPONSE_LENGTH', kind: 'int', seed: false, meaning: 'response limit of the 16K file (default max_response_length)' },
];

/**
 * The data-side defaults when neither the preset nor the environment sets them: the DAPO recipe's values
 * (`run_dapo_qwen2.5_32b.sh`: prompt 2048 with left truncation, response 20480, overlong buffer 4096 with factor
 * 1.0), with the prompt filter on as the seed intends.
 */
export const SEED_DATA_DEFAULTS = Object.freeze({
  maxPromptLength: 2048,
  maxResponseLength: 20480,
  enableOverlongBuffer: true,
  overlongBufferLen: 4096,
  overlongPenaltyFactor: 1.0,
  filterOverlongPrompts: true,
  truncation: 'left' as Truncation,
});

/** Options of {@link configFromEnv}. */
export interface ConfigFromEnvOptions {
  /** Start from this preset instead of the one `loss_mode` suggests. */
  preset?: StrategyName;
}

const LOSS_MODE_PRESET: Record<string, StrategyName> = { 'eighty-twenty': 'dapo', vanilla: 'dapo', gspo: 'gspo', sapo: 'sapo' };

/** Environment-like input: `process.env` or any string map. */
export type EnvInput = Readonly<Record<string, string | undefined>>;

function lookup(env: EnvInput, name: string, warnings: ConfigWarning[]): string | undefined {
  const variants = [...new Set([name, name.toLowerCase(), name.toUpperCase()])];
  let found: string | undefined;
  let foundName = '';
  for (const v of variants) {
    const raw = env[v];
    if (raw === undefined || raw.trim() === '') continue;
    if (found === undefined) {
      found = raw.trim();
      foundName = v;
    } else if (raw.trim() !== found) {
      warnings.push({ code: 'conflicting-variables', field: name, message: `${foundName}=${found} and ${v}=${raw.trim()} are both set; using ${foundName}` });
    }
  }
  return found;
}

function parseInt0(raw: string, name: string): number {
  if (!/^[+]?\d+$/.test(raw)) throw new ConfigError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`, name);
  return Number(raw);
}

function parseFloat0(raw: string, name: string): number {
  const v = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(v)) throw new ConfigError(`${name} must be a finite number, got ${JSON.stringify(raw)}`, name);
  return v;
}

function parseBool(raw: string, name: string): boolean {
  const s = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  throw new ConfigError(`${name} must be a boolean (true/false, 1/0, yes/no), got ${JSON.stringify(raw)}`, name);
}

/**
 * Read the seed's variables from `env` (default `process.env`) into one validated {@link SeedConfig}. Names are
 * matched as the seed writes them, and also in the other case (`LOSS_MODE` for `loss_mode`). Unparseable values
 * throw {@link ConfigError} / {@link UnknownModeError} naming the variable; suspicious but legal combinations become
 * `warnings`:
 * - `sapo-taus-from-clip-ratios`: with `loss_mode=sapo`, `clip_ratio_low` is read as `tauNeg` and `clip_ratio_high`
 *   as `tauPos` (the seed's convention); explicit `tau_neg` / `tau_pos` win.
 * - `gspo-agg-mode` / `sapo-agg-mode`: verl ignores `loss_agg_mode` for these (always seq-mean-token-mean);
 *   lumirag-rl honours a mode that is set.
 * - `gspo-wide-clip`: GSPO with a token-level clip range (≥ 0.01): sequence ratios then almost never clip.
 * - `overlong-buffer-too-long`, `overlong-buffer-zero`, `overlong-factor-zero`: the buffer is longer than the
 *   response limit (verl asserts at start), or zero while enabled (division by zero), or has no effect.
 * - `unknown-loss-mode`, `no-train-files`, `no-model-path`, `train-4k-limits`, `conflicting-variables`.
 */
export function configFromEnv(env: EnvInput = process.env, options: ConfigFromEnvOptions = {}): SeedConfig {
  if (env == null || typeof env !== 'object') throw new ConfigError('env must be an object of strings (e.g. process.env)', 'env');
  const warnings: ConfigWarning[] = [];
  const origins: Record<string, ValueOrigin> = {};
  const get = (name: string): string | undefined => lookup(env, name, warnings);

  const envLossMode = get('loss_mode');
  let presetName: StrategyName;
  if (options.preset !== undefined) {
    if (!STRATEGY_NAMES.includes(options.preset)) throw new UnknownModeError('preset', String(options.preset), STRATEGY_NAMES);
    presetName = options.preset;
  } else presetName = (envLossMode !== undefined ? LOSS_MODE_PRESET[envLossMode] : undefined) ?? 'dapo';
  const preset = presets[presetName];

  const lossMode = envLossMode ?? preset.lossMode;
  origins.loss_mode = envLossMode !== undefined ? 'env' : 'preset';

  if (options.preset !== undefined && envLossMode !== undefined && envLossMode !== preset.lossMode) {
    warnings.push({
      code: 'preset-loss-mode-mismatch',
      field: 'loss_mode',
      message: `preset ${presetName} is ${preset.lossMode} but loss_mode=${envLossMode} is set; the environment wins, the preset's other values stay`,
    });
  }

  // Policy loss: the preset's options, then the clip ratios (or SAPO's taus) and the aggregation mode from env.
  const presetPL = preset.policyLoss;
  const policyLoss: PolicyLossConfig = { ...presetPL };
  delete policyLoss.clipRatioLow;
  delete policyLoss.clipRatioHigh;
  delete policyLoss.tauPos;
  delete policyLoss.tauNeg;
  const rawLow = get('clip_ratio_low');
  const rawHigh = get('clip_ratio_high');
  const low = rawLow !== undefined ? parseFloat0(rawLow, 'clip_ratio_low') : undefined;
  const high = rawHigh !== undefined ? parseFloat0(rawHigh, 'clip_ratio_high') : undefined;
  const rawTauPos = get('tau_pos');
  const rawTauNeg = get('tau_neg');
  const tauPosEnv = rawTauPos !== undefined ? parseFloat0(rawTauPos, 'tau_pos') : undefined;
  const tauNegEnv = rawTauNeg !== undefined ? parseFloat0(rawTauNeg, 'tau_neg') : undefined;
  if (lossMode === 'sapo') {
    policyLoss.tauNeg = tauNegEnv ?? low ?? presetPL.tauNeg ?? POLICY_LOSS_DEFAULTS.tauNeg;
    policyLoss.tauPos = tauPosEnv ?? high ?? presetPL.tauPos ?? POLICY_LOSS_DEFAULTS.tauPos;
    origins.clip_ratio_low = low !== undefined ? 'env' : presetPL.tauNeg !== undefined ? 'preset' : 'default';
    origins.clip_ratio_high = high !== undefined ? 'env' : presetPL.tauPos !== undefined ? 'preset' : 'default';
    if (low !== undefined || high !== undefined) {
      warnings.push({
        code: 'sapo-taus-from-clip-ratios',
        field: 'clip_ratio_low',
        message:
          `loss_mode=sapo: the seed's convention carries SAPO's temperatures in the clip-ratio variables, read as ` +
          `tauNeg = clip_ratio_low${low !== undefined ? ` (${low})` : ''} and tauPos = clip_ratio_high${high !== undefined ? ` (${high})` : ''}; SAPO does not clip`,
      });
    }
    for (const [name, envVal, clipVal] of [['tau_neg', tauNegEnv, low], ['tau_pos', tauPosEnv, high]] as const) {
      if (envVal !== undefined && clipVal !== undefined && envVal !== clipVal) {
        warnings.push({ code: 'conflicting-variables', field: name, message: `${name}=${envVal} overrides the value ${clipVal} carried in the clip-ratio variable` });
      }
    }
  } else {
    // The preset's ε (a SAPO preset has none: its clip-ratio variables hold taus, so verl's defaults apply).
    const lo = low ?? presetPL.clipRatioLow;
    const hi = high ?? presetPL.clipRatioHigh;
    if (lo !== undefined && lo !== null) policyLoss.clipRatioLow = lo;
    if (hi !== undefined && hi !== null) policyLoss.clipRatioHigh = hi;
    origins.clip_ratio_low = low !== undefined ? 'env' : lo !== undefined ? 'preset' : 'default';
    origins.clip_ratio_high = high !== undefined ? 'env' : hi !== undefined ? 'preset' : 'default';
    if (tauPosEnv !== undefined) policyLoss.tauPos = tauPosEnv;
    if (tauNegEnv !== undefined) policyLoss.tauNeg = tauNegEnv;
  }
  if (tauPosEnv !== undefined) origins.tau_pos = 'env';
  if (tauNegEnv !== undefined) origins.tau_neg = 'env';
  const rawAgg = get('loss_agg_mode');
  const aggMode: LossAggMode | undefined = rawAgg !== undefined ? checkLossAggMode(rawAgg) : presetPL.lossAggMode;
  if (aggMode !== undefined) policyLoss.lossAggMode = aggMode;
  origins.loss_agg_mode = rawAgg !== undefined ? 'env' : 'preset';
  try {
    resolvePolicyLossConfig(policyLoss);
  } catch (err) {
    if (err instanceof ConfigError && lossMode === 'sapo' && (err.field === 'tauPos' || err.field === 'tauNeg')) {
      const v = err.field === 'tauPos' ? 'clip_ratio_high / tau_pos' : 'clip_ratio_low / tau_neg';
      throw new ConfigError(`${err.message} (loss_mode=sapo reads it from ${v})`, err.field);
    }
    throw err;
  }

  if ((lossMode === 'gspo' || lossMode === 'sapo') && aggMode !== undefined && aggMode !== 'seq-mean-token-mean') {
    warnings.push({
      code: `${lossMode}-agg-mode`,
      field: 'loss_agg_mode',
      message:
        `loss_mode=${lossMode} with loss_agg_mode=${aggMode}: verl's ${lossMode} ignores loss_agg_mode and always uses ` +
        `seq-mean-token-mean, so verl computes a different loss than the ${aggMode} lumirag-rl honours here`,
    });
  }
  if (lossMode === 'gspo' && Math.max(policyLoss.clipRatioLow ?? 0, policyLoss.clipRatioHigh ?? 0) >= 0.01) {
    warnings.push({
      code: 'gspo-wide-clip',
      field: 'clip_ratio_high',
      message: `loss_mode=gspo with clip ratios ${policyLoss.clipRatioLow}/${policyLoss.clipRatioHigh}: GSPO clips a sequence-level ratio and uses ranges near 3e-4/4e-4; token-level ranges like 0.2 almost never clip`,
    });
  }
  const known = listPolicyLosses();
  if (!known.includes(lossMode)) {
    warnings.push({ code: 'unknown-loss-mode', field: 'loss_mode', message: `loss_mode=${lossMode} is not a registered policy loss (known: ${known.join(', ')})` });
  }

  // Data side.
  const intVar = (name: string, dflt: number): number => {
    const raw = get(name);
    origins[name] = raw !== undefined ? 'env' : 'default';
    return raw !== undefined ? parseInt0(raw, name) : dflt;
  };
  const boolVar = (name: string, dflt: boolean): boolean => {
    const raw = get(name);
    origins[name] = raw !== undefined ? 'env' : 'default';
    return raw !== undefined ? parseBool(raw, name) : dflt;
  };
  const maxPromptLength = intVar('max_prompt_length', SEED_DATA_DEFAULTS.maxPromptLength);
  const maxResponseLength = intVar('max_response_length', SEED_DATA_DEFAULTS.maxResponseLength);
  if (maxPromptLength < 1) throw new ConfigError('max_prompt_length must be >= 1', 'max_prompt_length');
  if (maxResponseLength < 1) throw new ConfigError('max_response_length must be >= 1', 'max_response_length');
  const enable = boolVar('enable_overlong_buffer', SEED_DATA_DEFAULTS.enableOverlongBuffer);
  const overlongBufferLen = intVar('overlong_buffer_len', SEED_DATA_DEFAULTS.overlongBufferLen);
  const rawFactor = get('overlong_penalty_factor');
  origins.overlong_penalty_factor = rawFactor !== undefined ? 'env' : 'default';
  const overlongPenaltyFactor = rawFactor !== undefined ? parseFloat0(rawFactor, 'overlong_penalty_factor') : SEED_DATA_DEFAULTS.overlongPenaltyFactor;
  const filterOverlongPrompts = boolVar('enable_overlong_prompts_filter', SEED_DATA_DEFAULTS.filterOverlongPrompts);
  const rawTrunc = get('truncation');
  origins.truncation = rawTrunc !== undefined ? 'env' : 'default';
  const truncation = (rawTrunc ?? SEED_DATA_DEFAULTS.truncation) as Truncation;
  if (!TRUNCATIONS.includes(truncation)) throw new UnknownModeError('truncation', truncation, TRUNCATIONS);

  if (overlongBufferLen > maxResponseLength) {
    warnings.push({
      code: 'overlong-buffer-too-long',
      field: 'overlong_buffer_len',
      message:
        `overlong_buffer_len (${overlongBufferLen}) is longer than max_response_length (${maxResponseLength}): the penalty would start ` +
        `before the first token; verl asserts max_resp_len >= overlong_buffer.len at start, and shapeOverlongReward throws`,
    });
  }
  if (enable && overlongBufferLen === 0) {
    warnings.push({ code: 'overlong-buffer-zero', field: 'overlong_buffer_len', message: 'enable_overlong_buffer with overlong_buffer_len=0: verl divides by zero; shapeOverlongReward throws' });
  }
  if (enable && overlongPenaltyFactor === 0) {
    warnings.push({ code: 'overlong-factor-zero', field: 'overlong_penalty_factor', message: 'enable_overlong_buffer with overlong_penalty_factor=0: the buffer has no effect' });
  }

  const path = (name: string): string | undefined => {
    const v = get(name);
    origins[name] = v !== undefined ? 'env' : 'default';
    return v;
  };
  const modelPath = path('MODEL_PATH');
  const train4kFile = path('TRAIN_4K_FILE');
  const train16kFile = path('TRAIN_16K_FILE');
  const ckptsDir = path('CKPTS_DIR');
  const limits = (prefix: string): LengthLimits => ({
    maxPromptLength: intVar(`${prefix}_MAX_PROMPT_LENGTH`, maxPromptLength),
    maxResponseLength: intVar(`${prefix}_MAX_RESPONSE_LENGTH`, maxResponseLength),
  });
  const limits4k = limits('TRAIN_4K');
  const limits16k = limits('TRAIN_16K');
  for (const [prefix, l] of [['TRAIN_4K', limits4k], ['TRAIN_16K', limits16k]] as const) {
    if (l.maxPromptLength < 1 || l.maxResponseLength < 1) throw new ConfigError(`${prefix} limits must be >= 1`, `${prefix}_MAX_PROMPT_LENGTH`);
  }
  if (!train4kFile && !train16kFile) {
    warnings.push({ code: 'no-train-files', field: 'TRAIN_4K_FILE', message: 'neither TRAIN_4K_FILE nor TRAIN_16K_FILE is set: there is no training data' });
  }
  if (!modelPath && filterOverlongPrompts) {
    warnings.push({ code: 'no-model-path', field: 'MODEL_PATH', message: 'enable_overlong_prompts_filter needs the tokenizer from MODEL_PATH, which is not set' });
  }
  if (train4kFile && limits4k.maxPromptLength + limits4k.maxResponseLength > 4096) {
    warnings.push({
      code: 'train-4k-limits',
      field: 'TRAIN_4K_MAX_PROMPT_LENGTH',
      message:
        `the 4K file's limits (prompt ${limits4k.maxPromptLength} + response ${limits4k.maxResponseLength}) exceed 4096 tokens; ` +
        'set TRAIN_4K_MAX_PROMPT_LENGTH / TRAIN_4K_MAX_RESPONSE_LENGTH to give it its own limits',
    });
  }

  const config: SeedConfig = {
    preset: presetName,
    lossMode,
    policyLoss,
    data: { maxPromptLength, maxResponseLength, filterOverlongPrompts, truncation, limits4k, limits16k },
    overlong: { maxResponseLength, overlongBufferLen, overlongPenaltyFactor, enable },
    origins,
    warnings,
  };
  if (modelPath) config.modelPath = modelPath;
  if (ckptsDir) config.ckptsDir = ckptsDir;
  if (train4kFile) config.data.train4kFile = train4kFile;
  if (train16kFile) config.data.train16kFile = train16kFile;
  return config;
}

/**
 * The verl command-line overrides that express a {@link SeedConfig} (Hydra `key=value`, one per entry): the actor's
 * policy-loss keys, the data keys, and the DAPO recipe's `reward_model.overlong_buffer.*`.
 */
export function toVerlOverrides(config: SeedConfig): string[] {
  const a = 'actor_rollout_ref.actor';
  const out: string[] = [];
  const pl = config.policyLoss;
  out.push(`${a}.policy_loss.loss_mode=${config.lossMode}`);
  if (pl.clipRatioLow !== undefined && pl.clipRatioLow !== null) out.push(`${a}.clip_ratio_low=${pl.clipRatioLow}`);
  if (pl.clipRatioHigh !== undefined && pl.clipRatioHigh !== null) out.push(`${a}.clip_ratio_high=${pl.clipRatioHigh}`);
  if (pl.tauPos !== undefined) out.push(`${a}.tau_pos=${pl.tauPos}`);
  if (pl.tauNeg !== undefined) out.push(`${a}.tau_neg=${pl.tauNeg}`);
  if (pl.lossAggMode !== undefined) out.push(`${a}.loss_agg_mode=${pl.lossAggMode}`);
  // eighty-twenty is the 80/20 fork's mode; its ratio key is actor.entropy_top_ratio there.
  if (config.lossMode === 'eighty-twenty' && pl.entropyTopRatio !== undefined) out.push(`${a}.entropy_top_ratio=${pl.entropyTopRatio}`);
  const files = [config.data.train4kFile, config.data.train16kFile].filter((f): f is string => !!f);
  if (files.length) out.push(`data.train_files=[${files.map((f) => `'${f}'`).join(',')}]`);
  out.push(`data.max_prompt_length=${config.data.maxPromptLength}`);
  out.push(`data.max_response_length=${config.data.maxResponseLength}`);
  out.push(`data.filter_overlong_prompts=${config.data.filterOverlongPrompts ? 'True' : 'False'}`);
  out.push(`data.truncation=${config.data.truncation}`);
  out.push(`reward_model.overlong_buffer.enable=${config.overlong.enable ? 'True' : 'False'}`);
  out.push(`reward_model.overlong_buffer.len=${config.overlong.overlongBufferLen}`);
  out.push(`reward_model.overlong_buffer.penalty_factor=${config.overlong.overlongPenaltyFactor}`);
  if (config.modelPath) out.push(`actor_rollout_ref.model.path=${config.modelPath}`);
  if (config.ckptsDir) out.push(`trainer.default_local_dir=${config.ckptsDir}`);
  return out;
}
