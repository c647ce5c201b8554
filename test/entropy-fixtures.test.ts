import { describe, expect, it } from 'vitest';
import { computeEntropyLoss, entropyFromLogits, ShapeError, ValueError } from '../src/index.js';
import type { LossAggMode } from '../src/index.js';
import { CPU_TOL, expectArrayClose, expectClose, flat, loadFixture } from './helpers/fixtures.js';

interface EntInput {
  shape: [number, number, number];
  logits: number[][][];
  response_mask: number[][];
}
interface EntCase {
  id: string;
  input_id: string;
  function: 'entropy_from_logits' | 'compute_entropy_loss';
  loss_agg_mode?: LossAggMode;
  expected: { entropy?: number[][]; grad_logits_of_sum?: number[][][]; loss?: number; grad_logits?: number[][][] | null };
}
const fx = loadFixture<{ inputs: Record<string, EntInput>; cases: EntCase[] }>('entropy.json');

describe('entropy.json (CPU float64)', () => {
  it('has 35 cases', () => expect(fx.cases.length).toBe(35));
  for (const c of fx.cases) {
    const inp = fx.inputs[c.input_id] as EntInput;
    it(c.id, () => {
      if (c.function === 'entropy_from_logits') {
        const nested = entropyFromLogits(inp.logits, undefined, { grad: true });
        expectArrayClose(nested.entropy, flat(c.expected.entropy), CPU_TOL, `${c.id} entropy`);
        expectArrayClose(nested.gradLogits as Float64Array, flat(c.expected.grad_logits_of_sum), CPU_TOL, `${c.id} grad`);
        // flat Float64Array input gives the same numbers
        const flatIn = entropyFromLogits(Float64Array.from(flat(inp.logits)), inp.shape);
        expect(Array.from(flatIn.entropy)).toEqual(Array.from(nested.entropy));
        return;
      }
      const got = computeEntropyLoss(inp.logits, inp.response_mask, c.loss_agg_mode);
      expectClose(got.loss, c.expected.loss as number, CPU_TOL, 1, `${c.id} loss`);
      if (c.expected.grad_logits) {
        expectArrayClose(got.gradLogits as Float64Array, flat(c.expected.grad_logits), CPU_TOL, `${c.id} grad_logits`);
      }
    });
  }
});

describe('entropy edge cases', () => {
  it('SPEC §13 reference values: ln 4 and 0.947536', () => {
    const r = entropyFromLogits([[[0, 0, 0, 0], [2, 1, 0, -1]]]);
    expect(r.entropy[0]).toBeCloseTo(Math.log(4), 14);
    expect(r.entropy[1]).toBeCloseTo(0.947537, 6); // SPEC prints 0.947536 (truncated)
  });

  it('extreme logits (±1000, +1e4) stay finite; -Infinity entries count as probability 0', () => {
    const r = entropyFromLogits([[[1000, -1000, 1e4, 0], [-Infinity, 0, 0, -Infinity]]], undefined, { grad: true });
    expect(r.entropy[0]).toBe(0);
    expect(r.entropy[1]).toBeCloseTo(Math.log(2), 15);
    for (const g of r.gradLogits as Float64Array) expect(Number.isFinite(g)).toBe(true);
  });

  it('gradient matches central finite differences', () => {
    const z = [0.3, -1.2, 2.5, 0.7, -0.4];
    const { gradLogits } = entropyFromLogits([[z]], undefined, { grad: true });
    for (let v = 0; v < z.length; v++) {
      const h = 1e-6;
      const up = z.slice(); up[v] = (up[v] as number) + h;
      const dn = z.slice(); dn[v] = (dn[v] as number) - h;
      const fd = ((entropyFromLogits([[up]]).entropy[0] as number) - (entropyFromLogits([[dn]]).entropy[0] as number)) / (2 * h);
      expect((gradLogits as Float64Array)[v]).toBeCloseTo(fd, 8);
    }
  });

  it('temperature divides the logits first; the gradient is w.r.t. the raw logits', () => {
    const z = [1, 2, 3];
    const a = entropyFromLogits([[z]], undefined, { temperature: 2, grad: true });
    const b = entropyFromLogits([[z.map((x) => x / 2)]], undefined, { grad: true });
    expect(a.entropy[0]).toBeCloseTo(b.entropy[0] as number, 15);
    expect((a.gradLogits as Float64Array)[0]).toBeCloseTo(((b.gradLogits as Float64Array)[0] as number) / 2, 15);
  });

  it('typed errors: ragged rows, wrong length, NaN', () => {
    expect(() => entropyFromLogits([[[0, 1], [0]]])).toThrow(ShapeError);
    expect(() => entropyFromLogits(new Float32Array(5), [1, 2, 3])).toThrow(ShapeError);
    expect(() => entropyFromLogits([[[0, Number.NaN]]])).toThrow(ValueError);
  });
});
