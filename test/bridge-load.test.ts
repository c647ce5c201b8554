import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoReward, runPythonLoad } from '../bench/bridge.js';
import { serveRewards, type RewardServer } from '../src/reward/index.js';

let srv: RewardServer;
beforeAll(async () => {
  srv = await serveRewards({ reward: echoReward, port: 0, token: 'load-token', log: () => undefined });
});
afterAll(async () => {
  await srv?.close();
});

function check(results: [string, string, number][], expectedKeys: string[], payloadChars: number): void {
  expect(results.length).toBe(expectedKeys.length);
  const byKey = new Map<string, number>();
  for (const [key, echo, score] of results) {
    expect(echo).toBe(key); // each call got its own answer
    expect(score).toBe(payloadChars);
    byKey.set(key, (byKey.get(key) ?? 0) + 1);
  }
  expect(byKey.size).toBe(expectedKeys.length); // nothing duplicated
  for (const k of expectedKeys) expect(byKey.get(k)).toBe(1); // nothing lost
}

describe('load: thousands of calls from concurrent python3 clients', () => {
  it('2400 compute_score calls from 4 processes × 4 threads: none lost, none duplicated', async () => {
    const before = srv.stats();
    const r = await runPythonLoad({ url: srv.url, token: 'load-token', processes: 4, threads: 4, callsPerThread: 150, batchSize: 0, payloadChars: 200, timeoutMs: 60_000 });
    const keys = [];
    for (let p = 0; p < 4; p++) for (let t = 0; t < 4; t++) for (let i = 0; i < 150; i++) keys.push(`${p}-${t}-${i}`);
    check(r.results, keys, 200);
    expect(r.latenciesMs.length).toBe(2400);
    expect(srv.stats().requests - before.requests).toBe(2400);
    expect(srv.stats().itemsOk - before.itemsOk).toBe(2400);
    expect(srv.stats().itemsFailed).toBe(0);
  });

  it('2560 items in compute_score_batch requests of 64 from 2 processes × 2 threads', async () => {
    const r = await runPythonLoad({ url: srv.url, token: 'load-token', processes: 2, threads: 2, callsPerThread: 10, batchSize: 64, payloadChars: 1000, timeoutMs: 60_000 });
    const keys = [];
    for (let p = 0; p < 2; p++) for (let t = 0; t < 2; t++) for (let i = 0; i < 10; i++) for (let k = 0; k < 64; k++) keys.push(`${p}-${t}-${i}-${k}`);
    check(r.results, keys, 1000);
    expect(r.latenciesMs.length).toBe(40);
  });
});
