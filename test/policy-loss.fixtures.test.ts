/**
 * Every case of verl's policy_loss.json on the float64 CPU reference: loss, every metric, every gradient entry,
 * with the fixtures' rule (rtol 1e-9, atol 1e-12·abs_scale). No case is skipped.
 */
import { describe, expect, it } from 'vitest';
import { fromVerlConfig, policyLoss, type PolicyLossBatch, type PolicyLossConfig } from '../src/index.js';
import { CPU_TOL, expectArrayClose, expectClose, flat, loadFixture } from './helpers/fixtures.js';

interface PolicyCase {
  id: string;
  input_id: string;
  loss_mode: string;
  loss_agg_mode: string;
  loss_agg_mode_effective?: string;
  scenario: string;
  config: Record<string, unknown>;
  expected: { loss: number; metrics: Record<string, number>; grad_log_prob: number[][] };
  abs_scale: number;
}

const fx = loadFixture<{ inputs: Record<string, Record<string, unknown>>; cases: PolicyCase[] }>('policy_loss.json');

/** The batch of a fixture input record, as a user would pass it (nested arrays). */
export function fixtureBatch(input: Record<string, unknown>): PolicyLossBatch {
  return {
    oldLogProbs: input.old_log_prob as number[][],
    logProbs: input.log_prob as number[][],
    advantages: input.advantages as number[][],
    responseMask: input.response_mask as number[][],
    rolloutIsWeights: (input.rollout_is_weights as number[][] | null) ?? null,
  };
}

/** The config of a fixture case; gspo/sapo/geo_mean keep their own aggregation, as verl does. */
export function fixtureConfig(c: PolicyCase): PolicyLossConfig {
  const { lossMode: _m, ignoredKeys, ...config } = fromVerlConfig(c.config);
  expect(ignoredKeys).toEqual([]);
  if (c.loss_agg_mode_effective === undefined) config.lossAggMode = c.loss_agg_mode as PolicyLossConfig['lossAggMode'];
  return config;
}

const byMode = new Map<string, PolicyCase[]>();
for (const c of fx.cases) byMode.set(c.loss_mode, [...(byMode.get(c.loss_mode) ?? []), c]);

describe.each([...byMode.keys()])('policy_loss.json: %s', (mode) => {
  it.each(byMode.get(mode)!.map((c) => [c.id, c] as const))('%s', (_id, c) => {
    const res = policyLoss(c.loss_mode, fixtureBatch(fx.inputs[c.input_id]!), fixtureConfig(c));
    expectClose(res.loss, c.expected.loss, CPU_TOL, c.abs_scale, 'loss');
    expect(Object.keys(res.metrics).sort()).toEqual(Object.keys(c.expected.metrics).sort());
    for (const [k, v] of Object.entries(c.expected.metrics)) expectClose(res.metrics[k]!, v, CPU_TOL, 1, k);
    expectArrayClose(res.grad, flat(c.expected.grad_log_prob), CPU_TOL, 'grad');
  });
});
