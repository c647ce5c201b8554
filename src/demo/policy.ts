/**
 * The demo's policy: a tiny autoregressive MLP over a token vocabulary, with its forward pass, sampling,
 * the chain rule from d loss / d log-prob into its parameters, and an Adam optimiser. Small enough to train
 * in seconds on two cores; real enough that every part of the RL step is exercised.
 *
 * At response position t the input is one-hot(a) ⊕ one-hot(b) ⊕ one-hot(t) ⊕ one-hot(previous token), the hidden
 * layer is tanh(W1·x + b1), and the logits are W2·h + b2.
 *
 * @module
 */

import type { UniformRng as Rng } from '../random.js';

/** Sizes of the policy. */
export interface PolicyShape {
  /** Number of distinct operand values (operands are 0..operands-1). */
  operands: number;
  /** Maximum response length (positions). */
  maxLen: number;
  /** Vocabulary size (the last id is EOS). */
  vocab: number;
  /** Hidden width. */
  hidden: number;
}

/** One sampled response with what the RL step needs from the sampling pass. */
export interface Sample {
  tokens: number[];
  /** log π_old(y_t) of each sampled token. */
  logProbs: number[];
  /** Entropy of the next-token distribution at each position. */
  entropy: number[];
  /** Whether the response ended with EOS (else it hit maxLen). */
  finished: boolean;
}

/** Per-position forward results kept for the backward pass. */
interface StepCache {
  x: Int32Array; // indices of the 4 active one-hot features
  h: Float64Array;
  p: Float64Array;
}

/** The MLP policy. Parameters are plain Float64Arrays; {@link Adam} updates them in place. */
export class MlpPolicy {
  readonly shape: PolicyShape;
  readonly features: number;
  readonly w1: Float64Array;
  readonly b1: Float64Array;
  readonly w2: Float64Array;
  readonly b2: Float64Array;

  /**
   * @param shape - sizes
   * @param rng - seeded initialisation
   * @param eosPrior - logit bonus for EOS after the first position: the "format prior" a pretrained model
   *   would bring (it tends to stop after a short answer); the task itself must still be learnt
   */
  constructor(shape: PolicyShape, rng: Rng, eosPrior = 2.5) {
    this.shape = shape;
    const { operands, maxLen, vocab, hidden } = shape;
    this.features = 2 * operands + maxLen + vocab + 1;
    this.w1 = new Float64Array(hidden * this.features);
    this.b1 = new Float64Array(hidden);
    this.w2 = new Float64Array(vocab * hidden);
    this.b2 = new Float64Array(vocab);
    const s1 = 1 / Math.sqrt(4);
    for (let k = 0; k < this.w1.length; k++) this.w1[k] = (rng() * 2 - 1) * s1;
    const s2 = 0.5 / Math.sqrt(hidden);
    for (let k = 0; k < this.w2.length; k++) this.w2[k] = (rng() * 2 - 1) * s2;
    // The format prior lives in the hidden layer: one unit fires after position 0 and votes for EOS.
    const eos = vocab - 1;
    for (let t = 1; t < maxLen; t++) this.w1[0 * this.features + 2 * operands + t] = 2;
    this.w2[eos * hidden + 0] = eosPrior / Math.tanh(2);
    this.b2[eos] = -1;
  }

  /** The parameter arrays, in a fixed order (for the optimiser). */
  params(): Float64Array[] {
    return [this.w1, this.b1, this.w2, this.b2];
  }

  private active(a: number, b: number, t: number, prev: number): Int32Array {
    const { operands, maxLen } = this.shape;
    return Int32Array.of(a, operands + b, 2 * operands + t, 2 * operands + maxLen + prev);
  }

  /** Next-token distribution at position t given operands and the previous token (vocab = BOS). */
  private step(a: number, b: number, t: number, prev: number): StepCache {
    const { hidden, vocab } = this.shape;
    const F = this.features;
    const x = this.active(a, b, t, prev);
    const h = new Float64Array(hidden);
    for (let j = 0; j < hidden; j++) {
      const row = j * F;
      h[j] = Math.tanh((this.b1[j] as number) + (this.w1[row + (x[0] as number)] as number) + (this.w1[row + (x[1] as number)] as number)
        + (this.w1[row + (x[2] as number)] as number) + (this.w1[row + (x[3] as number)] as number));
    }
    const p = new Float64Array(vocab);
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let z = this.b2[v] as number;
      for (let j = 0; j < hidden; j++) z += (this.w2[v * hidden + j] as number) * (h[j] as number);
      p[v] = z;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let v = 0; v < vocab; v++) {
      const e = Math.exp((p[v] as number) - max);
      p[v] = e;
      sum += e;
    }
    for (let v = 0; v < vocab; v++) p[v] = (p[v] as number) / sum;
    return { x, h, p };
  }

  /** Sample a response for (a, b) at temperature 1. */
  sample(a: number, b: number, rng: Rng): Sample {
    const { maxLen, vocab } = this.shape;
    const eos = vocab - 1;
    const tokens: number[] = [];
    const logProbs: number[] = [];
    const entropy: number[] = [];
    let prev = vocab; // BOS
    for (let t = 0; t < maxLen; t++) {
      const { p } = this.step(a, b, t, prev);
      let u = rng();
      let y = vocab - 1;
      for (let v = 0; v < vocab; v++) {
        u -= p[v] as number;
        if (u < 0) {
          y = v;
          break;
        }
      }
      let hEnt = 0;
      for (let v = 0; v < vocab; v++) {
        const pv = p[v] as number;
        if (pv > 0) hEnt -= pv * Math.log(pv);
      }
      tokens.push(y);
      logProbs.push(Math.log(p[y] as number));
      entropy.push(hEnt);
      if (y === eos) return { tokens, logProbs, entropy, finished: true };
      prev = y;
    }
    return { tokens, logProbs, entropy, finished: false };
  }

  /**
   * Log-probs and entropies of given responses under the current parameters, and a closure that backpropagates
   * d loss / d log-prob (flat `[B·T]`, T = maxLen) into `grads` (same order as {@link params}).
   */
  logProbs(prompts: readonly (readonly [number, number])[], responses: readonly (readonly number[])[]): {
    logProbs: Float64Array;
    entropy: Float64Array;
    backward: (dLogProb: ArrayLike<number>, grads: Float64Array[]) => void;
  } {
    const { maxLen, vocab, hidden } = this.shape;
    const B = responses.length;
    const lp = new Float64Array(B * maxLen);
    const ent = new Float64Array(B * maxLen);
    const caches: (StepCache | null)[] = new Array(B * maxLen).fill(null);
    for (let i = 0; i < B; i++) {
      const [a, b] = prompts[i] as readonly [number, number];
      const ys = responses[i] as readonly number[];
      let prev = vocab;
      for (let t = 0; t < ys.length; t++) {
        const c = this.step(a, b, t, prev);
        const y = ys[t] as number;
        caches[i * maxLen + t] = c;
        lp[i * maxLen + t] = Math.log(c.p[y] as number);
        let hEnt = 0;
        for (let v = 0; v < vocab; v++) {
          const pv = c.p[v] as number;
          if (pv > 0) hEnt -= pv * Math.log(pv);
        }
        ent[i * maxLen + t] = hEnt;
        prev = y;
      }
    }
    const F = this.features;
    const backward = (dLogProb: ArrayLike<number>, grads: Float64Array[]): void => {
      const [gw1, gb1, gw2, gb2] = grads as [Float64Array, Float64Array, Float64Array, Float64Array];
      const dz = new Float64Array(vocab);
      const dh = new Float64Array(hidden);
      for (let i = 0; i < B; i++) {
        const ys = responses[i] as readonly number[];
        for (let t = 0; t < ys.length; t++) {
          const g = dLogProb[i * maxLen + t] as number;
          if (g === 0) continue;
          const c = caches[i * maxLen + t] as StepCache;
          // d log p_y / d z_v = [v = y] − p_v
          for (let v = 0; v < vocab; v++) dz[v] = g * ((v === ys[t] ? 1 : 0) - (c.p[v] as number));
          dh.fill(0);
          for (let v = 0; v < vocab; v++) {
            const d = dz[v] as number;
            gb2[v] = (gb2[v] as number) + d;
            for (let j = 0; j < hidden; j++) {
              gw2[v * hidden + j] = (gw2[v * hidden + j] as number) + d * (c.h[j] as number);
              dh[j] = (dh[j] as number) + d * (this.w2[v * hidden + j] as number);
            }
          }
          for (let j = 0; j < hidden; j++) {
            const hj = c.h[j] as number;
            const da = (dh[j] as number) * (1 - hj * hj);
            gb1[j] = (gb1[j] as number) + da;
            for (let q = 0; q < 4; q++) gw1[j * F + (c.x[q] as number)] = (gw1[j * F + (c.x[q] as number)] as number) + da;
          }
        }
      }
    };
    return { logProbs: lp, entropy: ent, backward };
  }
}

/** Adam with global-norm gradient clipping (verl's actor clips at grad_clip = 1.0). */
export class Adam {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private t = 0;

  /**
   * @param params - the parameter arrays, updated in place
   * @param lr - learning rate
   * @param gradClip - global-norm clip (verl's `actor.grad_clip`)
   */
  constructor(private readonly params: Float64Array[], private readonly lr: number, private readonly gradClip = 1.0) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }

  /** Fresh zeroed gradient buffers matching the parameters. */
  zeroGrads(): Float64Array[] {
    return this.params.map((p) => new Float64Array(p.length));
  }

  /** One step; returns the gradient norm before clipping. Skips the step when the norm is not finite (as verl). */
  step(grads: Float64Array[]): number {
    let sq = 0;
    for (const g of grads) for (let k = 0; k < g.length; k++) sq += (g[k] as number) ** 2;
    const norm = Math.sqrt(sq);
    if (!Number.isFinite(norm)) return norm;
    const scale = norm > this.gradClip ? this.gradClip / norm : 1;
    this.t += 1;
    const b1 = 0.9;
    const b2 = 0.999;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    for (let q = 0; q < this.params.length; q++) {
      const p = this.params[q] as Float64Array;
      const g = grads[q] as Float64Array;
      const m = this.m[q] as Float64Array;
      const v = this.v[q] as Float64Array;
      for (let k = 0; k < p.length; k++) {
        const gk = (g[k] as number) * scale;
        m[k] = b1 * (m[k] as number) + (1 - b1) * gk;
        v[k] = b2 * (v[k] as number) + (1 - b2) * gk * gk;
        p[k] = (p[k] as number) - (this.lr * ((m[k] as number) / c1)) / (Math.sqrt((v[k] as number) / c2) + 1e-8);
      }
    }
    return norm;
  }
}
