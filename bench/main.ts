/**
 * `npm run bench`: one run, same data, every column. Sections: the DAPO loss + gradient + metrics on lumirag-rl
 * CPU and WebGPU (bench/losses.ts), verl's own formulation in PyTorch on CPU (bench/torch_baseline.py, 2 threads,
 * jemalloc preloaded), the entropy kernel (bench/entropy.ts) and the reward bridge (bench/bridge.ts).
 *
 *   npm run bench -- [--sizes 16,20,23,24] [--reps 3] [--quick] [--json out.json] [--only losses,torch,seeds,entropy,bridge]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBenchBatch, writeBenchBatch } from './data.js';
import { findJemalloc, findTorchPython, torchEnv } from './torchWorker.js';
import type { BenchOptions, BenchSection } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const quick = process.argv.includes('--quick');
const opts: BenchOptions = {
  sizesLog2: (arg('sizes') ?? (quick ? '12,14' : '16,20,23,24')).split(',').map(Number),
  reps: Number(arg('reps') ?? (quick ? 1 : 3)),
  quick,
};
const only = arg('only')?.split(',');
const want = (name: string): boolean => !only || only.includes(name);
opts.torch = want('torch');
/**
 * verl's vanilla formulation (ppo_kl, dual-clip, metrics, autograd) in PyTorch on the same batches, run on its own:
 * used when the losses section does not run (with it, PyTorch is interleaved there and this table is derived).
 */
async function torchSection(yard: Map<string, number>): Promise<BenchSection> {
  const section: BenchSection = {
    title: "verl's vanilla policy loss in PyTorch (CPU, float32, loss + backward + metrics .item())",
    columns: ['tokens', 'ns/token', 'Mtokens/s', 'ratio to read-once yardstick'],
    rows: [],
    notes: [],
  };
  const py = findTorchPython();
  if (!py) {
    section.notes.push('skipped: no python3 with torch (Debian: apt-get install python3-torch libjemalloc2)');
    return section;
  }
  const jemalloc = findJemalloc();
  const dir = mkdtempSync(join(tmpdir(), 'lumirag-bench-'));
  try {
    for (const k of opts.sizesLog2) writeBenchBatch(join(dir, String(k)), makeBenchBatch(k));
    const out = execFileSync(
      py,
      [join(here, 'torch_baseline.py'), '--sizes', opts.sizesLog2.join(','), '--reps', String(Math.max(7, opts.reps)), '--threads', '2', '--data', dir],
      {
        encoding: 'utf8',
        env: torchEnv(jemalloc), // PyTorch at its best here (see torchWorker.ts)
        maxBuffer: 1 << 24,
      },
    );
    for (const line of out.trim().split('\n')) {
      const r = JSON.parse(line) as { log2: number; tokens: number; ns_per_token: number; torch: string };
      const label = `2^${r.log2}`;
      const y = yard.get(label) ?? yardstickNsPerToken(r.log2);
      section.rows.push([label, r.ns_per_token, 1e3 / r.ns_per_token, r.ns_per_token / y]);
      if (section.notes.length === 0) section.notes.push(`torch ${r.torch}, 2 threads, ${jemalloc ? 'jemalloc preloaded with page decay off (its best here)' : 'glibc malloc (libjemalloc2 not found: slower, flatters us)'}, ${py}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return section;
}

const yardsticks = new Map<number, number>();
/**
 * The memory-bandwidth yardstick when the losses section did not run: ns per token to copy the batch's four
 * float32 inputs once (`TypedArray.set` into touched arrays), the same definition as bench/losses.ts.
 */
function yardstickNsPerToken(log2: number): number {
  const cached = yardsticks.get(log2);
  if (cached !== undefined) return cached;
  const b = makeBenchBatch(log2);
  const src = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask];
  const dst = src.map((a) => new Float32Array(a.length).fill(1));
  let best = Infinity;
  for (let rep = 0; rep < Math.max(3, opts.reps); rep++) {
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) (dst[i] as Float32Array).set(src[i] as Float32Array);
    best = Math.min(best, performance.now() - t0);
  }
  const ns = (best * 1e6) / 2 ** log2;
  yardsticks.set(log2, ns);
  return ns;
}

function fmt(v: string | number): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 1 ? v.toPrecision(3) : v.toPrecision(2);
}

function printSection(s: BenchSection): void {
  const cells = [s.columns, ...s.rows.map((r) => r.map(fmt))];
  const widths = s.columns.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  process.stdout.write(`\n## ${s.title}\n\n`);
  const line = (r: string[]): string => `| ${r.map((x, c) => x.padEnd(widths[c] ?? 0)).join(' | ')} |\n`;
  process.stdout.write(line(s.columns));
  process.stdout.write(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const r of cells.slice(1)) process.stdout.write(line(r));
  for (const n of s.notes) process.stdout.write(`\n- ${n}`);
  process.stdout.write('\n');
}

async function section(name: string, file: string): Promise<BenchSection | null> {
  if (!want(name)) return null;
  if (!existsSync(join(here, file))) {
    return { title: name, columns: [], rows: [], notes: [`skipped: bench/${file} is not present`] };
  }
  const mod = (await import(`./${file.replace(/\.ts$/, '.js')}`)) as { run: (o: BenchOptions) => Promise<BenchSection> };
  return mod.run(opts);
}

async function main(): Promise<void> {
  process.stdout.write(
    `# lumirag-rl bench — ${new Date().toISOString()}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}\n` +
      `sizes ${opts.sizesLog2.map((k) => `2^${k}`).join(', ')}; minimum over ${opts.reps} repetitions; ratios are from this one run\n`,
  );
  const sections: BenchSection[] = [];
  const add = (s: BenchSection | null): void => {
    if (!s) return;
    sections.push(s);
    printSection(s);
  };
  const losses = await section('losses', 'losses.ts');
  add(losses);
  const yard = new Map<string, number>();
  const yi = losses?.columns.indexOf('yardstick ns/token') ?? -1;
  if (losses && yi >= 0) for (const r of losses.rows) yard.set(String(r[0]), Number(r[yi]));
  if (want('torch')) add(losses ? torchFromLosses(losses) : await torchSection(yard));
  if (want('losses') && want('torch')) add(comparison(sections));
  add(await section('seeds', 'seeds.ts'));
  add(await section('entropy', 'entropy.ts'));
  add(await section('bridge', 'bridge.ts'));
  const json = arg('json');
  if (json) writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), options: opts, sections }, null, 1));
}

/** The PyTorch table from the losses section's interleaved PyTorch column (ns/token, Mtokens/s, ÷ yardstick). */
function torchFromLosses(losses: BenchSection): BenchSection {
  const section: BenchSection = {
    title: "verl's vanilla policy loss in PyTorch (CPU, float32, loss + backward + metrics .item())",
    columns: ['tokens', 'ns/token', 'Mtokens/s', 'ratio to read-once yardstick'],
    rows: [],
    notes: losses.notes.filter((n) => n.startsWith('PyTorch:')),
  };
  const ti = losses.columns.indexOf('PyTorch ns/token');
  const yi = losses.columns.indexOf('yardstick ns/token');
  for (const r of losses.rows) {
    const t = r[ti];
    if (typeof t === 'number') section.rows.push([r[0] as string, t, 1e3 / t, t / (r[yi] as number)]);
  }
  section.notes.push('timed interleaved with the lumirag-rl columns (one repetition of each in turn), minimum over the same repetitions');
  return section;
}

/** Speed-ups of each lumirag-rl column over the PyTorch baseline, per size (columns named "... ns/token"). */
function comparison(sections: BenchSection[]): BenchSection | null {
  const ours = sections[0];
  const torch = sections.find((s) => s.title.startsWith("verl's vanilla"));
  if (!ours || !torch || torch.rows.length === 0) return null;
  const nsCols = ours.columns.map((c, i) => [c, i] as const).filter(([c]) => /ns\/token/.test(c) && !/yardstick|upload|readback|PyTorch/.test(c));
  const out: BenchSection = {
    title: 'Speed-up over verl\'s PyTorch formulation (same data, same run; > 1 = lumirag-rl faster)',
    columns: ['tokens', ...nsCols.map(([c]) => c.replace(/\s*ns\/token/, ''))],
    rows: [],
    notes: [],
  };
  for (const row of torch.rows) {
    const ourRow = ours.rows.find((r) => r[0] === row[0]);
    if (!ourRow) continue;
    out.rows.push([row[0] as string, ...nsCols.map(([, i]) => (row[1] as number) / (ourRow[i] as number))]);
  }
  return out;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
