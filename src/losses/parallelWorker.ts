/**
 * The worker of the two-thread CPU path ({@link createParallelPolicyLoss}): waits on a shared Int32Array, runs
 * a row kernel (`vanillaRows`, `sapoRows`, `gspoRows`, …; rowKernels.ts) on its staged row range (SharedArrayBuffers it receives once per growth through a
 * MessagePort, read synchronously with `receiveMessageOnPort`), and signals completion. Started by `parallel.ts`;
 * not a public module.
 *
 * Control words (`ctl`): 0 = request sequence (main increments), 1 = done sequence (worker stores), 2 = command
 * (0 run, 1 stop), 3 = new-buffers flag, 4 = error flag. Params (`params`, float64): 0 rows, 1 T, 2 clipRatioLow,
 * 3 clipRatioHigh, 4 clipRatioC, 5 has IS weights, 6 phase (1 = validate into `rowSums` as row lengths, 2 =
 * compute), 7 the staged selection (`aggMask` field): 0 none, 1 eighty-twenty's aggregation mask, 2 kl_cov's KL
 * tokens, 13 the row kernel's index in `ROW_KERNELS` (rowKernels.ts), 14 tauPos, 15 tauNeg, 16 ppoKlCoef; outputs:
 * 8..11 the range's raw metric sums, 12 = 1 when the range validated.
 *
 * @module
 */
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { resolvePolicyLossConfig } from '../config/policyLoss.js';
import type { FloatArray } from '../matrix.js';
import { validateRows } from './common.js';
import { ROW_KERNELS } from './rowKernels.js';
import type { RowsKernel } from './rows.js';

/** A staged field: its shared memory and element type. */
interface StagedField {
  sab: SharedArrayBuffer;
  f32: boolean;
}

/** The staging buffers of one worker (sent when they change). */
interface Staging {
  oldLogProbs: StagedField;
  logProbs: StagedField;
  advantages: StagedField;
  mask: StagedField;
  rolloutIsWeights: StagedField | null;
  aggMask: StagedField | null;
  grad: SharedArrayBuffer;
  rowCoef: SharedArrayBuffer;
  rowSums: SharedArrayBuffer;
}

const data = workerData as { ctl: SharedArrayBuffer; params: SharedArrayBuffer; port: MessagePort };
const ctl = new Int32Array(data.ctl);
const params = new Float64Array(data.params);
const port = data.port;

function view(f: StagedField, n: number): FloatArray {
  return f.f32 ? new Float32Array(f.sab, 0, n) : new Float64Array(f.sab, 0, n);
}

let staging: Staging | null = null;
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  const seq = Atomics.load(ctl, 0);
  if (seq === seen) continue;
  seen = seq;
  if (Atomics.load(ctl, 2) === 1) break;
  try {
    if (Atomics.exchange(ctl, 3, 0) === 1) {
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) staging = m.message as Staging;
    }
    if (!staging) throw new Error('parallel policy loss worker: no staging buffers');
    const rows = params[0] as number;
    const T = params[1] as number;
    const n = rows * T;
    const olp = view(staging.oldLogProbs, n);
    const lp = view(staging.logProbs, n);
    const adv = view(staging.advantages, n);
    const mask = view(staging.mask, n);
    const w = params[5] === 1 && staging.rolloutIsWeights ? view(staging.rolloutIsWeights, n) : null;
    const rowSums = new Float64Array(staging.rowSums, 0, rows);
    if (params[6] === 1) {
      params[12] = validateRows(mask, olp, lp, adv, w, rows, T, rowSums) ? 1 : 0;
    } else {
      const config = resolvePolicyLossConfig({ clipRatioLow: params[2], clipRatioHigh: params[3], clipRatioC: params[4], tauPos: params[14], tauNeg: params[15], ppoKlCoef: params[16] });
      const rowsKernel = ROW_KERNELS[params[13] as number] as RowsKernel;
      const sums = new Float64Array(data.params, 8 * 8, 4);
      const rowCoef = new Float64Array(staging.rowCoef, 0, rows);
      const selection = params[7] !== 0 && staging.aggMask ? view(staging.aggMask, n) : null;
      const aggMask = params[7] === 1 ? selection : null;
      const klSelect = params[7] === 2 ? selection : null;
      rowsKernel(
        { rows, T, oldLogProbs: olp, logProbs: lp, advantages: adv, mask, rolloutIsWeights: w, rowCoef, aggMask, klSelect },
        config,
        { grad: new Float64Array(staging.grad, 0, n), lossMat: null, rowSums, sums },
      );
    }
    Atomics.store(ctl, 4, 0);
  } catch {
    Atomics.store(ctl, 4, 1);
  }
  Atomics.store(ctl, 1, seq);
  Atomics.notify(ctl, 1);
}
port.close();
