/**
 * verl's actor loss assembly (dp_actor.py `update_policy`, SPEC.md §3): the policy loss, minus entropyCoeff times
 * the aggregated entropy, plus klLossCoef times the aggregated KL loss, with every part and its gradients.
 *
 * @module
 */
import { aggregateRows } from '../aggregate.js';
import type { LossAggMode, PolicyLossConfig } from '../config/policyLoss.js';
import { checkLossAggMode } from '../config/policyLoss.js';
import { entropyFromLogits, rowEntropy, toLogits } from '../entropy/entropy.js';
import type { LogitsInput } from '../entropy/entropy.js';
import { ConfigError, ShapeError } from '../errors.js';
import { type KlKind, checkKlKind, klPenalty } from '../kl/penalty.js';
import { scratch } from '../losses/common.js';
import { policyLoss, resolveBatch } from '../losses/index.js';
import type { PolicyLossBatch } from '../losses/types.js';
import { type Matrix, type MatrixInput, checkFiniteAtValid, expectShape, toMatrix } from '../matrix.js';

/** The actor's batch: a policy-loss batch plus what the entropy bonus and the KL loss read. */
export interface ActorLossBatch extends PolicyLossBatch {
  /** Reference-policy log-probs `[B][T]`; required when `useKlLoss`. */
  refLogProbs?: MatrixInput | null;
  /**
   * Logits `[B][T][V]` of the current policy (alternative to `entropy`): the entropy is computed from them and the
   * result then carries d total / d logits. Flat logits need `logitsShape`.
   */
  logits?: LogitsInput | null;
  /** `[B, T, V]` for flat `logits`. */
  logitsShape?: readonly [number, number, number];
}

/** The actor's options: the policy-loss keys plus verl's `actor.entropy_coeff`, `use_kl_loss`, `kl_loss_coef`, `kl_loss_type`. */
export interface ActorLossConfig extends PolicyLossConfig {
  /** Entropy bonus coefficient (`actor.entropy_coeff`, default 0): total −= entropyCoeff·agg(H). */
  entropyCoeff?: number;
  /** Report `actor/entropy` even when entropyCoeff is 0 (`actor.calculate_entropy`, default false). */
  calculateEntropy?: boolean;
  /** Add the KL loss (`actor.use_kl_loss`, default false). */
  useKlLoss?: boolean;
  /** KL loss coefficient (`actor.kl_loss_coef`, default 0.001). */
  klLossCoef?: number;
  /** KL estimator (`actor.kl_loss_type`, default `low_var_kl`). */
  klLossType?: KlKind;
}

/** verl's actor defaults (SPEC.md §15). */
export const ACTOR_LOSS_DEFAULTS: {
  /** `actor.entropy_coeff`. */
  readonly entropyCoeff: number;
  /** `actor.calculate_entropy`. */
  readonly calculateEntropy: boolean;
  /** `actor.use_kl_loss`. */
  readonly useKlLoss: boolean;
  /** `actor.kl_loss_coef`. */
  readonly klLossCoef: number;
  /** `actor.kl_loss_type`. */
  readonly klLossType: KlKind;
  /** `actor.loss_agg_mode`. */
  readonly lossAggMode: LossAggMode;
} = {
  entropyCoeff: 0,
  calculateEntropy: false,
  useKlLoss: false,
  klLossCoef: 0.001,
  klLossType: 'low_var_kl',
  lossAggMode: 'token-mean',
};

/** Result of {@link actorLoss}. */
export interface ActorLossResult {
  /** pgLoss − entropyCoeff·entropyLoss + klLossCoef·klLoss (the quantity to minimise). */
  loss: number;
  /** The policy loss alone. */
  pgLoss: number;
  /** agg_loss(H, m, lossAggMode), when entropy was computed (entropyCoeff ≠ 0 or calculateEntropy); else null. */
  entropyLoss: number | null;
  /** agg_loss(kl_penalty(lp, ref), m, lossAggMode), when useKlLoss; else null. */
  klLoss: number | null;
  /** d loss / d logProbs `[B·T]`: the policy-loss gradient plus klLossCoef times the KL gradient. */
  grad: Float64Array;
  /** d loss / d entropy `[B·T]` (= −entropyCoeff·d agg / d H), when entropyCoeff ≠ 0; else null. */
  gradEntropy: Float64Array | null;
  /** d loss / d logits `[B·T·V]` through the entropy bonus, when `logits` were given and entropyCoeff ≠ 0; else null. */
  gradLogits: Float64Array | null;
  /** d loss / d refLogProbs `[B·T]`, when useKlLoss (useful only for checks: the reference is frozen). */
  gradRefLogProbs: Float64Array | null;
  /**
   * The policy loss's metrics plus `actor/pg_loss`, and `actor/entropy` (when computed), `actor/kl_loss` and
   * `actor/kl_coef` (when useKlLoss), as verl's actor reports them for one micro-batch.
   */
  metrics: Record<string, number>;
}

function finite(v: unknown, field: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${field} must be a finite number, got ${String(v)}`, field);
  return v;
}

/**
 * The actor loss as verl's legacy actor computes it for one micro-batch (SPEC.md §3):
 * `pg = policyLoss(lossMode)`; `H = agg(entropy)`; `kl = agg(kl_penalty(lp, ref, klLossType))`;
 * `loss = pg − entropyCoeff·H + klLossCoef·kl`, the entropy and KL aggregated with `lossAggMode` (default
 * token-mean; with `globalBatchInfo` as verl's new engine does).
 *
 * @param lossMode - a registered policy loss (`vanilla`, `gspo`, `sapo`, …, `eighty-twenty`)
 * @param batch - the policy-loss batch plus `entropy` or `logits`, and `refLogProbs` for the KL loss
 * @param config - the policy-loss options plus entropyCoeff, calculateEntropy, useKlLoss, klLossCoef, klLossType
 */
export function actorLoss(lossMode: string, batch: ActorLossBatch, config: ActorLossConfig = {}): ActorLossResult {
  const entropyCoeff = finite(config.entropyCoeff, 'entropyCoeff', ACTOR_LOSS_DEFAULTS.entropyCoeff);
  const klLossCoef = finite(config.klLossCoef, 'klLossCoef', ACTOR_LOSS_DEFAULTS.klLossCoef);
  const useKlLoss = config.useKlLoss ?? ACTOR_LOSS_DEFAULTS.useKlLoss;
  const klLossType = checkKlKind(config.klLossType ?? ACTOR_LOSS_DEFAULTS.klLossType);
  const mode = checkLossAggMode(config.lossAggMode ?? ACTOR_LOSS_DEFAULTS.lossAggMode);
  const gbi = config.globalBatchInfo ?? {};
  const wantEntropy = entropyCoeff !== 0 || (config.calculateEntropy ?? false);

  // Entropy from logits when only logits were given (so eighty-twenty can read it too).
  let entropyIn = batch.entropy ?? null;
  let logits: { data: ArrayLike<number>; V: number } | null = null;
  if (batch.logits != null) {
    const lg = toLogits(batch.logits, batch.logitsShape);
    logits = { data: lg.data, V: lg.shape[2] };
    if (entropyIn == null) entropyIn = entropyFromLogits(lg.data, lg.shape).entropy;
  }
  const polBatch: PolicyLossBatch = { ...batch, entropy: entropyIn };
  const resolved = resolveBatch(polBatch);
  const { B, T, mask, lengths } = resolved;
  if (logits && logits.data.length !== B * T * logits.V) {
    throw new ShapeError(`batch.logits: [B, T] does not match the batch [${B}, ${T}]`, 'logits');
  }
  const pg = policyLoss(lossMode, polBatch, config);
  const grad = pg.grad.slice();
  const metrics: Record<string, number> = { ...pg.metrics, 'actor/pg_loss': pg.loss };
  let loss = pg.loss;

  let entropyLoss: number | null = null;
  let gradEntropy: Float64Array | null = null;
  let gradLogits: Float64Array | null = null;
  if (wantEntropy) {
    const h = resolved.entropy;
    if (!h) {
      throw new ShapeError('batch.entropy (or batch.logits) is required when entropyCoeff != 0 or calculateEntropy', 'entropy');
    }
    const agg = aggregateRows(h, mask, B, T, mode, gbi, lengths);
    entropyLoss = agg.loss;
    metrics['actor/entropy'] = agg.loss;
    if (entropyCoeff !== 0) {
      loss -= entropyCoeff * agg.loss;
      gradEntropy = new Float64Array(B * T);
      for (let i = 0; i < B; i++) {
        const c = -entropyCoeff * (agg.rowCoef[i] as number);
        if (c === 0) continue;
        for (let j = 0, k = i * T; j < T; j++, k++) if (mask[k] !== 0) gradEntropy[k] = c;
      }
      if (logits) {
        const V = logits.V;
        gradLogits = new Float64Array(B * T * V);
        for (let p = 0; p < B * T; p++) {
          const g = gradEntropy[p] as number;
          if (g !== 0) rowEntropy(logits.data, p * V, V, 1, gradLogits, g, p);
        }
      }
    }
  }

  let klLoss: number | null = null;
  let gradRefLogProbs: Float64Array | null = null;
  if (useKlLoss) {
    if (batch.refLogProbs == null) throw new ShapeError('batch.refLogProbs is required when useKlLoss', 'refLogProbs');
    const ref: Matrix = toMatrix(batch.refLogProbs, 'refLogProbs', [B, T]);
    expectShape(ref, B, T, 'refLogProbs');
    checkFiniteAtValid(ref, { data: mask, rows: B, cols: T }, 'refLogProbs');
    const n = B * T; // the KL terms are used only in this call: scratch arrays instead of three fresh ones
    const kl = klPenalty(resolved.logProbs, ref.data, klLossType, [B, T], { klInto: scratch('klValue', n), gradInto: scratch('klGrad', n), gradRefInto: scratch('klGradRef', n) });
    const agg = aggregateRows(kl.kld, mask, B, T, mode, gbi, lengths);
    klLoss = agg.loss;
    loss += klLossCoef * agg.loss;
    metrics['actor/kl_loss'] = agg.loss;
    metrics['actor/kl_coef'] = klLossCoef;
    gradRefLogProbs = new Float64Array(B * T);
    for (let i = 0; i < B; i++) {
      const c = klLossCoef * (agg.rowCoef[i] as number);
      if (c === 0) continue;
      for (let j = 0, k = i * T; j < T; j++, k++) {
        if (mask[k] === 0) continue;
        grad[k] = (grad[k] as number) + c * (kl.gradLogProbs[k] as number);
        gradRefLogProbs[k] = c * (kl.gradRefLogProbs[k] as number);
      }
    }
  }
  return { loss, pgLoss: pg.loss, entropyLoss, klLoss, grad, gradEntropy, gradLogits, gradRefLogProbs, metrics };
}
