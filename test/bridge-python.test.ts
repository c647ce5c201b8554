import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRewardRegistry, mathDapoReward, mathDapoScore, serveRewards, type RewardServer } from '../src/reward/index.js';
import { runPython } from './bridge-harness.js';

let srv: RewardServer;
let env: Record<string, string>;

beforeAll(async () => {
  const reward = createRewardRegistry({
    math_dapo: mathDapoReward,
    // a dict reward echoing what it received
    echo: ({ solutionStr, groundTruth, extraInfo, kwargs, dataSource }) => ({
      score: solutionStr.length,
      ds: dataSource,
      gt: groundTruth,
      extra: extraInfo,
      kw: kwargs,
    }),
    // a plain-number reward
    num: ({ solutionStr }) => (solutionStr.includes('good') ? 1 : 0),
  });
  srv = await serveRewards({ reward, host: '127.0.0.1', port: 0, token: 's3cret', timeoutMs: 5000 });
  env = { LUMIRAG_RL_BRIDGE_URL: srv.url, LUMIRAG_RL_BRIDGE_TOKEN: 's3cret' };
});
afterAll(async () => {
  await srv?.close();
});

describe('python3 calls compute_score the way verl reward managers do', () => {
  it('naive manager: keyword args, reward_kwargs merged, non-JSON kwargs dropped, dict returned with extras', async () => {
    const r = await runPython(
      `
res = compute_score(data_source="echo", solution_str="h\\u00e9llo \\U0001F600", ground_truth="gt",
                    extra_info={"index": 7, "rollout_reward_scores": {}, "num_turns": 2, "t": (1, 2)},
                    bonus=0.5, reward_router_address=None, reward_model_tokenizer=object())
num = compute_score(data_source="num", solution_str="a good answer", ground_truth="x", extra_info=None)
emit({"res": res, "num": num, "num_type": type(num).__name__, "score_type": type(res["score"]).__name__})
`,
      env,
    );
    expect(r.stderr).toMatch(/reward_model_tokenizer/); // warned once, not sent
    expect(r.code).toBe(0);
    expect(r.json).toEqual({
      res: {
        score: 8, // the string arrives intact: 'héllo ' plus a surrogate pair in UTF-16
        ds: 'echo',
        gt: 'gt',
        extra: { index: 7, rollout_reward_scores: {}, num_turns: 2, t: [1, 2] },
        kw: { bonus: 0.5, reward_router_address: null },
      },
      num: 1,
      num_type: 'float',
      score_type: 'float',
    });
  });

  // one python run with numpy for both checks below (importing numpy is the slow part)
  const sols = ['Answer: 12', 'so good', 'xyz', 'Answer: 5'];
  let numpyRun: Promise<Awaited<ReturnType<typeof runPython>>> | undefined;
  const numpyOnce = () =>
    (numpyRun ??= runPython(
      `
import numpy as np
single = compute_score(data_source=np.str_("echo"), solution_str=np.str_("abc"), ground_truth=np.int64(5),
                       extra_info={"index": np.int64(3), "arr": np.array([1, 2]), "f": np.float32(0.5), "m": float("nan"), "b": np.bool_(True)})
batch = compute_score_batch(
    data_sources=np.array(["math_dapo", "num", "echo", "math_dapo"], dtype=object),
    solution_strs=${JSON.stringify(sols)},
    ground_truths=["12", None, "g", "6"],
    extra_infos=np.array([{"index": 0}, None, {"index": 2}, {"index": 3}], dtype=object),
    scale=2)
emit({"single": single, "batch": batch})
`,
      env,
    ));

  it('numpy inputs from non_tensor_batch (object arrays, numpy scalars, NaN) are converted', async () => {
    const r = await numpyOnce();
    expect(r.code, r.stderr).toBe(0);
    expect((r.json as { single: unknown }).single).toEqual({
      score: 3,
      ds: 'echo',
      gt: 5,
      extra: { index: 3, arr: [1, 2], f: 0.5, m: null, b: true },
      kw: {},
    });
  });

  it('batch manager: compute_score_batch(data_sources=, solution_strs=, ground_truths=, extra_infos=) mixes rewards in order', async () => {
    const r = await numpyOnce();
    expect(r.code, r.stderr).toBe(0);
    expect((r.json as { batch: unknown }).batch).toEqual([
      { ...mathDapoScore(sols[0], '12') },
      1,
      { score: 3, ds: 'echo', gt: 'g', extra: { index: 2 }, kw: { scale: 2 } },
      { ...mathDapoScore(sols[3], '6') },
    ]);
  });

  it('reward extras are collected per key like verl\'s reward_extra_info (consistent keys)', async () => {
    const r = await runPython(
      `
from collections import defaultdict
extra = defaultdict(list); scores = []
for i, (sol, gt) in enumerate([("Answer: 1", "1"), ("Answer: 2", "3"), ("nothing", "4")]):
    result = compute_score(data_source="math_dapo", solution_str=sol, ground_truth=gt, extra_info={"index": i})
    scores.append(result["score"])
    for k, v in result.items():
        extra[k].append(v)
emit({"scores": scores, "extra": extra})
`,
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toEqual({
      scores: [1, -1, -1],
      extra: { score: [1, -1, -1], acc: [true, false, false], pred: ['1', '2', '[INVALID]'] },
    });
  });

  it('compute_score_async works under asyncio.gather (reward-loop managers)', async () => {
    const r = await runPython(
      `
async def main():
    return await asyncio.gather(*[compute_score_async(data_source="echo", solution_str="x" * i, ground_truth=None, extra_info={"index": i}) for i in range(20)])
out = asyncio.run(main())
emit([[o["score"], o["extra"]["index"]] for o in out])
`,
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toEqual(Array.from({ length: 20 }, (_, i) => [i, i]));
  });

  it('spreads calls round-robin over a comma-separated URL list', async () => {
    const a = await serveRewards({ reward: () => 1, port: 0 });
    const b = await serveRewards({ reward: () => 2, port: 0 });
    try {
      const r = await runPython(
        `emit([compute_score(data_source="d", solution_str="s", ground_truth=None) for _ in range(20)])`,
        { LUMIRAG_RL_BRIDGE_URL: `${a.url}, ${b.url}` },
      );
      expect(r.code, r.stderr).toBe(0);
      const got = r.json as number[];
      expect(got.filter((x) => x === 1).length).toBe(10);
      expect(got.filter((x) => x === 2).length).toBe(10);
      expect(a.stats().requests).toBe(10);
      expect(b.stats().requests).toBe(10);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
