/**
 * verl's PyTorch formulation as a long-lived `python3 bench/torch_baseline.py --serve` process, so bench/losses.ts
 * can interleave PyTorch's repetitions with its own (one rep of each column in turn): a slow spell of this shared
 * machine then hits every column alike, and the ratios compare like with like. 2 threads, jemalloc preloaded with
 * page decay off (PyTorch at its best here).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** A python3 that has torch: $LUMIRAG_BENCH_PYTHON, then python3 on PATH, then Debian's /usr/bin/python3. */
export function findTorchPython(): string | null {
  const candidates = [process.env.LUMIRAG_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

/** Debian's libjemalloc2, when installed. */
export function findJemalloc(): string | null {
  for (const p of ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib/libjemalloc.so.2']) {
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * The environment PyTorch runs in: 2 OpenMP threads, and jemalloc with page decay off, which keeps torch's freed
 * temporaries mapped so repeated calls do not page-fault (with glibc malloc, or jemalloc's default decay, 2^23
 * tokens cost ~20x more here).
 */
export function torchEnv(jemalloc: string | null): NodeJS.ProcessEnv {
  return { ...process.env, OMP_NUM_THREADS: '2', ...(jemalloc ? { LD_PRELOAD: jemalloc, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' } : {}) };
}

/** The serving PyTorch process. */
export interface TorchWorker {
  /** torch version, threads, python and allocator, for the notes. */
  readonly description: string;
  /** Load a batch written by `writeBenchBatch` under `key` (and run it once to warm the allocator). */
  load(key: string, dir: string): Promise<void>;
  /** One timed repetition of the batch `key`: milliseconds. */
  run(key: string): Promise<number>;
  /** Forget the batch `key`. */
  drop(key: string): Promise<void>;
  /** End the process. */
  close(): Promise<void>;
}

/** Start the PyTorch worker, or null (with the reason) when python3 has no torch. */
export async function startTorch(): Promise<{ worker: TorchWorker | null; why: string }> {
  const py = findTorchPython();
  if (!py) return { worker: null, why: 'skipped: no python3 with torch (Debian: apt-get install python3-torch libjemalloc2)' };
  const jemalloc = findJemalloc();
  const child: ChildProcessWithoutNullStreams = spawn(py, [join(here, 'torch_baseline.py'), '--serve', '--threads', '2'], { env: torchEnv(jemalloc) });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const ask = (cmd: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error(`torch_baseline.py exited: ${stderr.slice(-500)}`));
      child.once('exit', onExit);
      waiting.push((line) => {
        child.off('exit', onExit);
        const r = JSON.parse(line) as Record<string, unknown>;
        if (r.error) reject(new Error(String(r.error)));
        else resolve(r);
      });
      child.stdin.write(`${cmd}\n`);
    });
  let version = '?';
  let threads = 2;
  const worker: TorchWorker = {
    get description() {
      return `torch ${version}, ${threads} threads, ${jemalloc ? 'jemalloc preloaded with page decay off (its best here)' : 'glibc malloc (libjemalloc2 not found: slower, flatters us)'}, ${py}`;
    },
    async load(key, dir) {
      const r = await ask(`load ${key} ${dir}`);
      version = String(r.torch ?? version);
      threads = Number(r.threads ?? threads);
    },
    async run(key) {
      return Number((await ask(`run ${key}`)).ms);
    },
    async drop(key) {
      await ask(`drop ${key}`);
    },
    async close() {
      const done = new Promise((r) => child.once('exit', r));
      child.stdin.write('quit\n');
      child.stdin.end();
      await done;
    },
  };
  return { worker, why: '' };
}
