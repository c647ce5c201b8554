/**
 * Entropy throughput at Qwen's vocabulary (V = 152,064): verl's `entropy_from_logits` on the float64 CPU
 * reference and on WebGPU (shaders/entropy.wgsl, online log-sum-exp, one workgroup per position), same float32
 * logits, same run. Reported per logit, since the work is B·T·V.
 */
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
    columns: ['positions', 'logits', 'CPU ms', 'CPU ns/logit', 'WebGPU ms', 'WebGPU ns/logit', 'speed-up'],
    rows: [],
    notes: [],
  };
  const positions = opts.quick ? [16, 64] : [256, 1024, 2048];
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
      ]);
    }
    if (!engine.gpu) section.notes.push('WebGPU columns skipped: no adapter');
    section.notes.push(`minimum over ${opts.reps} repetition(s); times vary ±30 % on shared machines, compare ratios within one run`);
  } finally {
    engine.destroy();
  }
  return section;
}
