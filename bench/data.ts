/**
 * The benchmark's data: one deterministic DAPO-shaped batch per size, shared by every column (lumirag-rl CPU,
 * WebGPU, and verl's PyTorch formulation, which reads the same bytes from files) so the ratios compare like with like.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A `[B, T]` batch in float32 (what a GPU training stack holds) with float64 views made on demand. */
export interface BenchBatch {
  B: number;
  T: number;
  oldLogProbs: Float32Array;
  logProbs: Float32Array;
  advantages: Float32Array;
  responseMask: Float32Array;
}

/** Row width used by every size (2^k tokens = 2^k / T rows). */
export const BENCH_T = 1024;

/** A deterministic batch of 2^log2 tokens: per-sequence advantages, small log-ratios, right-padded masks. */
export function makeBenchBatch(log2: number, seed = 1): BenchBatch {
  const n = 2 ** log2;
  const T = Math.min(BENCH_T, n);
  const B = n / T;
  let s = (seed * 2654435761) >>> 0;
  const rnd = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const oldLogProbs = new Float32Array(n);
  const logProbs = new Float32Array(n);
  const advantages = new Float32Array(n);
  const responseMask = new Float32Array(n);
  for (let i = 0; i < B; i++) {
    const a = (rnd() - 0.5) * 2;
    const len = Math.floor(T / 2 + rnd() * (T / 2 + 1));
    for (let j = 0; j < T; j++) {
      const k = i * T + j;
      const o = -rnd() * 3;
      oldLogProbs[k] = o;
      logProbs[k] = o + (rnd() - 0.5) * 0.6;
      advantages[k] = a;
      responseMask[k] = j < len ? 1 : 0;
    }
  }
  return { B, T, oldLogProbs, logProbs, advantages, responseMask };
}

/** Write a batch as raw little-endian float32 files (+ shape.json) for the PyTorch baseline. */
export function writeBenchBatch(dir: string, batch: BenchBatch): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'shape.json'), JSON.stringify({ B: batch.B, T: batch.T }));
  for (const name of ['oldLogProbs', 'logProbs', 'advantages', 'responseMask'] as const) {
    const a = batch[name];
    writeFileSync(join(dir, `${name}.f32`), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
}
