/**
 * Every case of verl's policy_loss.json on the float64 CPU reference: loss, every metric, every gradient entry,
 * with the fixtures' rule (rtol 1e-9, atol 1e-12·abs_scale). No case is skipped.
 */
import { describe, expect, it } from 'vitest';
import { policyLoss } from '../src/index.js';
import { CPU_TOL, expectArrayClose, expectClose, fixtureBatch, fixtureConfig, flat, loadFixture, type PolicyCase } from './helpers/fixtures.js';

const fx = loadFixture<{ inputs: Record<string, Record<string, unknown>>; cases: PolicyCase[] }>('policy_loss.json');

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
