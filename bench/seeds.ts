/**
 * The seed's three strategies (`presets`: dapo = eighty-twenty 0.2/0.28 token-mean, gspo 3e-4/4e-4
 * seq-mean-token-mean, sapo τ 1.05/1.00 token-mean) on one shared batch: the CPU reference, the two-thread path
 * (where it has the mode, else the reference) and the WebGPU engine end to end, timed interleaved rep by rep.
 * The entropies eighty-twenty reads are quantised to 1/100, so its top-k cut has ties.
 */
import { createEngine, policyLoss, presets, STRATEGY_NAMES } from '../src/index.js';
import { createParallelPolicyLoss } from '../src/losses/parallel.js';
import { makeBenchBatch } from './data.js';
import type { BenchOptions, BenchSection } from './types.js';

/** The bench section (see the module comment). */
export async function run(opts: BenchOptions): Promise<BenchSection> {
  const log2 = opts.quick ? 14 : 23;
  const section: BenchSection = {
    title: `The seed's strategies at 2^${log2} tokens: loss + gradient + metrics, ns/token`,
    columns: ['strategy', 'loss mode', 'CPU ref', 'CPU 2 threads', 'WebGPU e2e', 'WebGPU speed-up vs CPU ref'],
    rows: [],
    notes: [],
  };
  const b = makeBenchBatch(log2);
  const n = b.B * b.T;
  const entropy = new Float32Array(n);
  let s = 12345;
  for (let k = 0; k < n; k++) entropy[k] = ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 1000) / 100;
  const batch = { oldLogProbs: b.oldLogProbs, logProbs: b.logProbs, advantages: b.advantages, responseMask: b.responseMask, entropy, shape: [b.B, b.T] as const };
  const engine = await createEngine({ backend: 'auto' });
  const par = createParallelPolicyLoss({ threads: 2 });
  const cpuGrad = new Float64Array(n);
  const gpuGrad = new Float32Array(n);
  const ns = (ms: number): number => (ms * 1e6) / n;
  const reps = Math.max(5, opts.reps);
  try {
    for (const name of STRATEGY_NAMES) {
      const p = presets[name];
      const cfg = p.policyLoss;
      // JIT and pipelines warm, the workers started
      for (let w = 0; w < 4; w++) {
        policyLoss(p.lossMode, batch, cfg, { gradInto: cpuGrad });
        await par.policyLoss(p.lossMode, batch, cfg, { gradInto: cpuGrad });
        await engine.policyLoss(p.lossMode, batch, cfg, { gradInto: gpuGrad });
      }
      let [cpu, two, gpu] = [Infinity, Infinity, Infinity];
      for (let r = 0; r < reps; r++) {
        let t = performance.now();
        policyLoss(p.lossMode, batch, cfg, { gradInto: cpuGrad });
        cpu = Math.min(cpu, performance.now() - t);
        t = performance.now();
        await par.policyLoss(p.lossMode, batch, cfg, { gradInto: cpuGrad });
        two = Math.min(two, performance.now() - t);
        t = performance.now();
        await engine.policyLoss(p.lossMode, batch, cfg, { gradInto: gpuGrad });
        gpu = Math.min(gpu, performance.now() - t);
      }
      section.rows.push([name, p.lossMode, ns(cpu), ns(two), engine.backend === 'webgpu' ? ns(gpu) : '-', engine.backend === 'webgpu' ? cpu / gpu : '-']);
    }
  } finally {
    engine.destroy();
    await par.destroy();
  }
  section.notes.push(
    `engine: ${engine.backend} (${engine.reason})`,
    'CPU 2 threads: createParallelPolicyLoss({ threads: 2 }) (it runs vanilla, eighty-twenty, sapo, gspo, cispo, gpg, geo_mean and kl_cov)',
    `minimum of ${reps} interleaved repetitions each, after four warm-up calls of every path (the workers JIT their own copy of the kernel)`,
  );
  return section;
}
