import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, entropyTopMask, ValueError } from '../src/index.js';
import { topEntropyMask } from '../src/gpu/selection.js';
import { selectTopEntropy } from '../src/losses/eightyTwenty.js';

describe('entropyTopMask (80/20 selection)', () => {
  it('k = max(1, ⌈ρ·N⌉) over valid tokens only; ties go to the lowest flat index', () => {
    const h = [[0.5, 0.9, 0.9, 7], [0.9, 0.1, 0.2, 0.3]];
    const m = [[1, 1, 1, 0], [1, 1, 1, 1]];
    // N = 7, ρ = 0.2 → k = 2: the three 0.9s tie, the two lowest indices win; the masked 7 never counts
    expect(Array.from(entropyTopMask(h, m, 0.2))).toEqual([0, 1, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(entropyTopMask(h, m, 0.3))).toEqual([0, 1, 1, 0, 1, 0, 0, 0]);
    expect(Array.from(entropyTopMask(h, m, 0))).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(entropyTopMask(h, m, 1))).toEqual([1, 1, 1, 0, 1, 1, 1, 1]);
  });

  it('ρ·N is ceiled as a real number: 0.2·15 = 3.0000000000000004 selects 3, 0.2·16 selects 4', () => {
    const h = [Array.from({ length: 16 }, (_, t) => t)];
    const m15 = [Array.from({ length: 16 }, (_, t) => (t < 15 ? 1 : 0))];
    const m16 = [Array.from({ length: 16 }, () => 1)];
    expect(entropyTopMask(h, m15, 0.2).reduce((a, b) => a + b, 0)).toBe(3);
    expect(entropyTopMask(h, m16, 0.2).reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('no valid token selects nothing; flat input with a shape', () => {
    expect(Array.from(entropyTopMask(new Float64Array(4), new Float64Array(4), 0.2, [2, 2]))).toEqual([0, 0, 0, 0]);
  });

  it('typed errors: ratio outside [0, 1], NaN entropy at a valid position', () => {
    expect(() => entropyTopMask([[1]], [[1]], 1.5)).toThrow(ConfigError);
    expect(() => entropyTopMask([[Number.NaN]], [[1]], 0.2)).toThrow(ValueError);
  });

  it('the same rule as the eighty-twenty loss (CPU and the WebGPU engine\'s host selection), and a true top-k', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 9 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.constantFrom(0, 0.25, 0.5, 1, 2, 3), { minLength: 54, maxLength: 54 }),
        fc.array(fc.boolean(), { minLength: 54, maxLength: 54 }),
        (B, T, ratio, hs, ms) => {
          const n = B * T;
          const h = Float64Array.from(hs.slice(0, n));
          const m = Float64Array.from(ms.slice(0, n), (b) => (b ? 1 : 0));
          const top = entropyTopMask(h, m, ratio, [B, T]);
          expect(Array.from(top)).toEqual(Array.from(selectTopEntropy(h, m, ratio)));
          expect(Array.from(top)).toEqual(Array.from(topEntropyMask(h, m, n, ratio)));
          let minSel = Infinity;
          let maxUnsel = -Infinity;
          for (let k = 0; k < n; k++) {
            if (top[k] === 1) {
              expect(m[k]).toBe(1);
              minSel = Math.min(minSel, h[k] as number);
            } else if (m[k] === 1) maxUnsel = Math.max(maxUnsel, h[k] as number);
          }
          expect(minSel >= maxUnsel || minSel === Infinity).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
