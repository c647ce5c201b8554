import { describe, expect, it } from 'vitest';
import {
  type OverlongConfig,
  overlongPenalty,
  overlongRewardTensor,
  rewardColumn,
  shapeOverlongReward,
} from '../src/reward/overlong.js';
import { ConfigError, ValueError } from '../src/errors.js';
import { loadFixture } from './helpers/fixtures.js';

interface OverlongCase {
  id: string;
  max_resp_len: number;
  overlong_buffer_len: number;
  overlong_penalty_factor: number;
  expected_len: number;
  valid_response_length: number;
  score: number;
  expected: { overlong_reward: number; reward: number; overlong: boolean; reward_position: number };
  float64_formula: { overlong_reward: number; reward: number };
  verl_overlong_reward_type: 'int' | 'float32';
}

const file = loadFixture<{ cases: OverlongCase[] }>('overlong.json');
const cfgOf = (c: OverlongCase): OverlongConfig => ({
  maxResponseLength: c.max_resp_len,
  overlongBufferLen: c.overlong_buffer_len,
  overlongPenaltyFactor: c.overlong_penalty_factor,
  enable: true,
});

describe('overlong.json (verl DAPO reward manager)', () => {
  it('has the 108 cases the README lists', () => {
    expect(file.cases.length).toBe(108);
  });

  it('every case: reward, overlong_reward, overlong, reward_position bit-exact', () => {
    let n = 0;
    for (const c of file.cases) {
      const got = shapeOverlongReward(c.score, c.valid_response_length, cfgOf(c));
      const ctx = c.id;
      expect(got.reward, ctx).toBe(c.expected.reward);
      expect(got.overlongReward, ctx).toBe(c.expected.overlong_reward);
      expect(got.overlong, ctx).toBe(c.expected.overlong);
      expect(got.rewardPosition, ctx).toBe(c.expected.reward_position);
      expect(overlongPenalty(c.valid_response_length, cfgOf(c)), ctx).toBe(c.expected.overlong_reward);
      // Also the plain float64 formula.
      const g64 = shapeOverlongReward(c.score, c.valid_response_length, cfgOf(c), { precision: 'float64' });
      expect(g64.reward, ctx).toBe(c.float64_formula.reward);
      expect(g64.overlongReward, ctx).toBe(c.float64_formula.overlong_reward);
      n++;
    }
    expect(n).toBe(108);
  });
});

describe('overlong shaping: edge cases', () => {
  const cfg: OverlongConfig = { maxResponseLength: 20, overlongBufferLen: 6, overlongPenaltyFactor: 1, enable: true };

  it('linear from 0 at expected length to -factor at the limit, +0 (not -0) exactly at the expected length', () => {
    expect(Object.is(overlongPenalty(14, cfg), 0)).toBe(true);
    expect(overlongPenalty(13, cfg)).toBe(0);
    expect(overlongPenalty(20, cfg)).toBe(-1);
    expect(overlongPenalty(17, cfg)).toBe(-0.5);
    // 1/6 is not dyadic: float32 arithmetic as in verl, float64 on request.
    expect(overlongPenalty(15, cfg)).toBe(Math.fround(-1 / 6));
    expect(overlongPenalty(15, cfg, { precision: 'float64' })).toBe(-1 / 6);
    // No floor beyond the limit (verl's formula).
    expect(overlongPenalty(26, cfg)).toBe(-2);
  });

  it('a non-dyadic score is rounded to float32 as verl stores it', () => {
    expect(shapeOverlongReward(0.7, 3, cfg).reward).toBe(Math.fround(0.7));
    expect(shapeOverlongReward(0.7, 15, cfg).reward).toBe(Math.fround(Math.fround(0.7) + Math.fround(-1 / 6)));
    expect(shapeOverlongReward(0.7, 15, cfg, { precision: 'float64' }).reward).toBe(0.7 - 1 / 6);
  });

  it('disabled: the reward is the score and no penalty', () => {
    const off = { ...cfg, enable: false, overlongBufferLen: 0 };
    expect(shapeOverlongReward(1, 20, off)).toEqual({ reward: 1, overlongReward: 0, overlong: false, rewardPosition: 19 });
  });

  it('empty response: position -1, which is the last padded column', () => {
    const r = shapeOverlongReward(1, 0, cfg);
    expect(r.rewardPosition).toBe(-1);
    expect(rewardColumn(0, 20)).toBe(19);
    expect(rewardColumn(5, 20)).toBe(4);
    const t = overlongRewardTensor([{ score: 1, validResponseLength: 0 }, { score: -1, validResponseLength: 17 }], 20, cfg);
    expect(t.shape).toEqual([2, 20]);
    expect(t.rewardTensor[19]).toBe(1);
    expect(t.rewardTensor[20 + 16]).toBe(-1.5);
    expect(t.rewardTensor.reduce((a, b) => a + Math.abs(b), 0)).toBe(2.5);
  });

  it('validates the config and lengths', () => {
    expect(() => overlongPenalty(1, { ...cfg, overlongBufferLen: 21 })).toThrow(ConfigError);
    expect(() => overlongPenalty(1, { ...cfg, overlongBufferLen: 0 })).toThrow(/> 0/);
    expect(() => overlongPenalty(1, { ...cfg, overlongBufferLen: 1.5 })).toThrow(/overlongBufferLen/);
    expect(() => overlongPenalty(1, { ...cfg, maxResponseLength: 0 })).toThrow(/maxResponseLength/);
    expect(() => overlongPenalty(-1, cfg)).toThrow(ValueError);
    expect(() => overlongPenalty(2.5, cfg)).toThrow(/validResponseLength/);
    expect(() => shapeOverlongReward(Number.NaN, 2, cfg)).toThrow(/score/);
  });
});
