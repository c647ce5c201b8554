import { describe, expect, it } from 'vitest';
import { DynamicBatchFiller, type FillerRow, groupDropReason } from '../src/sampling/dynamicBatchFiller.js';
import { fillBatch, type FillProgressEvent } from '../src/sampling/fillBatch.js';
import { ExhaustedError, ShapeError, ValueError } from '../src/errors.js';

interface Row extends FillerRow {
  uid: string;
  acc: number;
  k: number;
}

/** A generation batch: one group per entry of `accs` (each an array of n metric values), uids `${tag}-${g}`. */
function batch(tag: string, accs: number[][], interleave = false): Row[] {
  const groups = accs.map((vals, g) => vals.map((acc, k) => ({ uid: `${tag}-${g}`, acc, k })));
  if (!interleave) return groups.flat();
  const out: Row[] = [];
  const n = Math.max(...accs.map((a) => a.length));
  for (let k = 0; k < n; k++) for (const grp of groups) if (grp[k]) out.push(grp[k] as Row);
  return out;
}

function checkWholeGroups(rows: Row[], n: number): void {
  // Each uid's rows are contiguous and there are exactly n of them.
  const seen = new Set<string>();
  for (let i = 0; i < rows.length; i += n) {
    const uid = rows[i]!.uid;
    expect(seen.has(uid)).toBe(false);
    seen.add(uid);
    for (let k = 0; k < n; k++) expect(rows[i + k]!.uid).toBe(uid);
  }
}

describe('groupDropReason (verl keep rule)', () => {
  it('keeps groups with differing values and groups of one, drops all-equal and non-finite', () => {
    expect(groupDropReason([1, 0, 1])).toBeNull();
    expect(groupDropReason([1])).toBeNull();
    expect(groupDropReason([Number.NaN])).toBeNull(); // group of one is always kept
    expect(groupDropReason([1, 1, 1])).toEqual({ reason: 'all-equal', value: 1 });
    expect(groupDropReason([0.5, 0.5])).toEqual({ reason: 'all-equal', value: 0.5 });
    // Exact float64: values one ulp apart are "not all equal" (a float32 std would call them equal).
    expect(groupDropReason([1, 1 + Number.EPSILON])).toBeNull();
    expect(groupDropReason([1, Number.NaN])).toEqual({ reason: 'non-finite', value: Number.NaN });
    expect(groupDropReason([Infinity, Infinity])).toEqual({ reason: 'non-finite', value: Infinity });
  });
});

describe('DynamicBatchFiller', () => {
  it('fills exactly trainBatchSize·n rows across generation batches, dropping all-equal groups, returning surplus', () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 3, n: 2, metric: 'acc', maxNumGenBatches: 5 });
    const r1 = f.add(batch('a', [[1, 1], [0, 1], [0, 0]]));
    expect(r1).toMatchObject({ genBatch: 1, rows: 6, groupsSeen: 3, groupsKept: 1, groupsDropped: 2, kept: ['a-1'], numPromptInBatch: 1, isFull: false, exhausted: false });
    expect(r1.dropped).toEqual([
      { uid: 'a-0', reason: 'all-equal', size: 2, value: 1 },
      { uid: 'a-2', reason: 'all-equal', size: 2, value: 0 },
    ]);
    expect(f.isFull).toBe(false);
    expect(() => f.take()).toThrow(ValueError);
    const r2 = f.add(batch('b', [[1, 0], [0, 1], [1, 0]], true));
    expect(r2.isFull).toBe(true);
    expect(r2.numPromptInBatch).toBe(4);
    expect(() => f.add(batch('c', [[1, 0]]))).toThrow(/full/);
    const t = f.take();
    expect(t.rows.length).toBe(6);
    checkWholeGroups(t.rows, 2);
    expect(t.rows.map((r) => r.uid)).toEqual(['a-1', 'a-1', 'b-0', 'b-0', 'b-1', 'b-1']);
    // Interleaved input: each group's rows keep their original order.
    expect(t.rows.filter((r) => r.uid === 'b-0').map((r) => r.k)).toEqual([0, 1]);
    expect(t.surplus.map((r) => r.uid)).toEqual(['b-2', 'b-2']);
    expect(t.completion).toBe('full');
    expect(t.metrics).toEqual({
      'train/num_gen_batches': 2,
      'train/num_groups_seen': 6,
      'train/num_groups_kept': 4,
      'train/num_groups_dropped': 2,
      'train/kept_group_fraction': 4 / 6,
      'train/num_surplus_groups': 1,
      'train/num_resampled_groups': 0,
      'train/num_batch_groups': 3,
      'train/batch_complete': 1,
    });
    // Reset after take: the next step starts at generation batch 1.
    expect(f.numPromptInBatch).toBe(0);
    expect(f.add(batch('d', [[0, 1]])).genBatch).toBe(1);
  });

  it('keeps groups of one (n = 1) whatever their value', () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 4, n: 1, metric: 'acc' });
    const r = f.add(batch('s', [[1], [1], [0], [1], [1]]));
    expect(r.groupsKept).toBe(5);
    const t = f.take();
    expect(t.rows.length).toBe(4);
    expect(t.surplus.length).toBe(1);
  });

  it('boolean metric values and the enable=false switch', () => {
    const f = new DynamicBatchFiller({ trainBatchSize: 1, n: 2, metric: 'ok' });
    expect(f.add([{ uid: 1, ok: true }, { uid: 1, ok: true }, { uid: 2, ok: true }, { uid: 2, ok: false }]).kept).toEqual([2]);
    const off = new DynamicBatchFiller({ trainBatchSize: 2, n: 2, metric: 'ok', enable: false });
    expect(off.add([{ uid: 1, ok: 1 }, { uid: 1, ok: 1 }, { uid: 2, ok: 0 }, { uid: 2, ok: 0 }]).groupsKept).toBe(2);
  });

  it("onExhausted 'error': a typed error with the counts on the max-th batch, as verl", () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 2, n: 2, metric: 'acc', maxNumGenBatches: 3 });
    f.add(batch('a', [[1, 1], [0, 1]]));
    f.add(batch('b', [[1, 1], [0, 0]]));
    let err: unknown;
    try {
      f.add(batch('c', [[0, 0], [1, 1]]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ExhaustedError);
    const e = err as ExhaustedError;
    expect(e.code).toBe('E_EXHAUSTED');
    expect([e.numGenBatches, e.maxNumGenBatches, e.numPromptInBatch, e.trainBatchSize, e.numGroupsSeen]).toEqual([3, 3, 1, 2, 6]);
    expect(e.message).toMatch(/Generated too many/);
    expect(() => f.take()).toThrow(/reset/);
    f.reset();
    expect(f.add(batch('d', [[0, 1], [1, 0]])).isFull).toBe(true);
  });

  it('a batch that completes on the max-th generation batch does not raise', () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 2, n: 2, metric: 'acc', maxNumGenBatches: 2 });
    f.add(batch('a', [[1, 1], [0, 1]]));
    expect(f.add(batch('b', [[0, 1], [0, 0]])).isFull).toBe(true);
    expect(f.take().rows.length).toBe(4);
  });

  it("onExhausted 'partial': trains on what was kept", () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 4, n: 2, metric: 'acc', maxNumGenBatches: 2, onExhausted: 'partial' });
    f.add(batch('a', [[1, 1], [0, 1]]));
    const r = f.add(batch('b', [[1, 0], [0, 0]]));
    expect(r.exhausted).toBe(true);
    expect(f.isReady).toBe(true);
    expect(() => f.add(batch('c', [[1, 0]]))).toThrow(/exhausted/);
    const t = f.take();
    expect(t.completion).toBe('partial');
    expect(t.rows.map((x) => x.uid)).toEqual(['a-1', 'a-1', 'b-0', 'b-0']);
    expect(t.metrics['train/batch_complete']).toBe(0);
    expect(t.metrics['train/num_batch_groups']).toBe(2);
  });

  it("onExhausted 'resample': exact size, resampled copies reported with fresh uids, deterministic per seed", () => {
    const run = (seed: number) => {
      const f = new DynamicBatchFiller<Row>({ trainBatchSize: 7, n: 3, metric: 'acc', maxNumGenBatches: 2, onExhausted: 'resample', seed });
      f.add(batch('a', [[1, 1, 1], [0, 1, 0], [1, 0, 0]]));
      f.add(batch('b', [[0, 0, 0], [0, 0, 1]]));
      return f.take();
    };
    const t = run(42);
    expect(t.completion).toBe('resample');
    expect(t.rows.length).toBe(21);
    checkWholeGroups(t.rows, 3);
    expect(t.resampled.length).toBe(4);
    expect(t.metrics['train/num_resampled_groups']).toBe(4);
    // 3 kept groups, 4 copies: a seeded shuffle cycled, so every kept group is copied at least once.
    const from = t.resampled.map((r) => r.from);
    expect(new Set(from)).toEqual(new Set(['a-1', 'a-2', 'b-1']));
    for (const r of t.resampled) {
      expect(r.uid).toMatch(/^(a-1|a-2|b-1)#resample[12]$/);
      const copy = t.rows.filter((x) => x.uid === r.uid);
      const orig = t.rows.filter((x) => x.uid === r.from);
      expect(copy.map((x) => [x.acc, x.k])).toEqual(orig.map((x) => [x.acc, x.k]));
    }
    expect(run(42)).toEqual(t);
    const others = [1, 2, 3, 4, 5].map((s) => JSON.stringify(run(s).resampled));
    expect(others.some((o) => o !== JSON.stringify(t.resampled))).toBe(true);
  });

  it("'resample' with nothing kept raises ExhaustedError", () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 2, n: 2, metric: 'acc', maxNumGenBatches: 1, onExhausted: 'resample' });
    f.add(batch('a', [[1, 1]]));
    expect(() => f.take()).toThrow(ExhaustedError);
  });

  it('validates rows: whole groups, unique uids, a numeric metric', () => {
    const f = new DynamicBatchFiller<Row>({ trainBatchSize: 2, n: 2, metric: 'acc' });
    expect(() => f.add(batch('a', [[1, 0, 1]]))).toThrow(ShapeError);
    expect(() => f.add([{ uid: 'x', k: 0 } as unknown as Row])).toThrow(/acc/);
    f.add(batch('a', [[1, 0]]));
    expect(() => f.add(batch('a', [[1, 0]]))).toThrow(/already/);
    expect(() => new DynamicBatchFiller({ trainBatchSize: 0, n: 2 })).toThrow(/trainBatchSize/);
    expect(() => new DynamicBatchFiller({ trainBatchSize: 1, n: 2, onExhausted: 'x' as 'error' })).toThrow(/onExhausted/);
  });
});

describe('fillBatch (async driver)', () => {
  // Prompt p is "solved" by response r iff (p + r) % p.mod === 0 … a deterministic toy.
  const prompts = Array.from({ length: 40 }, (_, i) => ({ id: i, hard: i % 3 === 0 }));
  type P = (typeof prompts)[number];

  it('generates, scores, filters and completes the batch, with progress events and overlong shaping', async () => {
    const events: FillProgressEvent[] = [];
    const res = await fillBatch<P, string>({
      source: prompts,
      trainBatchSize: 5,
      n: 4,
      genBatchSize: 4,
      metric: 'acc',
      maxNumGenBatches: 10,
      generate: async (ps, ctx) => ps.map((p) => Array.from({ length: ctx.n }, (_, k) => `${p.id}:${k}`.padEnd(k + 3, '.'))),
      score: async ({ prompt, sampleIndex }) => (prompt.hard ? 0 : { score: sampleIndex % 2 ? 1 : -1, acc: sampleIndex % 2 === 1, pred: 'x' }),
      overlong: { config: { maxResponseLength: 8, overlongBufferLen: 4, overlongPenaltyFactor: 1, enable: true }, responseLength: (r) => r.length },
      onProgress: (e) => events.push(e),
    });
    expect(res.rows.length).toBe(20);
    expect(res.completion).toBe('full');
    // Hard prompts (all score 0) are dropped: ids 0, 3, 6 → kept are 1,2,4,5,7 → 5 groups after 2 gen batches.
    expect(res.metrics['train/num_gen_batches']).toBe(2);
    expect(res.metrics['train/num_groups_dropped']).toBe(3);
    expect(res.reports.length).toBe(2);
    expect(new Set(res.rows.map((r) => r.prompt.id))).toEqual(new Set([1, 2, 4, 5, 7]));
    const row = res.rows.find((r) => r.prompt.id === 1 && r.sampleIndex === 3)!;
    expect(row.response).toBe('1:3...');
    // L = 6 with expected length 4 and buffer 4: penalty −0.5 on the score 1.
    expect(row).toMatchObject({ score: 1, acc: true, pred: 'x', response_length: 6, overlong: true, overlong_reward: -0.5, seq_reward: 0.5 });
    expect(res.rows.find((r) => r.prompt.id === 1 && r.sampleIndex === 0)).toMatchObject({ score: -1, response_length: 3, overlong: false, seq_reward: -1 });
    expect(events.map((e) => e.type)).toEqual(['generate', 'genBatch', 'generate', 'genBatch', 'done']);
    expect(res.surplus.length).toBe(0); // 1, 2 then 4, 5, 7: exactly five groups
  });

  it('a plain-number score sets acc = score; resample when the budget runs out; same seed, same batch', async () => {
    const run = (seed: number) =>
      fillBatch<P, number>({
        source: prompts,
        trainBatchSize: 6,
        n: 2,
        genBatchSize: 3,
        maxNumGenBatches: 2,
        onExhausted: 'resample',
        seed,
        generate: (ps) => ps.map(() => [0, 1]),
        score: ({ prompt, response }) => (prompt.id % 2 ? response : 1),
      });
    const a = await run(9);
    expect(a.rows.length).toBe(12);
    expect(a.completion).toBe('resample');
    expect(a.rows.every((r) => r.acc === r.score)).toBe(true);
    expect(a.metrics['train/num_groups_kept']).toBe(3);
    expect(await run(9)).toEqual(a);
  });

  it("a source that runs dry: 'error' raises, 'partial' returns what was kept; iterators continue across calls", async () => {
    const base = {
      trainBatchSize: 3,
      n: 2,
      genBatchSize: 2,
      generate: (ps: readonly P[]) => ps.map(() => [0, 1]),
      score: ({ response }: { response: number }) => response,
    };
    await expect(fillBatch<P, number>({ ...base, source: prompts.slice(0, 2) })).rejects.toThrow(ExhaustedError);
    const part = await fillBatch<P, number>({ ...base, source: prompts.slice(0, 2), onExhausted: 'partial' });
    expect(part.rows.length).toBe(4);
    const gen = (function* () {
      yield* prompts;
    })();
    const first = await fillBatch<P, number>({ ...base, source: gen });
    const second = await fillBatch<P, number>({ ...base, source: gen });
    expect(first.rows.map((r) => r.prompt.id)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(second.rows[0]!.prompt.id).toBe(4);
  });

  it('rejects a generate result of the wrong shape', async () => {
    await expect(
      fillBatch<P, number>({ source: prompts, trainBatchSize: 1, n: 2, generate: (ps) => ps.map(() => [1]), score: () => 1 }),
    ).rejects.toThrow(/expected n = 2/);
  });
});
