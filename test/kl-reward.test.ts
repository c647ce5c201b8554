import { describe, expect, it } from 'vitest';
import { AdaptiveKLController, applyKlPenalty, createKlController, ConfigError, FixedKLController, ShapeError } from '../src/index.js';

const inputs = {
  tokenLevelScores: [[0, 0, 1], [0, 2, 0]],
  oldLogProbs: [[-1, -2, -0.5], [-1, -1, 9]],
  refLogProbs: [[-1.5, -2, -1], [-0.5, -1, 0]],
  responseMask: [[1, 1, 1], [1, 1, 0]],
};

describe('applyKlPenalty (KL in the reward)', () => {
  it('rewards = scores − β·kl at valid positions; current_kl = mean over rows of the masked row mean', () => {
    const r = applyKlPenalty(inputs, new FixedKLController(0.1), 'kl');
    expect(Array.from(r.tokenLevelRewards)).toEqual([0 - 0.1 * 0.5, 0, 1 - 0.1 * 0.5, 0 + 0.1 * 0.5, 2, 0]);
    expect(r.currentKl).toBe((1 / (3 + 1e-8) + -0.5 / (2 + 1e-8)) / 2);
    expect(r.beta).toBe(0.1);
    expect(r.metrics).toEqual({ 'actor/reward_kl_penalty': r.currentKl, 'actor/reward_kl_penalty_coeff': 0.1 });
  });

  it('updates an adaptive controller with n_steps = B, after applying the old β', () => {
    const ctl = new AdaptiveKLController(0.2, 0.01, 100);
    const r = applyKlPenalty(inputs, ctl, 'low_var_kl');
    expect(r.beta).toBe(0.2);
    const e = Math.min(Math.max(r.currentKl / 0.01 - 1, -0.2), 0.2);
    expect(ctl.value).toBe(0.2 * (1 + (e * 2) / 100));
  });

  it('createKlController: verl defaults and typed errors', () => {
    expect(createKlController().value).toBe(0.001);
    const a = createKlController({ type: 'adaptive', klCoef: 0.05 }) as AdaptiveKLController;
    expect([a.value, a.target, a.horizon]).toEqual([0.05, 0.1, 10000]);
    expect(() => createKlController({ type: 'adaptive', horizon: 0 })).toThrow(ConfigError);
    expect(() => applyKlPenalty({ ...inputs, refLogProbs: [[0, 0], [0, 0]] }, new FixedKLController(0.1))).toThrow(ShapeError);
  });
});
