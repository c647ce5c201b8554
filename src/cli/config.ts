/**
 * `lumirag-rl config`: print the resolved seed configuration (preset + environment), where each value came from,
 * its warnings, and the verl overrides that express it.
 *
 * ```
 * lumirag-rl config --preset gspo              # the preset alone
 * lumirag-rl config --env                      # read the seed's variables from the environment
 * lumirag-rl config --env --set loss_mode=sapo --json
 * ```
 *
 * Exit status: 0; 1 on an invalid value (the message names the variable); 2 with `--strict` when there are warnings.
 *
 * @module
 */
import type { Command } from 'commander';
import { type EnvInput, type SeedConfig, configFromEnv, toVerlOverrides } from '../config/env.js';
import { STRATEGY_NAMES, type StrategyName } from '../config/presets.js';
import { ConfigError, UnknownModeError } from '../errors.js';

/** Options of {@link runConfigCommand} (the command's flags). */
export interface ConfigCommandOptions {
  /** Read the seed's variables from the environment (otherwise only `--set` values count). */
  env?: boolean;
  /** Start from this preset: dapo, gspo or sapo. */
  preset?: string;
  /** Print JSON `{ config, warnings, verlOverrides }` instead of text. */
  json?: boolean;
  /** `NAME=VALUE` assignments applied over the environment. */
  set?: string[];
  /** Exit with status 2 when there are warnings. */
  strict?: boolean;
}

/** The output of {@link runConfigCommand}. */
export interface ConfigCommandOutput {
  /** What to print on stdout. */
  text: string;
  /** The exit status. */
  exitCode: number;
  /** The resolved config. */
  config: SeedConfig;
}

function show(v: unknown): string {
  if (v === undefined) return '(unset)';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/**
 * Resolve and render the config the way the command does (separate from commander so it can be tested).
 *
 * @param opts - the flags
 * @param processEnv - the environment `--env` reads (default `process.env`)
 */
export function runConfigCommand(opts: ConfigCommandOptions, processEnv: EnvInput = process.env): ConfigCommandOutput {
  let preset: StrategyName | undefined;
  if (opts.preset !== undefined) {
    if (!(STRATEGY_NAMES as readonly string[]).includes(opts.preset)) throw new UnknownModeError('preset', opts.preset, STRATEGY_NAMES);
    preset = opts.preset as StrategyName;
  }
  const env: Record<string, string | undefined> = opts.env ? { ...processEnv } : {};
  for (const a of opts.set ?? []) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects NAME=VALUE, got ${JSON.stringify(a)}`, 'set');
    env[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const config = configFromEnv(env, preset ? { preset } : {});
  const verlOverrides = toVerlOverrides(config);
  const exitCode = opts.strict && config.warnings.length > 0 ? 2 : 0;
  if (opts.json) {
    const { warnings, ...rest } = config;
    return { text: `${JSON.stringify({ config: rest, warnings, verlOverrides }, null, 2)}\n`, exitCode, config };
  }
  const pl = config.policyLoss;
  const o = config.origins;
  const rows: [string, unknown, string | undefined][] = [
    ['MODEL_PATH', config.modelPath, o.MODEL_PATH],
    ['TRAIN_4K_FILE', config.data.train4kFile, o.TRAIN_4K_FILE],
    ['TRAIN_16K_FILE', config.data.train16kFile, o.TRAIN_16K_FILE],
    ['CKPTS_DIR', config.ckptsDir, o.CKPTS_DIR],
    ['loss_mode', config.lossMode, o.loss_mode],
  ];
  if (config.lossMode === 'sapo') {
    rows.push(['tau_neg (clip_ratio_low)', pl.tauNeg, o.tau_neg ?? o.clip_ratio_low]);
    rows.push(['tau_pos (clip_ratio_high)', pl.tauPos, o.tau_pos ?? o.clip_ratio_high]);
  } else {
    rows.push(['clip_ratio_low', pl.clipRatioLow, o.clip_ratio_low]);
    rows.push(['clip_ratio_high', pl.clipRatioHigh, o.clip_ratio_high]);
  }
  rows.push(
    ['loss_agg_mode', pl.lossAggMode, o.loss_agg_mode],
    ['max_prompt_length', config.data.maxPromptLength, o.max_prompt_length],
    ['max_response_length', config.data.maxResponseLength, o.max_response_length],
    ['enable_overlong_buffer', config.overlong.enable, o.enable_overlong_buffer],
    ['overlong_buffer_len', config.overlong.overlongBufferLen, o.overlong_buffer_len],
    ['overlong_penalty_factor', config.overlong.overlongPenaltyFactor, o.overlong_penalty_factor],
    ['enable_overlong_prompts_filter', config.data.filterOverlongPrompts, o.enable_overlong_prompts_filter],
    ['truncation', config.data.truncation, o.truncation],
    ['4K file limits (prompt/response)', `${config.data.limits4k.maxPromptLength}/${config.data.limits4k.maxResponseLength}`, o.TRAIN_4K_MAX_PROMPT_LENGTH === 'env' || o.TRAIN_4K_MAX_RESPONSE_LENGTH === 'env' ? 'env' : 'default'],
    ['16K file limits (prompt/response)', `${config.data.limits16k.maxPromptLength}/${config.data.limits16k.maxResponseLength}`, o.TRAIN_16K_MAX_PROMPT_LENGTH === 'env' || o.TRAIN_16K_MAX_RESPONSE_LENGTH === 'env' ? 'env' : 'default'],
  );
  const w = Math.max(...rows.map((r) => r[0].length));
  const vw = Math.max(...rows.map((r) => show(r[1]).length));
  const lines = [`lumirag-rl config — preset ${config.preset}, environment ${opts.env ? 'read' : 'not read (pass --env)'}`, ''];
  for (const [k, v, origin] of rows) lines.push(`  ${k.padEnd(w)}  ${show(v).padEnd(vw)}  ${origin ?? 'default'}`);
  lines.push('');
  if (config.warnings.length === 0) lines.push('warnings: none');
  else {
    lines.push(`warnings (${config.warnings.length}):`);
    for (const wa of config.warnings) lines.push(`  - [${wa.code}] ${wa.message}`);
  }
  lines.push('', 'verl overrides:', ...verlOverrides.map((s) => `  ${s}`));
  return { text: `${lines.join('\n')}\n`, exitCode, config };
}

/** Register `config` on the program. */
export function register(program: Command): void {
  program
    .command('config')
    .description('print the resolved seed config (preset + environment), its warnings and the matching verl overrides')
    .option('--env', 'read the seed variables (MODEL_PATH, TRAIN_4K_FILE, loss_mode, max_response_length, …) from the environment')
    .option('--preset <name>', `start from a seed strategy: ${STRATEGY_NAMES.join(' | ')} (default: from loss_mode, else dapo)`)
    .option('--set <NAME=VALUE>', 'set a variable (repeatable), applied over the environment', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'print JSON { config, warnings, verlOverrides }')
    .option('--strict', 'exit with status 2 when there are warnings')
    .action((opts: ConfigCommandOptions) => {
      const out = runConfigCommand(opts);
      process.stdout.write(out.text);
      if (out.exitCode !== 0) process.exitCode = out.exitCode;
    });
}
