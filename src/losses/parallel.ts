/**
 * An opt-in multi-threaded CPU path for the token-level policy losses (Node only, `node:worker_threads`):
 * {@link createParallelPolicyLoss}. Per call the main thread checks the mode, the config and the batch's shapes,
 * copies each worker's contiguous range of whole rows into SharedArrayBuffer staging (grow-only, reused across
 * calls) and wakes the workers through `Atomics.notify`; every thread then validates its own rows (mask 0/1, finite
 * values) and counts their lengths (phase 1), the main thread checks `gradInto` and computes the aggregation's row
 * coefficients, and every thread computes the loss terms, the gradient and its partial sums (phase 2). The main
 * thread works on the first range straight from the caller's arrays, then copies the workers' gradients out and
 * combines the partial sums in row order. Any validation problem reruns the reference validation, which throws.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type MessagePort, MessageChannel, Worker } from 'node:worker_threads';
import { aggregationCoefficients, checkGradInto, combineRowSums } from '../aggregate.js';
import { type PolicyLossConfig, resolvePolicyLossConfig } from '../config/policyLoss.js';
import { ShapeError } from '../errors.js';
import { type FloatArray, rowLengths, toMatrix } from '../matrix.js';
import { finiteAtValid, scratch, validateRows } from './common.js';
import { selectTopEntropy } from './eightyTwenty.js';
import { geoMeanCombine, geoMeanRowCoef } from './geoMean.js';
import { checkKlCovRatio, klCovSelectInto } from './klCov.js';
import { ROW_KERNEL_OF_MODE, ROW_KERNELS } from './rowKernels.js';
import { type RowsKernel, rowsMetrics } from './rows.js';
import { getPolicyLoss, policyLoss, resolveBatch } from './registry.js';
import type { PolicyLossBatch, PolicyLossOptions, PolicyLossResult } from './types.js';

/** Options of {@link createParallelPolicyLoss}. */
export interface ParallelPolicyLossOptions {
  /** Compute threads, the main thread included (so `threads − 1` workers). Default 2; 1 = always the reference. */
  threads?: number;
  /** Batches with fewer positions (B·T) than this run on the single-thread reference. Default 2^16. */
  minTokens?: number;
  /**
   * Fraction of the rows (by position count) the main thread takes; it also copies the workers' inputs in and
   * their gradients out, but reads its own range in place, so about `1 / threads` balances. Default
   * `0.98 / threads` (measured on a 2-core machine at 2^23 tokens).
   */
  mainShare?: number;
}

/** Where the last parallel call spent its time on the main thread (milliseconds). */
export interface ParallelTimings {
  /** Copying the workers' input ranges (and row coefficients) into the shared staging. */
  copyInMs: number;
  /** The main thread's own row range. */
  mainMs: number;
  /** Waiting for the workers after the main range. */
  waitMs: number;
  /** Copying the workers' gradients into the result and combining the sums. */
  copyOutMs: number;
}

/** The object {@link createParallelPolicyLoss} returns. */
export interface ParallelPolicyLoss {
  /**
   * `policyLoss(lossMode, batch, config, { gradInto })` on several threads: the same validation and errors (as
   * rejections of the returned promise, with the reference's class, code and message), the same gradient bit for bit, the
   * same loss bit for bit (row sums combined in row order) and the same counts; `actor/ppo_kl` sums its ranges
   * separately, so it may differ from the reference in the last bits. Modes without a parallel kernel (all but
   * `vanilla`, `eighty-twenty`, `sapo`, `gspo`, `cispo`, `gpg`, `geo_mean` and `kl_cov`), small batches and an
   * instance whose workers could not start run the reference.
   */
  policyLoss(lossMode: string, batch: PolicyLossBatch, config?: PolicyLossConfig, options?: PolicyLossOptions): Promise<PolicyLossResult>;
  /** Terminate the workers (afterwards calls run the single-thread reference). */
  destroy(): Promise<void>;
  /** Whether calls can currently run in parallel (false after `destroy`, on worker failure, or with `threads: 1`). */
  readonly parallel: boolean;
  /** Main-thread timings of the last parallel call, or null. */
  readonly lastTimings: ParallelTimings | null;
}

interface StagedField {
  sab: SharedArrayBuffer;
  f32: boolean;
}

/** Float64 words of a worker's `params` (their layout: parallelWorker.ts). */
const PARAMS = 24;

/** One worker and its staging. */
interface Slot {
  worker: Worker;
  port: MessagePort;
  ctl: Int32Array;
  params: Float64Array;
  fields: Record<'oldLogProbs' | 'logProbs' | 'advantages' | 'mask' | 'rolloutIsWeights' | 'aggMask', StagedField | null>;
  grad: SharedArrayBuffer | null;
  rowCoef: SharedArrayBuffer | null;
  rowSums: SharedArrayBuffer | null;
  dirty: boolean;
  failed: boolean;
}

type FieldName = keyof Slot['fields'];

/**
 * How to start the worker: the built `.js` / `.cjs` sibling, or, when running from the TypeScript sources (vitest,
 * tsx), a small eval'd script that registers tsx's ESM hooks in the worker and then imports `parallelWorker.ts`
 * (an inherited `--import tsx` does not reach worker threads on Node 20).
 */
function workerEntry(): { url: URL } | { code: string } | null {
  let here: string | undefined;
  try {
    here = import.meta.url;
  } catch {
    here = undefined;
  }
  if (typeof here === 'string' && here.length > 0) {
    if (here.endsWith('.ts')) {
      const worker = new URL('./parallelWorker.ts', here).href;
      const api = pathToFileURL(join(dirname(createRequire(here).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
      return { code: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); });` };
    }
    return { url: new URL('./parallelWorker.js', here) };
  }
  if (typeof __dirname === 'string') return { url: pathToFileURL(join(__dirname, 'parallelWorker.cjs')) };
  return null;
}

function grow(sab: SharedArrayBuffer | null, bytes: number): SharedArrayBuffer {
  return sab && sab.byteLength >= bytes ? sab : new SharedArrayBuffer(Math.max(8, bytes));
}

/** A batch of flat typed arrays, shapes checked, values not yet checked. */
interface FlatBatch {
  B: number;
  T: number;
  oldLogProbs: FloatArray;
  logProbs: FloatArray;
  advantages: FloatArray;
  mask: FloatArray;
  rolloutIsWeights: FloatArray | null;
  entropy: FloatArray | null;
}

/**
 * The batch's arrays when every field is a flat `Float32Array` / `Float64Array` of the right length under
 * `batch.shape` (the case the workers handle; the value checks then run in parallel), `entropy` included when
 * present (required for `eighty-twenty`). Null for anything else, which goes to the reference and its validation.
 */
function flatBatch(batch: PolicyLossBatch, needsEntropy: boolean): FlatBatch | null {
  if (batch == null || typeof batch !== 'object' || !batch.shape || (needsEntropy && batch.entropy == null)) return null;
  const shape = batch.shape;
  const typed = (v: unknown): v is FloatArray => v instanceof Float32Array || v instanceof Float64Array;
  const { oldLogProbs, logProbs, advantages, responseMask } = batch;
  const w = batch.rolloutIsWeights ?? null;
  const h = batch.entropy ?? null;
  if (!typed(oldLogProbs) || !typed(logProbs) || !typed(advantages) || !typed(responseMask) || (w !== null && !typed(w)) || (h !== null && !typed(h))) return null;
  try {
    const m = toMatrix(responseMask, 'responseMask', shape);
    for (const [v, name] of [[oldLogProbs, 'oldLogProbs'], [logProbs, 'logProbs'], [advantages, 'advantages'], [w, 'rolloutIsWeights'], [h, 'entropy']] as const) {
      if (v !== null) toMatrix(v, name, shape);
    }
    return { B: m.rows, T: m.cols, oldLogProbs, logProbs, advantages, mask: responseMask, rolloutIsWeights: w, entropy: h };
  } catch {
    return null;
  }
}

/**
 * Create a multi-threaded CPU policy loss: persistent workers (`threads − 1` of them, unref'd so they never keep
 * the process alive between calls), signalled through `Atomics.wait` / `notify` on shared memory, staging reused
 * across calls. Call `destroy()` when done. In an environment without `worker_threads` use `policyLoss`.
 */
export function createParallelPolicyLoss(options: ParallelPolicyLossOptions = {}): ParallelPolicyLoss {
  const threads = Math.max(1, Math.floor(options.threads ?? 2));
  const minTokens = options.minTokens ?? 1 << 16;
  const mainShare = options.mainShare ?? 0.98 / threads;
  const slots: Slot[] = [];
  let alive = threads > 1;
  let lastTimings: ParallelTimings | null = null;
  if (alive) {
    const entry = workerEntry();
    if (!entry) alive = false;
    else {
      for (let w = 1; w < threads; w++) {
        const ctlSab = new SharedArrayBuffer(8 * 4);
        const paramsSab = new SharedArrayBuffer(PARAMS * 8);
        const { port1, port2 } = new MessageChannel();
        const init = { workerData: { ctl: ctlSab, params: paramsSab, port: port2 }, transferList: [port2] };
        const worker = 'code' in entry ? new Worker(entry.code, { ...init, eval: true }) : new Worker(entry.url, init);
        worker.unref();
        const slot: Slot = {
          worker,
          port: port1,
          ctl: new Int32Array(ctlSab),
          params: new Float64Array(paramsSab),
          fields: { oldLogProbs: null, logProbs: null, advantages: null, mask: null, rolloutIsWeights: null, aggMask: null },
          grad: null,
          rowCoef: null,
          rowSums: null,
          dirty: true,
          failed: false,
        };
        const fail = (): void => {
          slot.failed = true;
          Atomics.store(slot.ctl, 4, 1);
          Atomics.store(slot.ctl, 1, Atomics.load(slot.ctl, 0));
          Atomics.notify(slot.ctl, 1);
        };
        worker.on('error', fail);
        worker.on('exit', fail);
        slots.push(slot);
      }
    }
  }
  let mainRowSums = new Float64Array(0);
  let queue: Promise<unknown> = Promise.resolve();

  function stage(slot: Slot, name: FieldName, src: FloatArray | null, from: number, to: number): void {
    if (!src) return;
    const f32 = src instanceof Float32Array;
    const bytes = (to - from) * (f32 ? 4 : 8);
    const cur = slot.fields[name];
    if (!cur || cur.f32 !== f32 || cur.sab.byteLength < bytes) {
      slot.fields[name] = { sab: grow(null, bytes), f32 };
      slot.dirty = true;
    }
    const dst = slot.fields[name] as StagedField;
    (f32 ? new Float32Array(dst.sab, 0, to - from) : new Float64Array(dst.sab, 0, to - from)).set(src.subarray(from, to) as never);
  }

  async function waitDone(slot: Slot, seq: number): Promise<void> {
    for (;;) {
      const done = Atomics.load(slot.ctl, 1);
      if (done === seq || slot.failed) return;
      const wa = (Atomics as unknown as { waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string } }).waitAsync;
      if (wa) {
        const r = wa(slot.ctl, 1, done);
        if (r.async) await r.value;
      } else Atomics.wait(slot.ctl, 1, done);
    }
  }

  /** Signal every worker (phase 1 validate, 2 compute) and return their request sequence numbers. */
  function signal(phase: 1 | 2): number[] {
    return slots.map((slot) => {
      slot.params[6] = phase;
      if (slot.dirty) {
        const { oldLogProbs, logProbs, advantages, mask, rolloutIsWeights, aggMask } = slot.fields;
        slot.port.postMessage({ oldLogProbs, logProbs, advantages, mask, rolloutIsWeights, aggMask, grad: slot.grad, rowCoef: slot.rowCoef, rowSums: slot.rowSums });
        Atomics.store(slot.ctl, 3, 1);
        slot.dirty = false;
      }
      const seq = (Atomics.add(slot.ctl, 0, 1) + 1) | 0;
      Atomics.notify(slot.ctl, 0);
      return seq;
    });
  }

  /** Wait for every worker; false when one failed (crashed, or threw). */
  async function waitAll(seqs: number[]): Promise<boolean> {
    for (let w = 0; w < slots.length; w++) await waitDone(slots[w] as Slot, seqs[w] as number);
    return slots.every((s) => !s.failed && Atomics.load(s.ctl, 4) === 0);
  }

  async function run(lossMode: string, batch: PolicyLossBatch, config: PolicyLossConfig, opts: PolicyLossOptions): Promise<PolicyLossResult> {
    // Validation in policyLoss's order (mode, config, batch, gradInto), so the errors are the reference's.
    const entry = getPolicyLoss(lossMode);
    const resolved = resolvePolicyLossConfig(config);
    const eightyTwenty = entry.name === 'eighty-twenty';
    const flat = flatBatch(batch, eightyTwenty);
    if (!alive || slots.some((s) => s.failed) || !Object.hasOwn(ROW_KERNEL_OF_MODE, entry.name) || !flat || flat.B * flat.T < minTokens || flat.B < threads) {
      return policyLoss(lossMode, batch, config, opts);
    }
    const { B, T } = flat;
    const n = B * T;
    const t0 = performance.now();
    // Whole rows by position count: the main thread's range first (`mainShare`), then the workers' equal ranges.
    const bounds = [0];
    for (let p = 0; p < threads - 1; p++) bounds.push(Math.round(B * (mainShare + (p * (1 - mainShare)) / (threads - 1))));
    bounds.push(B);
    for (let w = 0; w < slots.length; w++) {
      const slot = slots[w] as Slot;
      const r0 = bounds[w + 1] as number;
      const r1 = bounds[w + 2] as number;
      const k0 = r0 * T;
      const k1 = r1 * T;
      stage(slot, 'oldLogProbs', flat.oldLogProbs, k0, k1);
      stage(slot, 'logProbs', flat.logProbs, k0, k1);
      stage(slot, 'advantages', flat.advantages, k0, k1);
      stage(slot, 'mask', flat.mask, k0, k1);
      stage(slot, 'rolloutIsWeights', flat.rolloutIsWeights, k0, k1);
      const nb = (k1 - k0) * 8;
      if (!slot.grad || slot.grad.byteLength < nb) [slot.grad, slot.dirty] = [grow(null, nb), true];
      if (!slot.rowCoef || !slot.rowSums || slot.rowCoef.byteLength < (r1 - r0) * 8) {
        [slot.rowCoef, slot.rowSums, slot.dirty] = [grow(null, (r1 - r0) * 8), grow(null, (r1 - r0) * 8), true];
      }
      const p = slot.params;
      p[0] = r1 - r0;
      p[1] = T;
      p[2] = resolved.clipRatioLow;
      p[3] = resolved.clipRatioHigh;
      p[4] = resolved.clipRatioC;
      p[5] = flat.rolloutIsWeights ? 1 : 0;
      p[13] = ROW_KERNEL_OF_MODE[entry.name] as number;
      p[14] = resolved.tauPos;
      p[15] = resolved.tauNeg;
      p[16] = resolved.ppoKlCoef;
      slot.worker.ref();
    }
    const t1 = performance.now();
    let t2 = t1;
    let t3 = t1;
    const m1 = bounds[1] as number;
    const mk = m1 * T;
    try {
      // Phase 1: every thread validates its rows and counts the row lengths.
      const seq1 = signal(1);
      const lengths = new Float64Array(B);
      const mainOk = validateRows(flat.mask, flat.oldLogProbs, flat.logProbs, flat.advantages, flat.rolloutIsWeights, m1, T, lengths);
      if (!(await waitAll(seq1))) return fallback(lossMode, batch, config, opts);
      if (!mainOk || slots.some((s) => s.params[12] !== 1)) {
        resolveBatch(batch); // throws the reference's error
        return policyLoss(lossMode, batch, config, opts);
      }
      slots.forEach((slot, w) => {
        const r0 = bounds[w + 1] as number;
        lengths.set(new Float64Array(slot.rowSums as SharedArrayBuffer, 0, (bounds[w + 2] as number) - r0), r0);
      });
      const into = opts?.gradInto;
      if (into != null) {
        checkGradInto(into, n);
        const inputs = [flat.oldLogProbs, flat.logProbs, flat.advantages, flat.mask, flat.rolloutIsWeights, flat.entropy];
        if (inputs.some((x) => x === into)) throw new ShapeError('gradInto: must not be one of the batch arrays (inputs are never written)', 'gradInto');
      }
      // eighty-twenty: the main thread selects over the whole batch (the reference's selectTopEntropy), then every
      // thread runs vanillaRows with its range of the selection as the aggregation mask.
      let aggMask: Float64Array | null = null;
      let aggLengths: Float64Array = lengths;
      if (flat.entropy && !finiteAtValid(flat.entropy, flat.mask, n)) {
        resolveBatch(batch); // throws the reference's error (it checks an entropy field whatever the mode)
        return policyLoss(lossMode, batch, config, opts);
      }
      // kl_cov: likewise the main thread picks the KL tokens over the whole batch (the reference's klCovSelectInto), then
      // every thread runs klCovRows with its range of them.
      let klSelect: Float64Array | null = null;
      if (eightyTwenty) {
        const h = flat.entropy as FloatArray;
        aggMask = selectTopEntropy(h, flat.mask, resolved.entropyTopRatio, scratch('parallelTop', n)) as Float64Array;
        aggLengths = rowLengths({ data: aggMask, rows: B, cols: T });
      } else if (entry.name === 'kl_cov') {
        checkKlCovRatio(resolved); // the reference's error, after the same validation
        klSelect = scratch('parallelKlSel', n);
        klCovSelectInto(flat.advantages, flat.logProbs, flat.mask, n, resolved.klCovRatio, klSelect);
      }
      const selection = aggMask ?? klSelect;
      if (selection) slots.forEach((slot, w) => stage(slot, 'aggMask', selection, (bounds[w + 1] as number) * T, (bounds[w + 2] as number) * T));
      for (const slot of slots) slot.params[7] = aggMask ? 1 : klSelect ? 2 : 0;
      // Phase 2: the loss, its gradient and the partial sums.
      // geo_mean: its own plain mean over the B rows (verl ignores the aggregation mode there, and so does the reference)
      const geo = entry.name === 'geo_mean';
      const mode = resolved.lossAggMode ?? (entry.defaultAggMode === 'row-mean' ? 'token-mean' : entry.defaultAggMode);
      const rowCoef = geo ? geoMeanRowCoef(B) : aggregationCoefficients(aggLengths, T, mode, resolved.globalBatchInfo);
      slots.forEach((slot, w) => {
        const r0 = bounds[w + 1] as number;
        const r1 = bounds[w + 2] as number;
        new Float64Array(slot.rowCoef as SharedArrayBuffer, 0, r1 - r0).set(rowCoef.subarray(r0, r1));
      });
      const seq2 = signal(2);
      const grad = into ?? new Float64Array(n);
      if (mainRowSums.length < B) mainRowSums = new Float64Array(B);
      const rowSums = mainRowSums;
      const sums = new Float64Array(4);
      (ROW_KERNELS[ROW_KERNEL_OF_MODE[entry.name] as number] as RowsKernel)(
        {
          rows: m1,
          T,
          oldLogProbs: flat.oldLogProbs.subarray(0, mk),
          logProbs: flat.logProbs.subarray(0, mk),
          advantages: flat.advantages.subarray(0, mk),
          mask: flat.mask.subarray(0, mk),
          rolloutIsWeights: flat.rolloutIsWeights ? flat.rolloutIsWeights.subarray(0, mk) : null,
          rowCoef: rowCoef.subarray(0, m1),
          aggMask: aggMask ? aggMask.subarray(0, mk) : null,
          klSelect: klSelect ? klSelect.subarray(0, mk) : null,
        },
        resolved,
        { grad: grad.subarray(0, mk), lossMat: null, rowSums: rowSums.subarray(0, m1), sums },
      );
      t2 = performance.now();
      if (!(await waitAll(seq2))) return fallback(lossMode, batch, config, opts);
      t3 = performance.now();
      slots.forEach((slot, w) => {
        const r0 = bounds[w + 1] as number;
        const r1 = bounds[w + 2] as number;
        grad.set(new Float64Array(slot.grad as SharedArrayBuffer, 0, (r1 - r0) * T), r0 * T);
        rowSums.set(new Float64Array(slot.rowSums as SharedArrayBuffer, 0, r1 - r0), r0);
        for (let q = 0; q < 4; q++) sums[q] = (sums[q] as number) + (slot.params[8 + q] as number);
      });
      // aggregateRows' combination (geo_mean's own mean), in row order: the reference's loss bit for bit
      const loss = geo ? geoMeanCombine(rowSums, B) : combineRowSums(rowSums, rowCoef, mode);
      const metrics = rowsMetrics(ROW_KERNELS[ROW_KERNEL_OF_MODE[entry.name] as number] as RowsKernel, sums);
      lastTimings = { copyInMs: t1 - t0, mainMs: t2 - t1, waitMs: t3 - t2, copyOutMs: performance.now() - t3 };
      return { loss, grad, metrics };
    } finally {
      for (const s of slots) s.worker.unref();
    }
  }

  /** A worker failed: stop using the workers and answer with the reference. */
  function fallback(lossMode: string, batch: PolicyLossBatch, config: PolicyLossConfig, opts: PolicyLossOptions): PolicyLossResult {
    alive = false;
    return policyLoss(lossMode, batch, config, opts);
  }

  return {
    policyLoss(lossMode, batch, config = {}, opts = {}) {
      const p = queue.then(() => run(lossMode, batch, config, opts));
      queue = p.catch(() => undefined);
      return p;
    },
    async destroy() {
      alive = false;
      await queue;
      await Promise.all(
        slots.map(async (slot) => {
          slot.worker.removeAllListeners('exit');
          slot.worker.removeAllListeners('error');
          slot.worker.on('error', () => undefined);
          slot.port.close();
          await slot.worker.terminate();
        }),
      );
      slots.length = 0;
    },
    get parallel() {
      return alive && slots.length > 0 && slots.every((s) => !s.failed);
    },
    get lastTimings() {
      return lastTimings;
    },
  };
}
