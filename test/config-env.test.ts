import { describe, expect, it } from 'vitest';
import { configFromEnv, toVerlOverrides } from '../src/config/env.js';
import { presets } from '../src/config/presets.js';
import { resolvePolicyLossConfig } from '../src/config/policyLoss.js';
import { runConfigCommand } from '../src/cli/config.js';
import { ConfigError, UnknownModeError } from '../src/errors.js';
import { shapeOverlongReward } from '../src/reward/overlong.js';
import { seedPromptSource } from '../src/sampling/sources.js';

const codes = (c: { warnings: { code: string }[] }) => c.warnings.map((w) => w.code);

const SEED_ENV = {
  MODEL_PATH: '/models/yuanvl-40b',
  TRAIN_4K_FILE: '/data/train_4k.parquet',
  TRAIN_16K_FILE: '/data/train_16k.parquet',
  CKPTS_DIR: '/ckpts/run1',
  max_prompt_length: '1024',
  max_response_length: '3072',
  enable_overlong_buffer: 'True',
  overlong_buffer_len: '512',
  overlong_penalty_factor: '1.0',
  enable_overlong_prompts_filter: 'true',
};

describe('presets (SEED.md table)', () => {
  it('hold the seed settings', () => {
    expect(presets.dapo.env).toEqual({ loss_mode: 'eighty-twenty', clip_ratio_low: 0.2, clip_ratio_high: 0.28, loss_agg_mode: 'token-mean' });
    expect(presets.gspo.env).toEqual({ loss_mode: 'gspo', clip_ratio_low: 0.0003, clip_ratio_high: 0.0004, loss_agg_mode: 'seq-mean-token-mean' });
    expect(presets.sapo.env).toEqual({ loss_mode: 'sapo', clip_ratio_low: 1.05, clip_ratio_high: 1.0, loss_agg_mode: 'token-mean' });
    expect(presets.dapo).toMatchObject({ lossMode: 'eighty-twenty', policyLoss: { clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'token-mean' } });
    expect(presets.gspo.policyLoss).toMatchObject({ clipRatioLow: 0.0003, clipRatioHigh: 0.0004, lossAggMode: 'seq-mean-token-mean' });
    expect(presets.sapo.policyLoss).toMatchObject({ tauNeg: 1.05, tauPos: 1.0, lossAggMode: 'token-mean' });
    for (const p of Object.values(presets)) expect(() => resolvePolicyLossConfig(p.policyLoss)).not.toThrow();
    expect(Object.isFrozen(presets.dapo)).toBe(true);
  });
});

describe('configFromEnv', () => {
  it("reads the seed's variables into one typed config (DAPO by default)", () => {
    const c = configFromEnv(SEED_ENV);
    expect(c.preset).toBe('dapo');
    expect(c.lossMode).toBe('eighty-twenty');
    expect(c.policyLoss).toMatchObject({ clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'token-mean' });
    expect(c.modelPath).toBe('/models/yuanvl-40b');
    expect(c.ckptsDir).toBe('/ckpts/run1');
    expect(c.data).toMatchObject({
      train4kFile: '/data/train_4k.parquet',
      train16kFile: '/data/train_16k.parquet',
      maxPromptLength: 1024,
      maxResponseLength: 3072,
      filterOverlongPrompts: true,
      limits4k: { maxPromptLength: 1024, maxResponseLength: 3072 },
    });
    expect(c.overlong).toEqual({ maxResponseLength: 3072, overlongBufferLen: 512, overlongPenaltyFactor: 1, enable: true });
    expect(c.warnings).toEqual([]);
    expect(c.origins).toMatchObject({ loss_mode: 'preset', max_response_length: 'env', clip_ratio_low: 'preset' });
    // The data part plugs straight into the seed's two-file source (lazy: nothing is read yet).
    expect(typeof seedPromptSource(c.data)[Symbol.asyncIterator]).toBe('function');
    // The overlong part plugs straight into the shaping: L = 3072 → −1.
    expect(shapeOverlongReward(1, 3072, c.overlong).reward).toBe(0);
  });

  it('the GSPO strategy from the environment, and a GSPO + token-mean warning', () => {
    const c = configFromEnv({ ...SEED_ENV, loss_mode: 'gspo', clip_ratio_low: '0.0003', clip_ratio_high: '0.0004', loss_agg_mode: 'seq-mean-token-mean' });
    expect(c.preset).toBe('gspo');
    expect(c.policyLoss).toMatchObject({ clipRatioLow: 0.0003, clipRatioHigh: 0.0004, lossAggMode: 'seq-mean-token-mean' });
    expect(c.warnings).toEqual([]);
    const t = configFromEnv({ ...SEED_ENV, loss_mode: 'gspo', loss_agg_mode: 'token-mean' });
    expect(codes(t)).toEqual(['gspo-agg-mode']);
    expect(t.warnings[0]!.message).toMatch(/seq-mean-token-mean/);
    expect(codes(configFromEnv({ ...SEED_ENV, loss_mode: 'gspo', clip_ratio_high: '0.28' }))).toEqual(['gspo-wide-clip']);
  });

  it('SAPO reads its temperatures from the clip-ratio variables, as the seed does', () => {
    const c = configFromEnv({ ...SEED_ENV, loss_mode: 'sapo', clip_ratio_low: '1.05', clip_ratio_high: '1.00', loss_agg_mode: 'token-mean' });
    expect(c.policyLoss.tauNeg).toBe(1.05);
    expect(c.policyLoss.tauPos).toBe(1.0);
    expect(c.policyLoss.clipRatioLow).toBeUndefined();
    expect(codes(c)).toEqual(['sapo-taus-from-clip-ratios', 'sapo-agg-mode']);
    const own = configFromEnv({ ...SEED_ENV, loss_mode: 'sapo', clip_ratio_low: '2', tau_neg: '1.5', loss_agg_mode: 'seq-mean-token-mean' });
    expect(own.policyLoss.tauNeg).toBe(1.5);
    expect(own.policyLoss.tauPos).toBe(1.0);
    expect(codes(own)).toEqual(['sapo-taus-from-clip-ratios', 'conflicting-variables']);
    expect(() => configFromEnv({ loss_mode: 'sapo', clip_ratio_high: '0' })).toThrow(/tauPos.*clip_ratio_high/);
  });

  it('warns about an overlong buffer longer than the response limit, zero buffers and no-op factors', () => {
    const c = configFromEnv({ ...SEED_ENV, overlong_buffer_len: '4096' });
    expect(codes(c)).toEqual(['overlong-buffer-too-long']);
    expect(() => shapeOverlongReward(1, 10, c.overlong)).toThrow(ConfigError);
    expect(codes(configFromEnv({ ...SEED_ENV, overlong_buffer_len: '0' }))).toEqual(['overlong-buffer-zero']);
    expect(codes(configFromEnv({ ...SEED_ENV, overlong_penalty_factor: '0' }))).toEqual(['overlong-factor-zero']);
    expect(codes(configFromEnv({ ...SEED_ENV, enable_overlong_buffer: 'false', overlong_buffer_len: '0' }))).toEqual([]);
  });

  it('per-file limits for the two files; warnings for missing files and model path', () => {
    const c = configFromEnv({ ...SEED_ENV, TRAIN_4K_MAX_PROMPT_LENGTH: '512', TRAIN_4K_MAX_RESPONSE_LENGTH: '3584', TRAIN_16K_MAX_RESPONSE_LENGTH: '15360' });
    expect(c.data.limits4k).toEqual({ maxPromptLength: 512, maxResponseLength: 3584 });
    expect(c.data.limits16k).toEqual({ maxPromptLength: 1024, maxResponseLength: 15360 });
    expect(codes(configFromEnv({ ...SEED_ENV, max_response_length: '8192', overlong_buffer_len: '1024' }))).toEqual(['train-4k-limits']);
    expect(codes(configFromEnv({}))).toEqual(['no-train-files', 'no-model-path']);
  });

  it('names the variable on bad values; upper-case names work too, conflicts are reported', () => {
    expect(() => configFromEnv({ max_prompt_length: '2k' })).toThrow(/max_prompt_length/);
    expect(() => configFromEnv({ overlong_buffer_len: '-1' })).toThrow(ConfigError);
    expect(() => configFromEnv({ enable_overlong_buffer: 'maybe' })).toThrow(/enable_overlong_buffer must be a boolean/);
    expect(() => configFromEnv({ overlong_penalty_factor: 'abc' })).toThrow(/overlong_penalty_factor/);
    expect(() => configFromEnv({ loss_agg_mode: 'token-sum' })).toThrow(UnknownModeError);
    expect(() => configFromEnv({ truncation: 'top' })).toThrow(UnknownModeError);
    expect(() => configFromEnv({ clip_ratio_low: '-0.1' })).toThrow(/clipRatioLow/);
    expect(configFromEnv({ ...SEED_ENV, MAX_PROMPT_LENGTH: '777' }).data.maxPromptLength).toBe(1024);
    expect(codes(configFromEnv({ ...SEED_ENV, MAX_PROMPT_LENGTH: '777' }))).toEqual(['conflicting-variables']);
    expect(configFromEnv({ ...SEED_ENV, max_prompt_length: undefined, MAX_PROMPT_LENGTH: '777' }).data.maxPromptLength).toBe(777);
  });

  it('an explicit preset is the base; env overrides it with a warning on a loss-mode mismatch', () => {
    const c = configFromEnv(SEED_ENV, { preset: 'gspo' });
    expect(c.lossMode).toBe('gspo');
    expect(c.policyLoss.clipRatioHigh).toBe(0.0004);
    expect(codes(configFromEnv({ ...SEED_ENV, loss_mode: 'vanilla' }, { preset: 'gspo' }))).toContain('preset-loss-mode-mismatch');
    expect(() => configFromEnv({}, { preset: 'ppo' as 'dapo' })).toThrow(UnknownModeError);
    expect(codes(configFromEnv({ ...SEED_ENV, loss_mode: 'my-loss' }))).toEqual(['unknown-loss-mode']);
  });

  it('toVerlOverrides expresses the config as verl keys', () => {
    const o = toVerlOverrides(configFromEnv(SEED_ENV));
    expect(o).toContain('actor_rollout_ref.actor.policy_loss.loss_mode=eighty-twenty');
    expect(o).toContain('actor_rollout_ref.actor.clip_ratio_high=0.28');
    expect(o).toContain("data.train_files=['/data/train_4k.parquet','/data/train_16k.parquet']");
    expect(o).toContain('reward_model.overlong_buffer.len=512');
    expect(o).toContain('data.filter_overlong_prompts=True');
    const s = toVerlOverrides(configFromEnv({ loss_mode: 'sapo' }));
    expect(s).toContain('actor_rollout_ref.actor.tau_neg=1.05');
    expect(s.some((x) => x.includes('clip_ratio'))).toBe(false);
  });
});

describe('lumirag-rl config (command)', () => {
  it('prints the preset, its warnings and the overrides; --json; --strict', () => {
    const out = runConfigCommand({ preset: 'gspo', set: ['loss_agg_mode=token-mean'] }, {});
    expect(out.text).toMatch(/preset gspo, environment not read/);
    expect(out.text).toMatch(/clip_ratio_high\s+0.0004\s+preset/);
    expect(out.text).toMatch(/\[gspo-agg-mode\]/);
    expect(out.exitCode).toBe(0);
    const env = runConfigCommand({ env: true, json: true, strict: true }, { ...SEED_ENV, loss_mode: 'sapo', clip_ratio_low: '1.05', clip_ratio_high: '1.00' });
    const parsed = JSON.parse(env.text) as { config: { lossMode: string; policyLoss: { tauNeg: number } }; warnings: { code: string }[]; verlOverrides: string[] };
    expect(parsed.config.lossMode).toBe('sapo');
    expect(parsed.config.policyLoss.tauNeg).toBe(1.05);
    expect(parsed.warnings.map((w) => w.code)).toContain('sapo-taus-from-clip-ratios');
    expect(env.exitCode).toBe(2);
    // Without --env the environment is ignored.
    expect(runConfigCommand({}, { loss_mode: 'gspo' }).config.lossMode).toBe('eighty-twenty');
    expect(() => runConfigCommand({ preset: 'x' }, {})).toThrow(UnknownModeError);
    expect(() => runConfigCommand({ set: ['oops'] }, {})).toThrow(/NAME=VALUE/);
  });
});
