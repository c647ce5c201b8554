/**
 * Every case of verl's agg_loss.json (loss and d loss / d loss_mat) with the fixtures' rule, plus the aggregation
 * edge cases of SPEC.md §2 / §13 and its typed errors.
 */
import { describe, expect, it } from 'vitest';
import { aggLoss, type GlobalBatchInfo, type LossAggMode, LumiragError, UnknownModeError } from '../src/index.js';
import { CPU_TOL, expectArrayClose, expectClose, flat, loadFixture } from './helpers/fixtures.js';

interface AggCase {
  id: string;
  input_id: string;
  loss_agg_mode: LossAggMode;
  kwargs: { dp_size?: number; batch_num_tokens?: number; global_batch_size?: number; loss_scale_factor?: number };
  expected: { loss: number; grad_loss_mat: number[][] };
  abs_scale: number;
}

const fx = loadFixture<{ inputs: Record<string, { loss_mat: number[][]; loss_mask: number[][] }>; cases: AggCase[] }>('agg_loss.json');

function gbi(k: AggCase['kwargs']): GlobalBatchInfo | undefined {
  const g: GlobalBatchInfo = {};
  if (k.dp_size !== undefined) g.dpSize = k.dp_size;
  if (k.batch_num_tokens !== undefined) g.batchNumTokens = k.batch_num_tokens;
  if (k.global_batch_size !== undefined) g.globalBatchSize = k.global_batch_size;
  if (k.loss_scale_factor !== undefined) g.lossScaleFactor = k.loss_scale_factor;
  return Object.keys(g).length ? g : undefined;
}

describe('agg_loss.json', () => {
  it('has the 108 documented cases, none expecting an error', () => {
    expect(fx.cases.length).toBe(108);
    expect(fx.cases.every((c) => 'expected' in c)).toBe(true);
  });
  it.each(fx.cases.map((c) => [c.id, c] as const))('%s', (_id, c) => {
    const input = fx.inputs[c.input_id]!;
    const res = aggLoss(input.loss_mat, input.loss_mask, c.loss_agg_mode, gbi(c.kwargs));
    expectClose(res.loss, c.expected.loss, CPU_TOL, c.abs_scale, 'loss');
    expectArrayClose(res.grad, flat(c.expected.grad_loss_mat), CPU_TOL, 'grad_loss_mat');
  });
});

describe('aggLoss: SPEC.md §13 worked example and edge cases', () => {
  const l = [[1, 2, 3, 4], [5, 6, 0, 0], [7, 8, 9, 0]];
  const m = [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]];
  it.each([
    ['token-mean', 3.5, 3.5],
    ['seq-mean-token-sum', 10.5, 10.5],
    ['seq-mean-token-mean', 4.0, 4.0],
    ['seq-mean-token-sum-norm', 5.25, 2.625],
  ] as const)('%s: %f local, %f with dp=2, N_tok=12, G=4, K=8', (mode, local, global) => {
    expect(aggLoss(l, m, mode).loss).toBeCloseTo(local, 6);
    expect(aggLoss(l, m, mode, { dpSize: 2, batchNumTokens: 12, globalBatchSize: 4, lossScaleFactor: 8 }).loss).toBeCloseTo(global, 6);
  });
  it('the gradient is m_it times the row coefficient', () => {
    const g = aggLoss(l, m, 'seq-mean-token-mean').grad;
    expect(g[0]).toBe(1 / (2 * (4 + 1e-8))); // the per-sequence 1e-8 of seq-mean-token-mean
    expect(g[4]).toBe(1 / (2 * (2 + 1e-8)));
    expect(g[6]).toBe(0);
    expect([...g.slice(8)]).toEqual([0, 0, 0, 0]);
  });
  it.each(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'] as const)(
    'all-masked %s gives loss 0 and a zero gradient (verl: NaN for all but sum-norm)',
    (mode) => {
      const r = aggLoss([[1, 2], [3, 4]], [[0, 0], [0, 0]], mode);
      expect(r.loss).toBe(0);
      expect([...r.grad]).toEqual([0, 0, 0, 0]);
    },
  );
  it('ignores any value at masked positions, NaN included', () => {
    const a = aggLoss([[1, Number.NaN], [3, Infinity]], [[1, 0], [1, 0]], 'seq-mean-token-sum');
    expect(a.loss).toBe(2);
  });
  it('accepts flat inputs with a shape', () => {
    const r = aggLoss(Float64Array.from([1, 2, 3, 4]), [1, 1, 1, 0], 'token-mean', undefined, [2, 2]);
    expect(r.loss).toBeCloseTo(2, 15);
  });
  it('rejects an unknown mode, listing the valid ones', () => {
    let err: unknown;
    try {
      aggLoss([[1]], [[1]], 'token-sum' as LossAggMode);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownModeError);
    expect((err as LumiragError).code).toBe('E_UNKNOWN_MODE');
    expect((err as Error).message).toContain('seq-mean-token-sum-norm');
  });
  it('rejects a shape mismatch, a non-0/1 mask and a non-finite value at a valid position', () => {
    expect(() => aggLoss([[1, 2]], [[1, 1], [1, 1]], 'token-mean')).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => aggLoss([[1, 2]], [[1, 0.5]], 'token-mean')).toThrow(expect.objectContaining({ code: 'E_VALUE', field: 'mask' }));
    expect(() => aggLoss([[1, Number.NaN]], [[1, 1]], 'token-mean')).toThrow(expect.objectContaining({ code: 'E_VALUE', field: 'lossMat' }));
  });
});
