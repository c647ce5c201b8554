/**
 * `eighty-twenty`: "Beyond the 80/20 rule" (Wang et al. 2025, arXiv 2506.01939), the seed's DAPO mode: the
 * `vanilla` loss (clip-higher, dual-clip) trained only on the high-entropy minority of tokens. Not part of verl;
 * follows the authors' verl fork (SPEC.md §11).
 *
 * Selection: among the valid tokens (N of them), exactly k = max(1, ⌈ρ·N⌉) with the largest `batch.entropy`
 * (ρ = `entropyTopRatio`, default 0.2), ties broken by the lowest row-major index first (the fork uses torch.topk,
 * whose tie order is unspecified). N = 0 selects nothing (loss 0, zero gradient). ⌈ρ·N⌉ is the ceiling of the real
 * product: a float product within 1e-9 (relative) of an integer counts as that integer, so 0.2·15 = 3.0000000000000004
 * gives 3, not 4 (the fork computes int(N·ρ + 0.9999), which rounds down when the fractional part is below 1e-4).
 *
 * Aggregation: over the selected tokens only (the fork's agg_loss(ℓ, m ⊙ top, mode)), so token-mean divides by
 * the selected count k, not by N as the paper's formula does (gradients ≈ 1/ρ larger). The metrics
 * (`actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower`) use the full response mask, as in the fork.
 * With `globalBatchInfo`, `batchNumTokens` / `globalBatchSize` should count the selected tokens / sequences.
 *
 * @module
 */
import type { ResolvedPolicyLossConfig } from '../config/policyLoss.js';
import { ShapeError } from '../errors.js';
import { type FloatArray, rowLengths } from '../matrix.js';
import { scratch, topKMaskInto } from './common.js';
import { registerBuiltin } from './registry.js';
import type { PolicyLossResult, ResolvedBatch } from './types.js';
import { rowsStrategy } from './rows.js';
import { vanillaRows } from './vanilla.js';

/** Relative slack under which ρ·N is taken as an exact integer before the ceiling. */
const CEIL_SLACK = 1e-9;

/** k = max(1, ⌈ratio·nValid⌉) (capped at nValid; 0 when nValid = 0), with the float guard described above. */
export function eightyTwentyCount(nValid: number, ratio: number): number {
  if (nValid <= 0) return 0;
  const p = ratio * nValid;
  const r = Math.round(p);
  const c = Math.abs(p - r) <= CEIL_SLACK * Math.max(1, p) ? r : Math.ceil(p);
  return Math.min(nValid, Math.max(1, c));
}

/**
 * The 0/1 mask of the selected tokens: the top k = {@link eightyTwentyCount}(N, ratio) valid tokens by entropy,
 * lowest index first on ties ({@link topKMaskInto}, linear time). Shared by the CPU reference, the WebGPU engine and
 * `entropyTopMask`. Positions `0 ≤ i < min(mask.length, out.length)` are written.
 */
export function selectTopEntropy(entropy: ArrayLike<number>, mask: ArrayLike<number>, ratio: number, out: FloatArray = new Float64Array(mask.length)): FloatArray {
  topKMaskInto(entropy, mask, Math.min(mask.length, out.length), (valid) => eightyTwentyCount(valid, ratio), out);
  return out;
}

/** The `eighty-twenty` strategy; default aggregation `token-mean` over the selected tokens. Requires `batch.entropy`. */
export function eightyTwentyLossStrategy(batch: ResolvedBatch, config: ResolvedPolicyLossConfig): PolicyLossResult {
  if (!batch.entropy) {
    throw new ShapeError(
      'batch.entropy is required by eighty-twenty (it trains the top entropyTopRatio of valid tokens by entropy): pass the per-token entropy of the current policy',
      'entropy',
    );
  }
  const { B, T } = batch;
  const top = selectTopEntropy(batch.entropy, batch.mask, config.entropyTopRatio, scratch('eightyTwentyTop', B * T));
  // vanilla's fused row pass with the selection as its aggregation mask; the metrics stay over the response mask
  return rowsStrategy(vanillaRows, batch, config, 'token-mean', { mask: top, lengths: rowLengths({ data: top, rows: B, cols: T }) });
}

registerBuiltin({ name: 'eighty-twenty', cpu: eightyTwentyLossStrategy, defaultAggMode: 'token-mean', kernel: 'eighty_twenty' });
