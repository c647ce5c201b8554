/**
 * DAPO vanilla loss + gradient + metrics: the float64 CPU reference against the WebGPU engine, on the same
 * float32 batches (bench/data.ts), with every WebGPU column split (upload / kernel / read-back), end to end, and
 * GPU-resident, each also as a ratio to a memory-bandwidth yardstick measured in the same run.
 *
 * Yardstick: the time to copy the batch's four float32 inputs once (`TypedArray.set` into arrays allocated and
 * touched beforehand), i.e. reading 16 bytes per token once.
 */
import { createEngine, type Engine, policyLoss, type PolicyLossConfig } from '../src/index.js';
import { BufferUsage, MapMode } from '../src/gpu/index.js';
import { createParallelPolicyLoss } from '../src/losses/parallel.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBenchBatch, type BenchBatch, writeBenchBatch } from './data.js';
import { startTorch } from './torchWorker.js';

/** Pause after each PyTorch repetition before timing anything else (see the interleaved loop). */
const TORCH_SETTLE_MS = 150;
import type { BenchOptions, BenchSection } from './types.js';

const DAPO: PolicyLossConfig = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3, lossAggMode: 'token-mean' };

async function bestAsync(reps: number, f: () => Promise<unknown>): Promise<number> {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

/** GPU-resident inputs for one batch: the four inputs in upload-only buffers, row lengths known, a gradient buffer. */
interface Resident {
  ins: GPUBuffer[];
  grad: GPUBuffer;
  /** One GPU-resident call (the gradient stays on the GPU). */
  call: () => Promise<unknown>;
}

function residentBatch(e: Engine, b: BenchBatch): Resident {
  const dev = e.gpu!.device;
  const n = b.B * b.T;
  const ins = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask].map((a) =>
    dev.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST }),
  );
  [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask].forEach((a, i) => dev.queue.writeBuffer(ins[i] as GPUBuffer, 0, a.buffer, a.byteOffset, a.byteLength));
  const lengths = new Float64Array(b.B);
  for (let i = 0; i < b.B; i++) {
    let s = 0;
    for (let j = 0; j < b.T; j++) s += b.responseMask[i * b.T + j] as number;
    lengths[i] = s;
  }
  const grad = dev.createBuffer({ size: Math.ceil((n * 4) / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
  const batch = { oldLogProbs: ins[0]!, logProbs: ins[1]!, advantages: ins[2]!, responseMask: ins[3]!, shape: [b.B, b.T] as const, rowLengths: lengths };
  return { ins, grad, call: () => e.policyLossGpu('vanilla', batch, DAPO, { gradBuffer: grad }) };
}

/**
 * Time the WebGPU diagnostic columns for one batch (ms, minimum over reps): upload alone, the no-op submit round
 * trip (kernel = resident − it) and read-back alone. The resident call itself is timed in the interleaved loop.
 */
async function gpuColumns(e: Engine, b: BenchBatch, res: Resident, reps: number, into: Float32Array): Promise<{ upload: number; noop: number; readback: number }> {
  const dev = e.gpu!.device;
  const n = b.B * b.T;
  const srcs = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask];
  // Upload alone: writeBuffer of the four inputs into the (upload-only) resident buffers + wait.
  const upload = await bestAsync(reps, async () => {
    srcs.forEach((a, i) => dev.queue.writeBuffer(res.ins[i] as GPUBuffer, 0, a.buffer, a.byteOffset, a.byteLength));
    await dev.queue.onSubmittedWorkDone();
  });
  // An empty-queue submit round trip (subtracted from the resident call to give the kernel).
  const noop = await bestAsync(reps, async () => {
    dev.queue.submit([dev.createCommandEncoder().finish()]);
    await dev.queue.onSubmittedWorkDone();
  });
  // Read-back alone: gradient buffer → staging → host array.
  const staging = dev.createBuffer({ size: res.grad.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const readback = await bestAsync(reps, async () => {
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(res.grad, 0, staging, 0, res.grad.size);
    dev.queue.submit([enc.finish()]);
    await staging.mapAsync(MapMode.READ);
    into.set(new Float32Array(staging.getMappedRange(), 0, n));
    staging.unmap();
  });
  staging.destroy();
  return { upload, noop, readback };
}

/** The bench section (see the module comment). */
export async function run(opts: BenchOptions): Promise<BenchSection> {
  const section: BenchSection = {
    title: 'Policy loss (DAPO vanilla, token-mean) + gradient + metrics: CPU reference vs WebGPU',
    columns: [
      'tokens',
      'yardstick ns/token',
      'CPU ref ns/token',
      'WebGPU e2e ns/token',
      'upload ns/token',
      'kernel ns/token',
      'kernel GPU time ns/token',
      'readback ns/token',
      'resident ns/token',
      'e2e speed-up vs CPU',
      'CPU /yard',
      'e2e /yard',
      'upload /yard',
      'kernel /yard',
      'kernel GPU time /yard',
      'readback /yard',
      'resident /yard',
      'WebGPU Mtok/s',
      'CPU 2 threads ns/token',
      'CPU 2 threads speed-up vs CPU ref',
      'CPU 2 threads copy (ns per token)',
      'PyTorch ns/token',
    ],
    rows: [],
    notes: [],
  };
  const engine = await createEngine({ backend: 'auto' });
  const par = createParallelPolicyLoss({ threads: 2 });
  section.notes.push(`engine: ${engine.backend} (${engine.reason})`);
  const { worker: torch, why: noTorch } = opts.torch ? await startTorch() : { worker: null, why: 'not requested (--only without torch)' };
  const dataDir = torch ? mkdtempSync(join(tmpdir(), 'lumirag-bench-')) : null;
  try {
    for (const k of opts.sizesLog2) {
      const b = makeBenchBatch(k);
      const n = b.B * b.T;
      const ns = (ms: number): number => (ms * 1e6) / n;
      const reps = Math.max(7, opts.reps);
      const cpuBatch = { oldLogProbs: b.oldLogProbs, logProbs: b.logProbs, advantages: b.advantages, responseMask: b.responseMask, shape: [b.B, b.T] as const };
      const cpuGrad = new Float64Array(n);
      const gpuGrad = new Float32Array(n).fill(0);
      const gpuOn = engine.backend === 'webgpu';
      const key = String(k);
      if (torch && dataDir) {
        writeBenchBatch(join(dataDir, key), b); // PyTorch reads the same bytes
        await torch.load(key, join(dataDir, key));
      }

      // Warm-up. JIT: the reference on a 2^14-token slice 30 times (a training loop calls it every step; measuring
      // its first calls would time V8's tiers, not the code), then every path once or more at full size
      // (the reference's gradInto touched, the workers started and their staging grown, the GPU pipelines, buffer
      // pool and Dawn's staging).
      const rows = Math.max(1, Math.min(b.B, Math.floor(2 ** 14 / b.T)));
      const slice = { oldLogProbs: b.oldLogProbs.subarray(0, rows * b.T), logProbs: b.logProbs.subarray(0, rows * b.T), advantages: b.advantages.subarray(0, rows * b.T), responseMask: b.responseMask.subarray(0, rows * b.T), shape: [rows, b.T] as const };
      for (let w = 0; w < 30; w++) policyLoss('vanilla', slice, DAPO);
      policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
      await par.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
      const res = gpuOn ? residentBatch(engine, b) : null;
      if (gpuOn) for (let w = 0; w < 8; w++) await engine.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: gpuGrad });
      if (res) for (let w = 0; w < 8; w++) await res.call();

      // The headline columns, interleaved rep by rep so that a slow spell of this shared machine hits them alike.
      const srcs = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask];
      const dsts = srcs.map((a) => new Float32Array(a.length).fill(1));
      let [yard, cpu, par2, parCopy, e2e, resident, gpuTime, torchMs] = [Infinity, Infinity, Infinity, 0, Infinity, Infinity, Infinity, Infinity];
      const gpu = engine.gpu;
      const timed = gpu?.canProfile === true;
      for (let r = 0; r < reps; r++) {
        let t = performance.now();
        for (let i = 0; i < 4; i++) (dsts[i] as Float32Array).set(srcs[i] as Float32Array);
        yard = Math.min(yard, performance.now() - t);
        t = performance.now();
        policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
        cpu = Math.min(cpu, performance.now() - t);
        t = performance.now();
        await par.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
        const dt = performance.now() - t;
        const tm = par.lastTimings;
        if (dt < par2) [par2, parCopy] = [dt, tm ? tm.copyInMs + tm.copyOutMs : 0];
        if (gpuOn) {
          t = performance.now();
          await engine.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: gpuGrad });
          e2e = Math.min(e2e, performance.now() - t);
        }
        if (res) {
          if (timed) gpu?.profileStart(); // timestamp queries on the resident call's passes: the kernels' GPU time
          t = performance.now();
          await res.call();
          resident = Math.min(resident, performance.now() - t);
          if (timed && gpu) gpuTime = Math.min(gpuTime, (await gpu.profileStop()).ns / 1e6);
        }
        if (torch) {
          torchMs = Math.min(torchMs, await torch.run(key));
          // PyTorch's OpenMP threads spin on after a rep (here ~20 ms of CPU in the next 50 ms): let them settle
          // so they do not slow the column timed next.
          await new Promise((r) => setTimeout(r, TORCH_SETTLE_MS));
        }
      }
      if (torch) await torch.drop(key);
      const parCols = [ns(par2), cpu / par2, ns(parCopy), torch ? ns(torchMs) : '-'];
      if (!gpuOn) {
        section.rows.push([`2^${k}`, ns(yard), ns(cpu), '-', '-', '-', '-', '-', '-', '-', cpu / yard, '-', '-', '-', '-', '-', '-', '-', ...parCols]);
        continue;
      }
      const g0 = await gpuColumns(engine, b, res as Resident, reps, gpuGrad);
      for (const x of [...(res as Resident).ins, (res as Resident).grad]) x.destroy();
      const g = { ...g0, resident, kernel: Math.max(0, resident - g0.noop) };
      section.rows.push([
        `2^${k}`,
        ns(yard),
        ns(cpu),
        ns(e2e),
        ns(g.upload),
        ns(g.kernel),
        timed ? ns(gpuTime) : '-',
        ns(g.readback),
        ns(g.resident),
        cpu / e2e,
        cpu / yard,
        e2e / yard,
        g.upload / yard,
        g.kernel / yard,
        timed ? gpuTime / yard : '-',
        g.readback / yard,
        g.resident / yard,
        n / e2e / 1e3,
        ...parCols,
      ]);
      engine.gpu?.pool.trim();
    }
  } finally {
    engine.destroy();
    await par.destroy();
    await torch?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  section.notes.push(torch ? `PyTorch: verl's vanilla formulation (bench/torch_baseline.py --serve), ${torch.description}; one rep of it after each rep of ours` : `PyTorch: ${noTorch}`);
  section.notes.push(
    'yardstick: one copy of the four float32 inputs (TypedArray.set into pre-touched arrays), i.e. reading 16 B/token once; "/yard" = column time ÷ yardstick time, same run',
    'CPU ref: policyLoss (float64 reference reading the float32 inputs in place, one thread) with gradInto (a reused Float64Array, as a training loop would pass), after 30 JIT warm-up calls on a 2^14-token slice and one at full size',
    'CPU 2 threads: createParallelPolicyLoss({ threads: 2 }) (main thread + 1 worker, SharedArrayBuffer staging, same gradInto); copy = copying the worker\'s inputs in and its gradient out, on the main thread',
    'e2e: engine.policyLoss on host Float32Arrays with gradInto (a reused output array): validation + row lengths + upload + kernel + partial sums + gradient read-back',
    'resident: engine.policyLossGpu on GPUBuffer inputs with rowLengths and a caller gradBuffer (the gradient never leaves the GPU); kernel = resident − an empty submit round trip; kernel GPU time = the resident call\'s compute passes timed by timestamp queries (GpuContext.profileStart/profileStop: GPU time only, no submit, wait or read-back)',
    'yardstick, CPU ref, CPU 2 threads, WebGPU e2e, resident and PyTorch are timed interleaved, rep by rep (minimum of max(7, reps) each), so a slow spell of the machine hits them alike (after each PyTorch rep the bench waits 150 ms: its OpenMP threads spin on for a while); upload, readback and the no-op round trip follow, same reps',
    'upload: queue.writeBuffer of the four inputs into upload-only buffers + onSubmittedWorkDone; readback: gradient buffer → staging → mapAsync → copy into a host array',
  );
  return section;
}
