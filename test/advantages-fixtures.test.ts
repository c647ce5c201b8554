import { describe, expect, it } from 'vitest';
import { computeAdvantage, EstimatorError } from '../src/index.js';
import type { AdvantageConfig, AdvantageInputs } from '../src/index.js';
import { CPU_TOL, expectArrayClose, flat, loadFixture } from './helpers/fixtures.js';

interface AdvInput {
  shape: [number, number];
  token_level_rewards: number[][];
  response_mask: number[][];
  index: string[];
  values: number[][];
  reward_baselines: number[];
  old_log_probs: number[][];
  sum_pi_squared: number[][];
  rollout_is_weights: number[][];
}
interface AdvCase {
  id: string;
  input_id: string;
  estimator: string;
  kwargs: Record<string, number | boolean>;
  tags?: string[];
  expected?: { advantages: number[][]; returns: number[][] };
  expect_error?: string;
}
interface AdvFile {
  inputs: Record<string, AdvInput>;
  cases: AdvCase[];
}

const fx = loadFixture<AdvFile>('advantages.json');

/** Map a fixture case's kwargs (verl names, `config.X` for AlgoConfig fields) to our options. */
export function caseConfig(kwargs: Record<string, number | boolean>): { config: AdvantageConfig; useIs: boolean } {
  const config: AdvantageConfig = {};
  let useIs = false;
  for (const [rawKey, v] of Object.entries(kwargs)) {
    const key = rawKey.replace(/^config\./, '');
    switch (key) {
      case 'epsilon': config.epsilon = v as number; break;
      case 'norm_adv_by_std_in_grpo': config.normAdvByStdInGrpo = v as boolean; break;
      case 'gamma': config.gamma = v as number; break;
      case 'lam': config.lam = v as number; break;
      case 'f_norm': config.fNorm = v as number; break;
      case 'handle_zero_tail': config.handleZeroTail = v as boolean; break;
      case 'use_rollout_is_weights': useIs = v as boolean; break;
      default: throw new Error(`unmapped kwarg ${rawKey}`);
    }
  }
  return { config, useIs };
}

export function caseInputs(inp: AdvInput, useIs: boolean): AdvantageInputs {
  return {
    tokenLevelRewards: inp.token_level_rewards,
    responseMask: inp.response_mask,
    index: inp.index,
    values: inp.values,
    rewardBaselines: inp.reward_baselines,
    oldLogProbs: inp.old_log_probs,
    sumPiSquared: inp.sum_pi_squared,
    rolloutIsWeights: useIs ? inp.rollout_is_weights : null,
  };
}

describe('advantages.json (CPU float64)', () => {
  it('covers every estimator verl registers', () => {
    const names = new Set(fx.cases.map((c) => c.estimator));
    expect([...names].sort()).toEqual(
      [
        'gae', 'gpg', 'grpo', 'grpo_passk', 'grpo_vectorized', 'opo', 'optimal_token_baseline', 'reinforce_plus_plus',
        'reinforce_plus_plus_baseline', 'remax', 'rloo', 'rloo_vectorized', 'tir_optimal_token_baseline',
      ].sort(),
    );
    expect(fx.cases.length).toBe(190);
  });

  for (const c of fx.cases) {
    it(c.id, () => {
      const inp = fx.inputs[c.input_id] as AdvInput;
      const { config, useIs } = caseConfig(c.kwargs);
      const run = () => computeAdvantage(c.estimator, caseInputs(inp, useIs), config);
      if (c.expect_error) {
        expect(c.expect_error.startsWith('ValueError')).toBe(true);
        expect(run).toThrow(EstimatorError);
        return;
      }
      const exp = c.expected as { advantages: number[][]; returns: number[][] };
      const got = run();
      expectArrayClose(got.advantages, flat(exp.advantages), CPU_TOL, `${c.id} advantages`);
      expectArrayClose(got.returns, flat(exp.returns), CPU_TOL, `${c.id} returns`);
    });
  }
});
