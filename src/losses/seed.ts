/**
 * The seed's three strategies (SEED.md: the YuanVL DAPO training script switches between them), as one-call
 * functions with the seed's defaults. Any key of the caller's `config` overrides the seed default.
 *
 * | function | loss_mode | defaults |
 * |---|---|---|
 * | {@link dapoLoss} | `eighty-twenty` | εl 0.2, εh 0.28, token-mean, entropyTopRatio 0.2 |
 * | {@link gspoLoss} | `gspo` | εl 3e-4, εh 4e-4, seq-mean-token-mean |
 * | {@link sapoLoss} | `sapo` | τ_pos 1.0, τ_neg 1.05, token-mean |
 *
 * @module
 */
import type { PolicyLossConfig } from '../config/policyLoss.js';
import { ShapeError } from '../errors.js';
import { policyLoss } from './registry.js';
import type { PolicyLossBatch, PolicyLossResult } from './types.js';

/** The seed's DAPO settings: `eighty-twenty` with clip-higher 0.2 / 0.28, token-mean, top 20% by entropy. */
export const DAPO_LOSS_DEFAULTS: Readonly<PolicyLossConfig> = Object.freeze({
  clipRatioLow: 0.2,
  clipRatioHigh: 0.28,
  lossAggMode: 'token-mean',
  entropyTopRatio: 0.2,
});

/** The seed's GSPO settings (the GSPO paper's clip range): 3e-4 / 4e-4, seq-mean-token-mean. */
export const GSPO_LOSS_DEFAULTS: Readonly<PolicyLossConfig> = Object.freeze({
  clipRatioLow: 0.0003,
  clipRatioHigh: 0.0004,
  lossAggMode: 'seq-mean-token-mean',
});

/**
 * The seed's SAPO settings: τ_pos 1.0, τ_neg 1.05 (the seed carries them in clip_ratio_high / clip_ratio_low) and
 * token-mean. verl's `sapo` ignores the mode and always uses seq-mean-token-mean; lumirag-rl honours token-mean here.
 */
export const SAPO_LOSS_DEFAULTS: Readonly<PolicyLossConfig> = Object.freeze({
  tauPos: 1.0,
  tauNeg: 1.05,
  lossAggMode: 'token-mean',
});

/**
 * Merge the caller's config over a seed default. Keys set to `undefined` keep the seed value. A caller's
 * `clipRatio` replaces the seed's `clipRatioLow` / `clipRatioHigh` unless those are given too (verl's fallback).
 */
function withSeed(seed: Readonly<PolicyLossConfig>, config: PolicyLossConfig = {}): PolicyLossConfig {
  const out: PolicyLossConfig = { ...seed };
  if (config.clipRatio !== undefined && config.clipRatio !== null) {
    delete out.clipRatioLow;
    delete out.clipRatioHigh;
  }
  for (const [k, v] of Object.entries(config)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * The seed's DAPO (its default, recommended strategy): `eighty-twenty`, i.e. the vanilla clip-higher / dual-clip
 * loss on the top `entropyTopRatio` of valid tokens by entropy, with {@link DAPO_LOSS_DEFAULTS}.
 *
 * `batch.entropy` is required: without it this throws a {@link ShapeError} (it does not silently fall back to
 * plain DAPO); for plain clip-higher use `policyLoss('vanilla', batch, { clipRatioLow: 0.2, clipRatioHigh: 0.28 })`.
 */
export function dapoLoss(batch: PolicyLossBatch, config?: PolicyLossConfig): PolicyLossResult {
  if (batch != null && typeof batch === 'object' && batch.entropy == null) {
    throw new ShapeError(
      "dapoLoss: batch.entropy is required (the seed's DAPO is eighty-twenty: it trains the top entropyTopRatio of tokens by entropy); " +
        "pass the per-token entropy of the current policy, or use policyLoss('vanilla', batch, { clipRatioLow: 0.2, clipRatioHigh: 0.28 }) for plain DAPO clip-higher",
      'entropy',
    );
  }
  return policyLoss('eighty-twenty', batch, withSeed(DAPO_LOSS_DEFAULTS, config));
}

/** The seed's GSPO: `gspo` with {@link GSPO_LOSS_DEFAULTS} (3e-4 / 4e-4, seq-mean-token-mean). */
export function gspoLoss(batch: PolicyLossBatch, config?: PolicyLossConfig): PolicyLossResult {
  return policyLoss('gspo', batch, withSeed(GSPO_LOSS_DEFAULTS, config));
}

/** The seed's SAPO: `sapo` with {@link SAPO_LOSS_DEFAULTS} (τ_pos 1.0, τ_neg 1.05, token-mean). */
export function sapoLoss(batch: PolicyLossBatch, config?: PolicyLossConfig): PolicyLossResult {
  return policyLoss('sapo', batch, withSeed(SAPO_LOSS_DEFAULTS, config));
}
