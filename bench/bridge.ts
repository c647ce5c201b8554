/**
 * Reward bridge throughput: an in-process `serveRewards` server on 127.0.0.1 called by concurrent real `python3`
 * processes through the shipped python/lumirag_rl_verl.py (loaded the way verl loads a custom reward file).
 * Reports calls (items) per second and per-request p50/p99 latency measured in Python around each call.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineReward, serveRewards, type RewardHook } from '../src/reward/index.js';
import type { BenchOptions, BenchSection } from './types.js';

const PY_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'python', 'lumirag_rl_verl.py');

/** One load run: `processes` python3 processes × `threads` threads × `callsPerThread` requests. */
export interface LoadOptions {
  /** Bridge URL (or comma-separated list). */
  url: string;
  /** Bearer token, if the server wants one. */
  token?: string;
  /** python3 processes. */
  processes: number;
  /** Threads per process. */
  threads: number;
  /** Requests per thread. */
  callsPerThread: number;
  /** 0: `compute_score` per sample; n > 0: `compute_score_batch` with n items per request. */
  batchSize: number;
  /** Length of each `solution_str` (a unique key, `|`, padding). */
  payloadChars: number;
  /** Kill the python processes after this long; default 120 s. */
  timeoutMs?: number;
}

/** What a load run measured. `results` holds one `[key sent, echo received, score]` per item. */
export interface LoadResult {
  /** Per-request latency in ms, measured in Python around the call. */
  latenciesMs: number[];
  /** One entry per item. */
  results: [string, string, number][];
  /** Wall time of the load phase across processes (first start to last end), ms. */
  wallMs: number;
}

/** The reward used for load: echoes the key (before `|`) and scores the string length. */
export const echoReward: RewardHook = defineReward(
  ({ solutionStr }) => {
    const bar = solutionStr.indexOf('|');
    return { score: solutionStr.length, echo: bar < 0 ? solutionStr : solutionStr.slice(0, bar) };
  },
  { name: 'echo' },
);

const DRIVER = `
import importlib.util, sys, json, time, threading
cfg = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("custom_module", cfg["py_file"])
mod = importlib.util.module_from_spec(spec); sys.modules["custom_module"] = mod; spec.loader.exec_module(mod)
compute_score = getattr(mod, "compute_score"); compute_score_batch = getattr(mod, "compute_score_batch")
P, T, N, B, L = cfg["proc"], cfg["threads"], cfg["calls"], cfg["batch"], cfg["chars"]
def pad(key):
    return key + "|" + "x" * max(0, L - len(key) - 1)
lat = []; results = []; lock = threading.Lock()
def worker(t):
    my_lat = []; my_res = []
    for i in range(N):
        key = f"{P}-{t}-{i}"
        if B == 0:
            keys = [key]
            t0 = time.perf_counter()
            got = [compute_score(data_source="load", solution_str=pad(key), ground_truth=key, extra_info={"index": i})]
        else:
            keys = [f"{key}-{k}" for k in range(B)]
            sols = [pad(k) for k in keys]
            t0 = time.perf_counter()
            got = compute_score_batch(data_sources=["load"] * B, solution_strs=sols, ground_truths=keys, extra_infos=[{"index": k} for k in range(B)])
        my_lat.append((time.perf_counter() - t0) * 1000.0)
        for k, g in zip(keys, got):
            my_res.append([k, g["echo"], g["score"]])
    with lock:
        lat.extend(my_lat); results.extend(my_res)
ths = [threading.Thread(target=worker, args=(t,)) for t in range(T)]
start = time.time()
for th in ths: th.start()
for th in ths: th.join()
end = time.time()
print(json.dumps({"lat": lat, "results": results, "start": start, "end": end}))
`;

function runOne(cfg: Record<string, unknown>, env: Record<string, string>, timeoutMs: number) {
  return new Promise<{ lat: number[]; results: [string, string, number][]; start: number; end: number }>((ok, fail) => {
    const child = spawn('python3', ['-c', DRIVER, JSON.stringify(cfg)], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONDONTWRITEBYTECODE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return fail(new Error(`python load client exited with ${code}: ${err.slice(-2000)}`));
      try {
        ok(JSON.parse(out.trim().split('\n').at(-1) ?? ''));
      } catch (e) {
        fail(new Error(`python load client printed no result: ${(e as Error).message}; stderr: ${err.slice(-2000)}`));
      }
    });
  });
}

/** Run concurrent python3 clients against a bridge and collect latencies and every item's echo. */
export async function runPythonLoad(opts: LoadOptions): Promise<LoadResult> {
  const env: Record<string, string> = { LUMIRAG_RL_BRIDGE_URL: opts.url };
  if (opts.token) env.LUMIRAG_RL_BRIDGE_TOKEN = opts.token;
  const runs = await Promise.all(
    Array.from({ length: opts.processes }, (_, p) =>
      runOne(
        { py_file: PY_FILE, proc: p, threads: opts.threads, calls: opts.callsPerThread, batch: opts.batchSize, chars: opts.payloadChars },
        env,
        opts.timeoutMs ?? 120_000,
      ),
    ),
  );
  return {
    latenciesMs: runs.flatMap((r) => r.lat),
    results: runs.flatMap((r) => r.results),
    wallMs: (Math.max(...runs.map((r) => r.end)) - Math.min(...runs.map((r) => r.start))) * 1000,
  };
}

/** Nearest-rank percentile of an unsorted array. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Bench section: calls/s and p50/p99 latency of the bridge under concurrent python clients. */
export async function run(opts: BenchOptions): Promise<BenchSection> {
  const srv = await serveRewards({ reward: echoReward, host: '127.0.0.1', port: 0, maxConcurrency: 256, log: () => undefined });
  const scale = opts.quick ? 0.1 : 1;
  const plans: { label: string; processes: number; threads: number; calls: number; batch: number; chars: number }[] = [
    { label: 'compute_score', processes: 1, threads: 1, calls: 2000, batch: 0, chars: 64 },
    { label: 'compute_score', processes: 4, threads: 4, calls: 250, batch: 0, chars: 64 },
    { label: 'compute_score', processes: 4, threads: 4, calls: 250, batch: 0, chars: 4096 },
    { label: 'compute_score_batch (64/request)', processes: 4, threads: 1, calls: 40, batch: 64, chars: 4096 },
  ];
  const rows: (string | number)[][] = [];
  try {
    for (const plan of plans) {
      const calls = Math.max(2, Math.round(plan.calls * scale));
      const r = await runPythonLoad({
        url: srv.url,
        processes: plan.processes,
        threads: plan.threads,
        callsPerThread: calls,
        batchSize: plan.batch,
        payloadChars: plan.chars,
      });
      const expected = plan.processes * plan.threads * calls * Math.max(1, plan.batch);
      const keys = new Set(r.results.map(([k, echo]) => (k === echo ? k : `MISMATCH ${k}`)));
      if (r.results.length !== expected || keys.size !== expected) {
        throw new Error(`bridge bench lost or mixed results: ${r.results.length} items, ${keys.size} distinct, ${expected} expected`);
      }
      rows.push([
        plan.label,
        String(plan.chars),
        `${plan.processes}×${plan.threads}`,
        r.latenciesMs.length,
        expected,
        expected / (r.wallMs / 1000),
        percentile(r.latenciesMs, 50),
        percentile(r.latenciesMs, 99),
      ]);
    }
  } finally {
    await srv.close();
  }
  return {
    title: 'Reward bridge: python3 compute_score → HTTP → TypeScript reward (loopback)',
    columns: ['call', 'solution_str chars', 'procs×threads', 'requests', 'items', 'items/s', 'p50 ms', 'p99 ms'],
    rows,
    notes: [
      `${cpus().length} cores shared by the server (one Node process) and the python clients; keep-alive connections, one per client thread.`,
      'Reward: a trivial echo (score = length), so the numbers are the bridge overhead: JSON, HTTP, python http.client.',
      'Latency is measured in Python around each compute_score / compute_score_batch call; items/s = items / wall time of the load phase.',
      'Every item is checked: its echoed key must come back exactly once.',
    ],
  };
}
