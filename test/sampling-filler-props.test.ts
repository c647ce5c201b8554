import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DynamicBatchFiller, type FillerRow } from '../src/sampling/dynamicBatchFiller.js';
import { ExhaustedError } from '../src/errors.js';

interface Row extends FillerRow {
  uid: string;
  acc: number;
  k: number;
  pos?: number;
}

/** A generation batch: `groups` groups of n values from {0, 1, 0.5}, rows shuffled by `perm` keys. */
const genBatch = (n: number) =>
  fc.array(fc.array(fc.constantFrom(0, 1, 0.5), { minLength: n, maxLength: n }), { minLength: 1, maxLength: 6 }).chain((groups) =>
    fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: groups.length * n, maxLength: groups.length * n }).map((keys) => ({ groups, keys })),
  );

describe('DynamicBatchFiller properties (fast-check)', () => {
  it('exact size, whole groups in original row order, only groups with a signal, kept = batch + surplus', () => {
    const seen = { error: 0, partial: 0, resample: 0, full: 0, surplus: 0 };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom<'error' | 'partial' | 'resample'>('error', 'partial', 'resample'),
        fc.integer(),
        (n, T, maxGen, onExhausted, seed) => {
          const batches = fc.sample(genBatch(n), { numRuns: maxGen, seed });
          const f = new DynamicBatchFiller<Row>({ trainBatchSize: T, n, metric: 'acc', maxNumGenBatches: maxGen, onExhausted, seed });
          const keptUids: string[] = [];
          let b = 0;
          try {
            while (!f.isReady) {
              const { groups, keys } = batches[b] as { groups: number[][]; keys: number[] };
              const rows: Row[] = groups.flatMap((vals, g) => vals.map((acc, k) => ({ uid: `b${b}g${g}`, acc, k })));
              const order = rows.map((_, i) => i).sort((x, y) => (keys[x] as number) - (keys[y] as number));
              const report = f.add(order.map((i, pos) => ({ ...(rows[i] as Row), pos })));
              keptUids.push(...(report.kept as string[]));
              for (const g of report.kept) {
                const vals = rows.filter((r) => r.uid === g).map((r) => r.acc);
                expect(n === 1 || new Set(vals).size > 1).toBe(true);
              }
              b++;
            }
          } catch (e) {
            expect(e).toBeInstanceOf(ExhaustedError);
            expect(onExhausted).toBe('error');
            expect(keptUids.length).toBeLessThan(T);
            expect((e as ExhaustedError).numGenBatches).toBe(maxGen);
            seen.error++;
            return;
          }
          if (onExhausted === 'resample' && keptUids.length === 0) {
            expect(() => f.take()).toThrow(ExhaustedError);
            return;
          }
          const t = f.take();
          const expectedGroups = onExhausted === 'partial' ? Math.min(T, keptUids.length) : T;
          expect(t.rows.length).toBe(expectedGroups * n);
          // Whole groups, contiguous, each group's rows in their input order (pos ascending), all n samples present.
          for (let i = 0; i < t.rows.length; i += n) {
            const grp = t.rows.slice(i, i + n);
            expect(new Set(grp.map((r) => r.uid)).size).toBe(1);
            const pos = grp.map((r) => r.pos as number);
            expect(pos).toEqual([...pos].sort((x, y) => x - y));
            expect(grp.map((r) => r.k).sort()).toEqual([...Array(n).keys()]);
          }
          const batchUids = [...new Set(t.rows.map((r) => r.uid))];
          const originals = batchUids.filter((u) => !u.includes('#resample'));
          const surplusUids = [...new Set(t.surplus.map((r) => r.uid))];
          expect([...originals, ...surplusUids]).toEqual(keptUids);
          expect(batchUids.length - originals.length).toBe(t.resampled.length);
          expect(t.metrics['train/num_groups_kept']).toBe(keptUids.length);
          expect(t.metrics['train/num_gen_batches']).toBe(b);
          seen[t.completion]++;
          if (t.surplus.length) seen.surplus++;
        },
      ),
      { numRuns: 300, seed: 20251124 },
    );
    // Every path was exercised.
    for (const [k, v] of Object.entries(seen)) expect(v, k).toBeGreaterThan(5);
  });
});
