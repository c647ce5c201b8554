/**
 * verl's `kl_penalty(logprob, ref_logprob, kind)` (core_algos.py): the per-token KL estimates k1, |·|, k2, k3
 * with their element-wise gradients, and the documented "+" straight-through kinds.
 *
 * @module
 */
import { checkInto } from '../aggregate.js';
import { ConfigError, UnknownModeError } from '../errors.js';
import { type MatrixInput, type Shape2D, expectShape, isNested, nestedShape, toMatrix } from '../matrix.js';

/** The base KL kinds verl's `kl_penalty_forward` accepts (`full` raises there, and here). */
export const KL_BASE_KINDS = ['kl', 'k1', 'abs', 'mse', 'k2', 'low_var_kl', 'k3'] as const;
/** A base KL kind. */
export type KlBaseKind = (typeof KL_BASE_KINDS)[number];
/** A KL kind: a base kind, or a base kind with the "+" suffix (value of the base, gradient of k2). */
export type KlKind = KlBaseKind | `${KlBaseKind}+`;

/** Every name {@link klPenalty} accepts. */
export const KL_KINDS: readonly KlKind[] = [...KL_BASE_KINDS, ...KL_BASE_KINDS.map((k) => `${k}+` as KlKind)];

/** The clamp on ref − logprob before exp in k3 (verl: ±20). */
export const K3_LOG_RATIO_CLAMP = 20;
/** The clamp on the k3 value (verl: ±10). */
export const K3_VALUE_CLAMP = 10;

/** Result of {@link klPenalty}: flat row-major `[B·T]` arrays at every position (verl does not mask here). */
export interface KlPenaltyResult {
  /** The per-token KL estimate. */
  kld: Float64Array;
  /** d kld_it / d logProbs_it (the gradient of Σ kld). */
  gradLogProbs: Float64Array;
  /** d kld_it / d refLogProbs_it. */
  gradRefLogProbs: Float64Array;
}

/** Validate a KL kind name: `full` → {@link ConfigError} (not implemented in verl either); unknown → {@link UnknownModeError}. */
export function checkKlKind(kind: string): KlKind {
  if (kind === 'full' || kind === 'full+') {
    throw new ConfigError(`klPenalty: kind ${JSON.stringify(kind)} is not implemented (verl raises NotImplementedError)`, 'klType');
  }
  if (!(KL_KINDS as readonly string[]).includes(kind)) throw new UnknownModeError('klType', kind, KL_KINDS);
  return kind as KlKind;
}

/**
 * Options of {@link klPenalty}: arrays to write the results into (each of length ≥ B·T; entries past B·T are left
 * untouched) instead of fresh ones. A training loop that calls it every step saves allocating three `[B·T]` float64
 * arrays a call (fresh memory is most of its cost on large batches).
 */
export interface KlPenaltyOptions {
  /** Where {@link KlPenaltyResult.kld} is written (and returned). */
  klInto?: Float64Array;
  /** Where {@link KlPenaltyResult.gradLogProbs} is written (and returned). */
  gradInto?: Float64Array;
  /** Where {@link KlPenaltyResult.gradRefLogProbs} is written (and returned). */
  gradRefInto?: Float64Array;
}

function target(into: Float64Array | undefined, n: number, field: string): Float64Array {
  return into === undefined ? new Float64Array(n) : checkInto(into, n, field);
}

/**
 * Per-token KL estimate of logProbs against refLogProbs, with gradients, on the float64 CPU path.
 *
 * - `kl` / `k1`: lp − ref.  `abs`: |lp − ref| (gradient 0 at 0).  `mse` / `k2`: ½(lp − ref)².
 * - `low_var_kl` / `k3`: x = clamp(ref − lp, ±20); clamp(eˣ − x − 1, ±10); the gradient is 0 where either clamp
 *   is active (torch's clamp passes the gradient on the bounds).
 * - `<kind>+`: the value of `<kind>` with the gradient of k2 (straight-through), as verl's docstring documents.
 *   verl's code at the pinned commit raises NotImplementedError for these; this is a deliberate difference.
 *
 * Float32 and float64 flat inputs are read in place.
 *
 * @param logProbs - `[B][T]` log-probs of the current (or old) policy
 * @param refLogProbs - `[B][T]` log-probs of the reference policy
 * @param kind - verl's `kl_penalty` / `kl_loss_type` name
 * @param shape - `[B, T]`, required for flat inputs
 * @param options - arrays to write the results into ({@link KlPenaltyOptions})
 */
export function klPenalty(
  logProbs: MatrixInput,
  refLogProbs: MatrixInput,
  kind: KlKind | string,
  shape?: Shape2D,
  options: KlPenaltyOptions = {},
): KlPenaltyResult {
  const k = checkKlKind(kind);
  const sh = shape ?? (isNested(logProbs) ? nestedShape(logProbs, 'logProbs') : undefined);
  const lp = toMatrix(logProbs, 'logProbs', sh);
  const ref = toMatrix(refLogProbs, 'refLogProbs', sh ?? [lp.rows, lp.cols]);
  expectShape(ref, lp.rows, lp.cols, 'refLogProbs');
  const straight = k.endsWith('+');
  const base = (straight ? k.slice(0, -1) : k) as KlBaseKind;
  const n = lp.data.length;
  const kld = target(options.klInto, n, 'klInto');
  const gLp = target(options.gradInto, n, 'gradInto');
  const gRef = target(options.gradRefInto, n, 'gradRefInto');
  const a = lp.data;
  const b = ref.data;
  // one loop per kind (a string switch inside the loop cost more than the arithmetic)
  switch (base) {
    case 'kl':
    case 'k1':
      for (let i = 0; i < n; i++) {
        const d = (a[i] as number) - (b[i] as number);
        kld[i] = d;
        gLp[i] = straight ? d : 1;
      }
      break;
    case 'abs':
      for (let i = 0; i < n; i++) {
        const d = (a[i] as number) - (b[i] as number);
        kld[i] = Math.abs(d);
        gLp[i] = straight ? d : d > 0 ? 1 : d < 0 ? -1 : 0;
      }
      break;
    case 'mse':
    case 'k2':
      for (let i = 0; i < n; i++) {
        const d = (a[i] as number) - (b[i] as number);
        kld[i] = 0.5 * d * d;
        gLp[i] = d;
      }
      break;
    case 'low_var_kl':
    case 'k3':
      for (let i = 0; i < n; i++) {
        const raw = (b[i] as number) - (a[i] as number);
        const x = Math.min(Math.max(raw, -K3_LOG_RATIO_CLAMP), K3_LOG_RATIO_CLAMP);
        const r = Math.exp(x);
        const k3 = r - x - 1;
        kld[i] = Math.min(Math.max(k3, -K3_VALUE_CLAMP), K3_VALUE_CLAMP);
        const pass = k3 >= -K3_VALUE_CLAMP && k3 <= K3_VALUE_CLAMP && raw >= -K3_LOG_RATIO_CLAMP && raw <= K3_LOG_RATIO_CLAMP;
        gLp[i] = straight ? (a[i] as number) - (b[i] as number) : pass ? -(r - 1) : 0;
      }
      break;
  }
  for (let i = 0; i < n; i++) gRef[i] = -(gLp[i] as number);
  return { kld, gradLogProbs: gLp, gradRefLogProbs: gRef };
}
