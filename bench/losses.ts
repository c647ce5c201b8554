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
import { makeBenchBatch, type BenchBatch } from './data.js';
import type { BenchOptions, BenchSection } from './types.js';

const DAPO: PolicyLossConfig = { clipRatioLow: 0.2, clipRatioHigh: 0.28, clipRatioC: 3, lossAggMode: 'token-mean' };

function best(reps: number, f: () => void): number {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

async function bestAsync(reps: number, f: () => Promise<unknown>): Promise<number> {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

function yardstickMs(b: BenchBatch, reps: number): number {
  const src = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask];
  const dst = src.map((a) => new Float32Array(a.length).fill(1));
  return best(Math.max(3, reps), () => {
    for (let i = 0; i < 4; i++) (dst[i] as Float32Array).set(src[i] as Float32Array);
  });
}

/** Time the WebGPU columns for one batch (ms, minimum over reps). */
async function gpuColumns(e: Engine, b: BenchBatch, reps: number): Promise<{ e2e: number; upload: number; kernel: number; readback: number; resident: number }> {
  const gpu = e.gpu!;
  const dev = gpu.device;
  const n = b.B * b.T;
  const batch = { oldLogProbs: b.oldLogProbs, logProbs: b.logProbs, advantages: b.advantages, responseMask: b.responseMask, shape: [b.B, b.T] as const };
  const into = new Float32Array(n).fill(0);
  for (let w = 0; w < 8; w++) await e.policyLoss('vanilla', batch, DAPO, { gradInto: into }); // warm-up: pipelines, pool, Dawn staging, sleep estimate
  const e2e = await bestAsync(reps, () => e.policyLoss('vanilla', batch, DAPO, { gradInto: into }));

  // Upload alone: four upload-only buffers (kept), writeBuffer + wait.
  const ins = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask].map((a) =>
    dev.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST }),
  );
  const srcs = [b.oldLogProbs, b.logProbs, b.advantages, b.responseMask];
  const upload = await bestAsync(reps, async () => {
    srcs.forEach((a, i) => dev.queue.writeBuffer(ins[i] as GPUBuffer, 0, a.buffer, a.byteOffset, a.byteLength));
    await dev.queue.onSubmittedWorkDone();
  });

  // GPU-resident: inputs already on the GPU, row lengths known, gradient left in a GPU buffer.
  const lengths = new Float64Array(b.B);
  for (let i = 0; i < b.B; i++) {
    let s = 0;
    for (let j = 0; j < b.T; j++) s += b.responseMask[i * b.T + j] as number;
    lengths[i] = s;
  }
  const grad = dev.createBuffer({ size: Math.ceil((n * 4) / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
  const resBatch = { oldLogProbs: ins[0]!, logProbs: ins[1]!, advantages: ins[2]!, responseMask: ins[3]!, shape: [b.B, b.T] as const, rowLengths: lengths };
  for (let w = 0; w < 8; w++) await e.policyLossGpu('vanilla', resBatch, DAPO, { gradBuffer: grad });
  const resident = await bestAsync(reps, () => e.policyLossGpu('vanilla', resBatch, DAPO, { gradBuffer: grad }));

  // Kernel alone: the same token pass, GPU time from an empty-queue submit to completion, minus a no-op submit.
  const noop = await bestAsync(reps, async () => {
    dev.queue.submit([dev.createCommandEncoder().finish()]);
    await dev.queue.onSubmittedWorkDone();
  });
  const kernel = Math.max(0, resident - noop);

  // Read-back alone: gradient buffer → staging → host array.
  const staging = dev.createBuffer({ size: grad.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const readback = await bestAsync(reps, async () => {
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(grad, 0, staging, 0, grad.size);
    dev.queue.submit([enc.finish()]);
    await staging.mapAsync(MapMode.READ);
    into.set(new Float32Array(staging.getMappedRange(), 0, n));
    staging.unmap();
  });
  for (const x of [...ins, grad, staging]) x.destroy();
  return { e2e, upload, kernel, readback, resident };
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
      'readback ns/token',
      'resident ns/token',
      'e2e speed-up vs CPU',
      'CPU /yard',
      'e2e /yard',
      'upload /yard',
      'kernel /yard',
      'readback /yard',
      'resident /yard',
      'WebGPU Mtok/s',
      'CPU 2 threads ns/token',
      'CPU 2 threads speed-up vs CPU ref',
      'CPU 2 threads copy (ns per token)',
    ],
    rows: [],
    notes: [],
  };
  const engine = await createEngine({ backend: 'auto' });
  const par = createParallelPolicyLoss({ threads: 2 });
  section.notes.push(`engine: ${engine.backend} (${engine.reason})`);
  try {
    for (const k of opts.sizesLog2) {
      const b = makeBenchBatch(k);
      const n = b.B * b.T;
      const ns = (ms: number): number => (ms * 1e6) / n;
      const yard = yardstickMs(b, opts.reps);
      const cpuReps = opts.reps;
      const cpuBatch = { oldLogProbs: b.oldLogProbs, logProbs: b.logProbs, advantages: b.advantages, responseMask: b.responseMask, shape: [b.B, b.T] as const };
      const cpuGrad = new Float64Array(n);
      policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad }); // warm-up: the reference's scratch arrays and gradInto touched once
      const cpu = best(cpuReps, () => {
        policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
      });
      await par.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad }); // warm-up: workers started, staging grown
      let par2 = Infinity;
      let parCopy = 0;
      for (let r = 0; r < Math.max(3, opts.reps); r++) {
        const t = performance.now();
        await par.policyLoss('vanilla', cpuBatch, DAPO, { gradInto: cpuGrad });
        const dt = performance.now() - t;
        const tm = par.lastTimings;
        if (dt < par2) [par2, parCopy] = [dt, tm ? tm.copyInMs + tm.copyOutMs : 0];
      }
      const parCols = [ns(par2), cpu / par2, ns(parCopy)];
      if (engine.backend !== 'webgpu') {
        section.rows.push([`2^${k}`, ns(yard), ns(cpu), '-', '-', '-', '-', '-', '-', cpu / yard, '-', '-', '-', '-', '-', '-', ...parCols]);
        continue;
      }
      const g = await gpuColumns(engine, b, opts.reps);
      section.rows.push([
        `2^${k}`,
        ns(yard),
        ns(cpu),
        ns(g.e2e),
        ns(g.upload),
        ns(g.kernel),
        ns(g.readback),
        ns(g.resident),
        cpu / g.e2e,
        cpu / yard,
        g.e2e / yard,
        g.upload / yard,
        g.kernel / yard,
        g.readback / yard,
        g.resident / yard,
        n / g.e2e / 1e3,
        ...parCols,
      ]);
      engine.gpu?.pool.trim();
    }
  } finally {
    engine.destroy();
    await par.destroy();
  }
  section.notes.push(
    'yardstick: one copy of the four float32 inputs (TypedArray.set into pre-touched arrays), i.e. reading 16 B/token once; "/yard" = column time ÷ yardstick time, same run',
    'CPU ref: policyLoss (float64 reference reading the float32 inputs in place) with gradInto (a reused Float64Array, as a training loop would pass) after one warm-up call',
    'CPU 2 threads: createParallelPolicyLoss({ threads: 2 }) (main thread + 1 worker, SharedArrayBuffer staging, same gradInto), minimum of max(3, reps); copy = copying the worker\'s inputs in and its gradient out, on the main thread',
    'e2e: engine.policyLoss on host Float32Arrays with gradInto (a reused output array): validation + row lengths + upload + kernel + partial sums + gradient read-back',
    'resident: engine.policyLossGpu on GPUBuffer inputs with rowLengths and a caller gradBuffer (the gradient never leaves the GPU); kernel = resident − an empty submit round trip',
    'upload: queue.writeBuffer of the four inputs into upload-only buffers + onSubmittedWorkDone; readback: gradient buffer → staging → mapAsync → copy into a host array',
  );
  return section;
}
