/**
 * Seeded randomness: one small generator for everything in lumirag-rl that must be reproducible from a seed
 * (clip_cov's subset, the filler's resampling, the demo). 32-bit integer arithmetic only, so every platform gives
 * the same stream.
 *
 * @module
 */

/** A uniform source in [0, 1). */
export type UniformRng = () => number;

/** mulberry32: a small, fast 32-bit seeded generator of floats in [0, 1). */
export function mulberry32(seed: number): UniformRng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** mulberry32 on a seed first mixed by splitmix32, so nearby seeds (0, 1, 2 …) give unrelated streams. */
export function seededRng(seed: number): UniformRng {
  let s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
  s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
  s = (s ^ (s >>> 16)) >>> 0;
  return mulberry32(s);
}

/** Fisher–Yates shuffle of a copy of `xs`. */
export function shuffled<T>(xs: readonly T[], rng: UniformRng): T[] {
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = out[i] as T;
    out[i] = out[j] as T;
    out[j] = tmp;
  }
  return out;
}
