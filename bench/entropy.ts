/**
 * Entropy throughput at Qwen's vocabulary (V = 152,064): verl's `entropy_from_logits` on the float64 CPU
 * reference and on WebGPU (shaders/entropy.wgsl, online log-sum-exp, one workgroup per position), same float32
 * logits, same run. Reported per logit, since the work is B·T·V.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { entropyFromLogits, entropyFromLogitsGpu } from '../src/entropy/index.js';
import { createEngine } from '../src/gpu/index.js';
import type { BenchOptions, BenchSection } from './types.js';

const V = 152064;

function logits(N: number): Float32Array {
  const noise = new Float32Array(V + 4096);
  let a = 12345;
  for (let k = 0; k < noise.length; k++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    noise[k] = (a / 4294967296 - 0.5) * 6;
  }
  const z = new Float32Array(N * V);
  for (let p = 0; p < N; p++) z.set(noise.subarray((p * 131) % 4096, ((p * 131) % 4096) + V), p * V);
  return z;
}

/** verl's entropy_from_logits (TF:224-238) in PyTorch, float32 CPU, 2 threads: prints {"N": n, "ms": best} lines. */
const TORCH_SCRIPT = `
import json, sys, time
import torch
torch.set_num_threads(2)
V, reps = int(sys.argv[1]), int(sys.argv[2])
def entropy_from_logits(logits):
    pd = torch.nn.functional.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - torch.sum(pd * logits, dim=-1)
for n in map(int, sys.argv[3].split(',')):
    z = (torch.rand(n, V, dtype=torch.float32) - 0.5) * 6
    best = float('inf')
    with torch.no_grad():
        for _ in range(reps):
            t = time.perf_counter(); h = entropy_from_logits(z); float(h.sum()); best = min(best, time.perf_counter() - t)
    print(json.dumps({"N": n, "ms": best * 1e3, "torch": torch.__version__}), flush=True)
`;

/** PyTorch timings per position count, or the reason they are absent. */
function torchTimes(positions: number[], reps: number): { ms: Map<number, number>; note: string } {
  const ms = new Map<number, number>();
  const jemalloc = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'].find((p) => existsSync(p));
  for (const py of [process.env.LUMIRAG_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[]) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) continue;
    const r = spawnSync(py, ['-c', TORCH_SCRIPT, String(V), String(reps), positions.join(',')], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '2', ...(jemalloc ? { LD_PRELOAD: jemalloc, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' } : {}) },
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) return { ms, note: `PyTorch column failed: ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}` };
    let version = '?';
    for (const line of r.stdout.trim().split('\n')) {
      const o = JSON.parse(line) as { N: number; ms: number; torch: string };
      ms.set(o.N, o.ms);
      version = o.torch;
    }
    return { ms, note: `PyTorch column: verl's entropy_from_logits (softmax, logsumexp − Σp·z) in torch ${version}, float32 CPU, 2 threads${jemalloc ? ', jemalloc preloaded, page decay off' : ''} (${py})` };
  }
  return { ms, note: 'PyTorch column skipped: no python3 with torch (Debian: apt-get install python3-torch)' };
}

async function minTime(reps: number, f: () => Promise<unknown> | unknown): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** The entropy section of `npm run bench`. */
export async function run(opts: BenchOptions): Promise<BenchSection> {
  const section: BenchSection = {
    title: `Entropy of softmax over V = ${V.toLocaleString('en-US')} (entropy_from_logits), CPU float64 vs WebGPU float32`,
    columns: ['positions', 'logits', 'CPU ms', 'CPU ns/logit', 'WebGPU ms', 'WebGPU ns/logit', 'WebGPU speed-up over CPU', 'PyTorch ns/logit'],
    rows: [],
    notes: [],
  };
  const positions = opts.quick ? [16, 64] : [256, 1024, 2048];
  const torch = torchTimes(positions, opts.reps);
  const engine = await createEngine({ backend: 'auto' });
  try {
    section.notes.push(`backend: ${engine.backend} (${engine.reason})`);
    section.notes.push(
      'end to end per call: the CPU column converts float32 logits to float64 on the fly; the WebGPU column includes the upload of the logits (several storage bindings above ~220 positions) and the readback of one float per position',
    );
    for (const N of positions) {
      const z = logits(N);
      const shape = [1, N, V] as const;
      const cpuMs = await minTime(opts.reps, () => entropyFromLogits(z, shape));
      let gpuMs = Number.NaN;
      if (engine.gpu) {
        await entropyFromLogitsGpu(engine, z, shape); // pipeline compile + warm-up
        gpuMs = await minTime(opts.reps, () => entropyFromLogitsGpu(engine, z, shape));
      }
      const n = N * V;
      section.rows.push([
        N,
        n,
        cpuMs,
        (cpuMs * 1e6) / n,
        engine.gpu ? gpuMs : 'n/a',
        engine.gpu ? (gpuMs * 1e6) / n : 'n/a',
        engine.gpu ? cpuMs / gpuMs : 'n/a',
        torch.ms.has(N) ? ((torch.ms.get(N) as number) * 1e6) / n : 'n/a',
      ]);
    }
    if (!engine.gpu) section.notes.push('WebGPU columns skipped: no adapter');
    section.notes.push(torch.note);
    section.notes.push(`minimum over ${opts.reps} repetition(s); times vary ±30 % on shared machines, compare ratios within one run`);
  } finally {
    engine.destroy();
  }
  return section;
}
