import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRewardRegistry, defineBatchReward, serveRewards, type RewardServer } from '../src/reward/index.js';
import { rawRequest, runPython } from './bridge-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TOKEN = 'tok-123';
const auth = { authorization: `Bearer ${TOKEN}` };

let srv: RewardServer;
let env: Record<string, string>;

beforeAll(async () => {
  const reward = createRewardRegistry({
    ok: ({ solutionStr }) => ({ score: solutionStr.length, echo: solutionStr }),
    throw: () => {
      throw new Error('reward exploded');
    },
    hang: () => new Promise<number>(() => undefined),
    bad: () => 'high' as unknown as number,
  });
  srv = await serveRewards({ reward, port: 0, token: TOKEN, timeoutMs: 300, maxBodyBytes: 64 * 1024, log: () => undefined });
  env = { LUMIRAG_RL_BRIDGE_URL: srv.url, LUMIRAG_RL_BRIDGE_TOKEN: TOKEN };
});
afterAll(async () => {
  await srv?.close();
});

async function expectHealthy(s: RewardServer): Promise<void> {
  const h = await fetch(`${s.url}/health`);
  expect(h.status).toBe(200);
  expect(await h.json()).toMatchObject({ status: 'ok', protocol: 1 });
  const r = await rawRequest(`${s.url}/v1/score`, { body: JSON.stringify({ data_source: 'ok', solution_str: 'abc' }), headers: auth });
  expect(r).toEqual({ status: 200, body: { id: null, result: { status: 'ok', score: 3, extras: { score: 3, echo: 'abc' } } } });
}

describe('item failures: status and message per item, the other items still scored', () => {
  it('over HTTP: throw, hang past the timeout, invalid return', async () => {
    const body = {
      id: 'b1',
      data_sources: ['ok', 'throw', 'hang', 'bad', 'ok', 'nope'],
      solution_strs: ['a', 'b', 'c', 'd', 'eeee', 'f'],
    };
    const t0 = Date.now();
    const r = await rawRequest(`${srv.url}/v1/score_batch`, { body: JSON.stringify(body), headers: auth });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.status).toBe(200);
    expect(r.body.id).toBe('b1');
    expect(r.body.results).toEqual([
      { status: 'ok', score: 1, extras: { score: 1, echo: 'a' } },
      { status: 'error', code: 'E_REWARD_THREW', message: 'Error: reward exploded' },
      { status: 'timeout', code: 'E_REWARD_TIMEOUT', message: 'reward "hang" on a sample timed out after 300 ms' },
      { status: 'invalid', code: 'E_REWARD_INVALID', message: expect.stringMatching(/returned string; expected a number/) },
      { status: 'ok', score: 4, extras: { score: 4, echo: 'eeee' } },
      { status: 'error', code: 'E_UNKNOWN_DATA_SOURCE', message: expect.stringMatching(/no reward registered for data_source "nope"/) },
    ]);
    await expectHealthy(srv);
  });

  it('in python: exceptions by default; an opted-in fallback score is flagged in the extras', async () => {
    const r = await runPython(
      `
out = {}
for ds in ["throw", "hang", "bad"]:
    try:
        compute_score(data_source=ds, solution_str="x", ground_truth=None, extra_info=None)
        out[ds] = "no exception"
    except mod.RewardItemError as e:
        out[ds] = [type(e).__name__, str(e), e.failures[0][1]]
try:
    compute_score_batch(data_sources=["ok", "throw", "ok", "hang"], solution_strs=["a", "b", "cc", "d"], ground_truths=[None] * 4, extra_infos=None)
    out["batch"] = "no exception"
except mod.RewardItemError as e:
    out["batch"] = [[f[0], f[1]] for f in e.failures]
try:
    mod.BridgeClient(timeout=0.2).score("hang", "x", None)
except mod.BridgeTimeoutError as e:
    out["client_timeout"] = str(e)
fb = mod.BridgeClient(fallback_score=-1.0, fallback_extras={"echo": ""})
out["fallback"] = fb.score_batch(["ok", "throw", "ok"], ["a", "b", "cc"], [None] * 3, None)
emit(out)
`,
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = r.json as Record<string, unknown>;
    expect(out.throw).toEqual(['RewardItemError', 'reward failed for 1 of 1 item(s): item 0: error E_REWARD_THREW: Error: reward exploded', 'error']);
    expect(out.hang).toEqual(['RewardItemError', expect.stringMatching(/timeout E_REWARD_TIMEOUT: .*timed out after 300 ms/), 'timeout']);
    expect(out.bad).toEqual(['RewardItemError', expect.stringMatching(/invalid E_REWARD_INVALID/), 'invalid']);
    expect(out.client_timeout).toMatch(/no reply within 0.2 s/); // a read timeout is not retried: the reward may have run
    expect(out.batch).toEqual([
      [1, 'error'],
      [3, 'timeout'],
    ]);
    expect(out.fallback).toEqual([
      { score: 1, echo: 'a', lumirag_fallback: false, lumirag_error: '' },
      { score: -1, echo: '', lumirag_fallback: true, lumirag_error: 'error E_REWARD_THREW: Error: reward exploded' },
      { score: 2, echo: 'cc', lumirag_fallback: false, lumirag_error: '' },
    ]);
    await expectHealthy(srv);
  });
});

describe('request errors: 4xx with a reason, and the server keeps serving', () => {
  it.each([
    ['bad JSON', '/v1/score', { body: '{"data_source": "ok",', headers: auth }, 400, 'bad_json', /not valid JSON/],
    ['wrong field type', '/v1/score', { body: '{"data_source": "ok", "solution_str": 5}', headers: auth }, 400, 'bad_request', /solution_str must be a string, got number/],
    ['extra_info not a dict', '/v1/score', { body: '{"data_source": "ok", "solution_str": "", "extra_info": [1]}', headers: auth }, 400, 'bad_request', /extra_info must be an object or null, got array/],
    ['batch length mismatch', '/v1/score_batch', { body: '{"data_sources": ["ok"], "solution_strs": ["a", "b"]}', headers: auth }, 400, 'bad_request', /solution_strs has 2 items but data_sources has 1/],
    ['missing token', '/v1/score', { body: '{}' }, 401, 'unauthorized', /missing "Authorization: Bearer/],
    ['wrong token', '/v1/score', { body: '{}', headers: { authorization: 'Bearer nope' } }, 401, 'unauthorized', /wrong bearer token/],
    ['oversized body', '/v1/score', { body: JSON.stringify({ data_source: 'ok', solution_str: 'x'.repeat(100_000) }), headers: auth }, 413, 'payload_too_large', /exceeds maxBodyBytes 65536/],
    ['unknown path', '/v2/score', { body: '{}', headers: auth }, 404, 'not_found', /no endpoint \/v2\/score/],
    ['wrong method', '/v1/score', { method: 'PUT', body: '{}', headers: auth }, 405, 'method_not_allowed', /accepts POST, got PUT/],
    ['wrong content type', '/v1/score', { body: 'a=1', headers: { ...auth, 'content-type': 'text/plain' } }, 415, 'unsupported_media_type', /application\/json/],
  ])('%s', async (_what, path, init, status, code, message) => {
    const r = await rawRequest(`${srv.url}${path}`, init);
    expect(r.status).toBe(status);
    expect((r.body.error as { code: string }).code).toBe(code);
    expect((r.body.error as { message: string }).message).toMatch(message);
    await expectHealthy(srv);
  });

  it('an oversized chunked body (no content-length) is cut at the limit and answered 413', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${srv.url}/v1/score`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(8192));
      req.end();
    });
    expect(status).toBe(413);
    await expectHealthy(srv);
  });

  it('python raises BridgeRequestError at once (no retry) for 4xx, and retries a 503 (draining)', async () => {
    // a stand-in server that answers 503 twice, then a valid reply
    let hits = 0;
    const fake = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hits++;
        if (hits <= 2) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"draining","message":"later"}}');
          return;
        }
        const { id } = JSON.parse(body) as { id: string };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, result: { status: 'ok', score: 0.25 } }));
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    try {
      const r = await runPython(
        `
import time
out = {}
t0 = time.time()
try:
    mod.BridgeClient(token="wrong").score("ok", "x", None)
except mod.BridgeRequestError as e:
    out["token"] = [e.status, e.code, time.time() - t0 < 2]
try:
    mod.BridgeClient().score("ok", "x" * 100000, None)
except mod.BridgeRequestError as e:
    out["big"] = [e.status, e.code, e.message]
out["after_503"] = mod.BridgeClient(urls=${JSON.stringify(fakeUrl)}, backoff=0.01).score("d", "s", None)
emit(out)
`,
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.json).toEqual({
        token: [401, 'unauthorized', true],
        big: [413, 'payload_too_large', expect.stringMatching(/65536/)],
        after_503: 0.25,
      });
      expect(hits).toBe(3);
    } finally {
      await new Promise((r) => fake.close(r));
    }
    await expectHealthy(srv);
  });
});

describe('server killed and restarted during a batch', () => {
  it('the python client retries with backoff; every batch comes back once, in order', async () => {
    let calls = 0;
    let kill = () => undefined as void;
    const reward = defineBatchReward(async (inputs) => {
      calls++;
      if (calls === 4) setTimeout(() => kill(), 10); // kill the server while this batch is being scored
      await sleep(40);
      return inputs.map((i) => ({ score: Number(i.solutionStr) * 2, echo: i.solutionStr }));
    });
    const first = await serveRewards({ reward, port: 0, log: () => undefined });
    const port = first.port;
    const py = runPython(
      `
import logging
logging.basicConfig(level=logging.INFO, format="%(message)s")
results = []
for b in range(30):
    sols = [str(b * 100 + k) for k in range(16)]
    out = compute_score_batch(data_sources=["d"] * 16, solution_strs=sols, ground_truths=[None] * 16, extra_infos=None)
    assert [o["echo"] for o in out] == sols, (b, out)
    results.extend(o["score"] for o in out)
emit(results)
`,
      { LUMIRAG_RL_BRIDGE_URL: first.url, LUMIRAG_RL_BRIDGE_BACKOFF: '0.05' },
    );
    // the 4th batch kills the server abruptly (connections destroyed, nothing answered), as a crash would
    let killedWithInFlight = -1;
    const killed = new Promise<void>((resolve) => {
      kill = () => {
        killedWithInFlight = first.stats().inFlight;
        first.server.close();
        first.server.closeAllConnections();
        resolve();
      };
    });
    await killed;
    expect(killedWithInFlight).toBe(1);
    await sleep(600);
    const second = await serveRewards({ reward, port, log: () => undefined });
    try {
      const r = await py;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/ConnectionRefusedError.*retry \d\/8/);
      const expected = Array.from({ length: 30 * 16 }, (_, j) => (Math.floor(j / 16) * 100 + (j % 16)) * 2);
      expect(r.json).toEqual(expected);
      expect(first.stats().requests).toBe(3);
      expect(second.stats().requests).toBe(27); // the killed batch was answered by the second server
      expect(calls).toBe(31); // the killed batch ran again, once
      await expectHealthyPlain(second);
    } finally {
      await second.close();
    }
  });
});

async function expectHealthyPlain(s: RewardServer): Promise<void> {
  const h = await fetch(`${s.url}/health`);
  expect(h.status).toBe(200);
}

describe('graceful shutdown', () => {
  it('one of two servers drains and stops mid-run: the client fails over to the other, nothing lost', async () => {
    const reward = async ({ solutionStr }: { solutionStr: string }) => (await sleep(2), { score: 1, echo: solutionStr });
    const a = await serveRewards({ reward, port: 0 });
    const b = await serveRewards({ reward, port: 0 });
    try {
      const py = runPython(
        `
import logging
logging.basicConfig(level=logging.INFO, format="%(message)s")
emit([compute_score(data_source="d", solution_str=str(i), ground_truth=None)["echo"] for i in range(120)])`,
        { LUMIRAG_RL_BRIDGE_URL: `${a.url},${b.url}` },
      );
      for (let i = 0; i < 2000 && a.stats().requests < 20; i++) await sleep(5);
      await a.close();
      const r = await py;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json).toEqual(Array.from({ length: 120 }, (_, i) => String(i)));
      expect(a.stats().requests).toBeGreaterThanOrEqual(20);
      expect(a.stats().requests + b.stats().requests).toBe(120);
      expect(r.stderr).toMatch(/Connection refused; retry 1\/8 on another server/);
      expect(r.stderr).not.toMatch(/retry \d+\/8 in /); // failed over at once, no backoff sleep
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('finishes in-flight calls, refuses new connections, then resolves', async () => {
    const s = await serveRewards({ reward: async () => (await sleep(300), 0.5), port: 0 });
    const inflight = rawRequest(`${s.url}/v1/score`, { body: JSON.stringify({ data_source: 'd', solution_str: 's' }) });
    for (let i = 0; i < 200 && s.stats().inFlight === 0; i++) await sleep(5);
    const closed = s.close();
    await sleep(20);
    await expect(fetch(`${s.url}/health`)).rejects.toThrow();
    expect(await inflight).toEqual({ status: 200, body: { id: null, result: { status: 'ok', score: 0.5 } } });
    await closed;
    expect(s.stats().inFlight).toBe(0);
  });
});
