import { describe, expect, it } from 'vitest';
import { ConfigError, RewardError } from '../src/errors.js';
import {
  RewardLimiter,
  createDefaultRewardRegistry,
  createRewardRegistry,
  defineBatchReward,
  defineReward,
  mathDapoReward,
  rewardInput,
  shapeOverlongReward,
  withOverlongPenalty,
  type RewardInput,
} from '../src/reward/index.js';

const inp = (solution_str: string, data_source = 'ds', extra_info: Record<string, number> | null = null): RewardInput =>
  rewardInput({ data_source, solution_str, ground_truth: 'gt', extra_info });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('defineReward: verl return contract', () => {
  it('a number stays a number (no extras), a boolean counts as 0/1, a dict keeps its keys', async () => {
    expect(await defineReward(() => 0.25).score(inp('a'))).toEqual({ score: 0.25, extras: null });
    expect(await defineReward(() => true).score(inp('a'))).toEqual({ score: 1, extras: null });
    expect(await defineReward(async () => ({ score: -1, acc: false, pred: 'x' })).score(inp('a'))).toEqual({
      score: -1,
      extras: { score: -1, acc: false, pred: 'x' },
    });
    expect(await defineReward(() => ({ score: true, n: 2 })).score(inp('a'))).toEqual({ score: 1, extras: { score: 1, n: 2 } });
  });

  it('passes verl\'s arguments in camelCase and does not mutate them', async () => {
    const seen: RewardInput[] = [];
    const hook = defineReward((i) => {
      seen.push(i);
      return i.solutionStr.length;
    });
    const input = rewardInput({ data_source: 'd', solution_str: 'abc', ground_truth: { x: 1 }, extra_info: { index: 3 }, bonus: 0.5 });
    const frozen = JSON.stringify(input);
    expect((await hook.score(input)).score).toBe(3);
    expect(JSON.stringify(input)).toBe(frozen);
    expect(seen[0]).toMatchObject({ dataSource: 'd', solutionStr: 'abc', groundTruth: { x: 1 }, extraInfo: { index: 3 }, kwargs: { bonus: 0.5 } });
  });

  it('returns a hook unchanged and names it', () => {
    const h = defineReward(function myReward() { return 1; });
    expect(defineReward(h)).toBe(h);
    expect(h.name).toBe('myReward');
    expect(defineReward(() => 1, { name: 'n' }).name).toBe('n');
    expect(() => defineReward(42 as unknown as () => number)).toThrow(ConfigError);
  });

  it.each([
    ['a string', () => 'high', /returned string/],
    ['a dict without score', () => ({ acc: 1 }), /without "score" \(keys: acc\)/],
    ['a NaN score', () => Number.NaN, /non-finite score \(NaN\)/],
    ['a string score', () => ({ score: '1' }), /"score" of type string/],
    ['a non-JSON extra', () => ({ score: 1, f: () => 1 }), /extra that is not JSON: f \(function\)/],
    ['an Infinity extra', () => ({ score: 1, deep: { x: [1, Infinity] } }), /deep\.x\[1\] = Infinity/],
    ['undefined', () => undefined, /returned undefined/],
  ])('rejects %s as an invalid item, never a score', async (_what, fn, msg) => {
    const [r] = await defineReward(fn as () => number).scoreBatch([inp('a')]);
    expect(r.status).toBe('invalid');
    expect(r.status !== 'ok' && r.code).toBe('E_REWARD_INVALID');
    expect(r.status !== 'ok' && r.message).toMatch(msg);
    await expect(defineReward(fn as () => number).score(inp('a'))).rejects.toThrow(RewardError);
  });

  it('a throw fails only its item; the rest of the batch is scored', async () => {
    const hook = defineReward(({ solutionStr }) => {
      if (solutionStr === 'bad') throw new TypeError('boom');
      return solutionStr.length;
    });
    const res = await hook.scoreBatch([inp('aa'), inp('bad'), inp('aaaa')]);
    expect(res).toEqual([
      { status: 'ok', score: 2, extras: null },
      { status: 'error', code: 'E_REWARD_THREW', message: 'TypeError: boom' },
      { status: 'ok', score: 4, extras: null },
    ]);
    await expect(hook.score(inp('bad'))).rejects.toThrow(/threw: TypeError: boom/);
  });

  it('a hanging call times out, its signal is aborted, the others finish', async () => {
    let aborted = false;
    const hook = defineReward(({ solutionStr, signal }) => {
      if (solutionStr !== 'hang') return 1;
      signal?.addEventListener('abort', () => (aborted = true));
      return new Promise<number>(() => undefined);
    });
    const t0 = Date.now();
    const res = await hook.scoreBatch([inp('ok'), inp('hang')], { timeoutMs: 60 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(res[0]).toEqual({ status: 'ok', score: 1, extras: null });
    expect(res[1]).toMatchObject({ status: 'timeout', code: 'E_REWARD_TIMEOUT' });
    expect(res[1].status !== 'ok' && res[1].message).toMatch(/timed out after 60 ms/);
    expect(aborted).toBe(true);
  });

  it('a shared RewardLimiter bounds concurrency', async () => {
    let now = 0;
    let peak = 0;
    const hook = defineReward(async () => {
      now++;
      peak = Math.max(peak, now);
      await sleep(5);
      now--;
      return 1;
    });
    const limiter = new RewardLimiter(3);
    const res = await hook.scoreBatch(Array.from({ length: 20 }, (_, i) => inp(String(i))), { limiter });
    expect(res.every((r) => r.status === 'ok')).toBe(true);
    expect(peak).toBe(3);
    expect(limiter.inUse).toBe(0);
    expect(() => new RewardLimiter(0)).toThrow(ConfigError);
  });
});

describe('defineBatchReward (verl batch manager form)', () => {
  it('one call for the whole batch; Error entries fail single items', async () => {
    const calls: number[] = [];
    const hook = defineBatchReward((inputs) => {
      calls.push(inputs.length);
      return inputs.map((i) => (i.solutionStr === 'x' ? new Error('no x') : { score: i.solutionStr.length, tag: 't' }));
    });
    const res = await hook.scoreBatch([inp('ab'), inp('x'), inp('abc')]);
    expect(calls).toEqual([3]);
    expect(res).toEqual([
      { status: 'ok', score: 2, extras: { score: 2, tag: 't' } },
      { status: 'error', code: 'E_REWARD_THREW', message: 'Error: no x' },
      { status: 'ok', score: 3, extras: { score: 3, tag: 't' } },
    ]);
    expect(await hook.score(inp('abcd'))).toEqual({ score: 4, extras: { score: 4, tag: 't' } });
  });

  it('a wrong result count or a throw fails every item with a reason', async () => {
    const short = await defineBatchReward(() => [1]).scoreBatch([inp('a'), inp('b')]);
    expect(short.map((r) => r.status)).toEqual(['invalid', 'invalid']);
    expect(short[0].status !== 'ok' && short[0].message).toMatch(/returned 1 results for 2 inputs/);
    const thrown = await defineBatchReward(() => {
      throw new Error('down');
    }).scoreBatch([inp('a'), inp('b')]);
    expect(thrown.map((r) => r.status !== 'ok' && r.message)).toEqual(['Error: down', 'Error: down']);
  });
});

describe('registry dispatching on dataSource', () => {
  it('exact names, prefixes, regexes, predicates, fallback; unknown is an item error', async () => {
    const reg = createRewardRegistry({ gsm8k: () => 1 })
      .register({ prefix: 'aime' }, () => 2)
      .register(/^code_/, () => 3)
      .register((ds) => ds.endsWith('!'), () => 4);
    const res = await reg.scoreBatch(['gsm8k', 'aime2024', 'code_x', 'wow!', 'other'].map((d) => inp('s', d)));
    expect(res.slice(0, 4).map((r) => r.status === 'ok' && r.score)).toEqual([1, 2, 3, 4]);
    expect(res[4]).toMatchObject({ status: 'error', code: 'E_UNKNOWN_DATA_SOURCE' });
    expect(res[4].status !== 'ok' && res[4].message).toMatch(/"other".*registered: gsm8k, aime\*, \/\^code_\/, <predicate>/);
    await expect(reg.score(inp('s', 'other'))).rejects.toThrow(RewardError);
    const withFallback = createRewardRegistry({ a: () => 1 }, { fallback: () => 9 });
    expect((await withFallback.score(inp('s', 'zzz'))).score).toBe(9);
    expect(() => reg.register('gsm8k', () => 0)).toThrow(ConfigError);
  });

  it('batches each reward with only its own items and keeps the order', async () => {
    const seen: string[][] = [];
    const b = defineBatchReward((xs) => {
      seen.push(xs.map((x) => x.solutionStr));
      return xs.map(() => 10);
    });
    const reg = createRewardRegistry({ b, s: ({ solutionStr }) => Number(solutionStr) });
    const res = await reg.scoreBatch([inp('1', 's'), inp('x', 'b'), inp('3', 's'), inp('y', 'b')]);
    expect(res.map((r) => r.status === 'ok' && r.score)).toEqual([1, 10, 3, 10]);
    expect(seen).toEqual([['x', 'y']]);
  });

  it('the default registry sends math_dapo, math and aime* to math_dapo, like verl', async () => {
    const reg = createDefaultRewardRegistry();
    expect(reg.resolve('math_dapo')).toBe(mathDapoReward);
    expect(reg.resolve('math')).toBe(mathDapoReward); // verl/utils/reward_score/__init__.py (SPEC §10)
    expect(reg.resolve('lighteval/MATH')).toBeUndefined(); // verl's math_reward, not built in
    expect(reg.resolve('aime2025')).toBe(mathDapoReward);
    expect(reg.resolve('openai/gsm8k')).toBeUndefined();
    const r = await reg.score(rewardInput({ data_source: 'aime24', solution_str: 'Answer: 3', ground_truth: '3' }));
    expect(r.extras).toEqual({ score: 1, acc: true, pred: '3' });
  });
});

describe('withOverlongPenalty (DAPO overlong shaping as a wrapper)', () => {
  const overlong = { maxResponseLength: 20, overlongBufferLen: 10, overlongPenaltyFactor: 1, enable: true };

  it('adds min(-(L - expected)/buffer * factor, 0) to the score', async () => {
    const hook = withOverlongPenalty(() => 1, { overlong });
    const at = async (L: number) => (await hook.score(inp('s', 'd', { valid_response_length: L }))).score;
    expect(await at(5)).toBe(1);
    expect(await at(10)).toBe(1);
    expect(await at(15)).toBe(0.5);
    expect(await at(20)).toBe(0);
    expect(await at(17)).toBe(shapeOverlongReward(1, 17, overlong).reward);
    expect(await at(17)).toBeCloseTo(0.3, 6);
  });

  it('keeps a dict\'s extras and logs overlong_reward / overlong when asked', async () => {
    const hook = withOverlongPenalty(() => ({ score: -1, acc: false }), {
      overlong,
      log: true,
      responseLength: (i) => i.solutionStr.length,
    });
    const r = await hook.score(inp('x'.repeat(15)));
    expect(r).toEqual({ score: -1.5, extras: { score: -1.5, acc: false, overlong_reward: -0.5, overlong: true } });
    expect(hook.name).toBe('reward+overlong');
  });

  it('fails the item (not a silent score) when the length is unknown', async () => {
    const [r] = await withOverlongPenalty(() => 1, { overlong }).scoreBatch([inp('s')]);
    expect(r).toMatchObject({ status: 'error' });
    expect(r.status !== 'ok' && r.message).toMatch(/valid_response_length/);
    expect(() => withOverlongPenalty(() => 1, { overlong: { ...overlong, maxResponseLength: -1 } })).toThrow(ConfigError);
  });
});
