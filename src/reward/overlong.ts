/**
 * DAPO overlong reward shaping (verl's DAPO reward manager, `verl/workers/reward_manager/dapo.py`; SPEC.md §7).
 *
 * A response of valid length `L` whose length passes `expected = maxResponseLength − overlongBufferLen` gets a soft
 * penalty that grows linearly from 0 at `L = expected` to `−overlongPenaltyFactor` at `L = maxResponseLength`:
 *
 * ```
 * overlongReward = min(−(L − expected) / overlongBufferLen · overlongPenaltyFactor, 0)
 * reward         = score + overlongReward          (only when the buffer is enabled)
 * ```
 *
 * The reward is written into verl's float32 reward tensor at column `L − 1`. By default the numbers returned here are
 * the ones verl produces, float32 rounding included (see {@link OverlongPrecision}).
 *
 * @module
 */
import { ConfigError, ValueError } from '../errors.js';

/**
 * The overlong-buffer settings: the seed's `max_response_length`, `enable_overlong_buffer`, `overlong_buffer_len`
 * and `overlong_penalty_factor` (verl: `data.max_response_length`, `reward_model.overlong_buffer.{enable,len,
 * penalty_factor}`).
 */
export interface OverlongConfig {
  /** Longest response the rollout may generate, in tokens (`max_response_length`, verl's `max_resp_len`). */
  maxResponseLength: number;
  /** Size of the soft-penalty buffer in tokens (`overlong_buffer_len`). Must be > 0 when enabled, ≤ maxResponseLength. */
  overlongBufferLen: number;
  /** Penalty at `L = maxResponseLength` (`overlong_penalty_factor`). verl's default 0.0; DAPO paper 1.0. */
  overlongPenaltyFactor: number;
  /** Turn the shaping on (`enable_overlong_buffer`). When false the reward is the score. */
  enable: boolean;
}

/**
 * How the numbers are computed.
 * - `'float32'` (default): as verl does it. The length is an int64 tensor, so `(expected − L) / bufferLen` runs in
 *   float32 (torch's default dtype) and so do the multiplication by the factor and the addition of the score; the
 *   result is then stored in the float32 reward tensor. `reward` is therefore a float32 value (e.g. a score of 0.7
 *   comes back as 0.699999988079071).
 * - `'float64'`: the same formula in plain float64, nothing rounded.
 */
export type OverlongPrecision = 'float32' | 'float64';

/** Options of {@link overlongPenalty} and {@link shapeOverlongReward}. */
export interface OverlongOptions {
  /** Arithmetic to reproduce; default `'float32'` (verl's reward tensor). */
  precision?: OverlongPrecision;
}

/** The result of {@link shapeOverlongReward}. */
export interface ShapedReward {
  /** The value verl writes into the reward tensor: `score + overlongReward` (or the score when disabled). */
  reward: number;
  /** The penalty (≤ 0; `0` when disabled or not overlong). verl's `reward_extra_info["overlong_reward"]`. */
  overlongReward: number;
  /** Whether a penalty applied (`overlongReward < 0`). verl's `reward_extra_info["overlong"]`. */
  overlong: boolean;
  /**
   * The response column that receives the reward: `validResponseLength − 1`. For an empty response this is `−1`;
   * verl indexes with it, so in a padded row of width T it lands in the last column (T − 1). Use
   * {@link rewardColumn} to resolve it against a width.
   */
  rewardPosition: number;
}

const f32 = Math.fround;

/** Validate an {@link OverlongConfig}: the checks verl asserts, plus those that avoid a division by zero. */
export function checkOverlongConfig(cfg: OverlongConfig): OverlongConfig {
  if (cfg == null || typeof cfg !== 'object') throw new ConfigError('overlong config must be an object', 'overlong');
  const { maxResponseLength, overlongBufferLen, overlongPenaltyFactor, enable } = cfg;
  if (typeof enable !== 'boolean') throw new ConfigError(`enable must be a boolean, got ${String(enable)}`, 'enable');
  if (!Number.isInteger(maxResponseLength) || maxResponseLength <= 0) {
    throw new ConfigError(`maxResponseLength must be a positive integer, got ${String(maxResponseLength)}`, 'maxResponseLength');
  }
  if (!Number.isInteger(overlongBufferLen) || overlongBufferLen < 0) {
    throw new ConfigError(`overlongBufferLen must be a non-negative integer, got ${String(overlongBufferLen)}`, 'overlongBufferLen');
  }
  if (typeof overlongPenaltyFactor !== 'number' || !Number.isFinite(overlongPenaltyFactor)) {
    throw new ConfigError(`overlongPenaltyFactor must be a finite number, got ${String(overlongPenaltyFactor)}`, 'overlongPenaltyFactor');
  }
  if (overlongBufferLen > maxResponseLength) {
    throw new ConfigError(
      `overlongBufferLen (${overlongBufferLen}) must be <= maxResponseLength (${maxResponseLength}); verl asserts max_resp_len >= overlong_buffer.len`,
      'overlongBufferLen',
    );
  }
  if (enable && overlongBufferLen === 0) {
    throw new ConfigError('overlongBufferLen must be > 0 when the overlong buffer is enabled (verl divides by it)', 'overlongBufferLen');
  }
  return cfg;
}

function checkLength(validResponseLength: number): void {
  if (!Number.isInteger(validResponseLength) || validResponseLength < 0) {
    throw new ValueError(`validResponseLength must be a non-negative integer, got ${String(validResponseLength)}`, 'validResponseLength');
  }
}

/** The penalty before verl's `min(·, 0)`; `null` when the buffer is disabled. */
function rawPenalty(validResponseLength: number, cfg: OverlongConfig, precision: OverlongPrecision): number | null {
  checkOverlongConfig(cfg);
  checkLength(validResponseLength);
  if (!cfg.enable) return null;
  // −(L − expected) computed as an integer (never −0), like verl's int64 tensor.
  const excess = cfg.maxResponseLength - cfg.overlongBufferLen - validResponseLength;
  return precision === 'float32'
    ? f32(f32(f32(excess) / f32(cfg.overlongBufferLen)) * f32(cfg.overlongPenaltyFactor))
    : (excess / cfg.overlongBufferLen) * cfg.overlongPenaltyFactor;
}

/**
 * The overlong penalty `min(−(L − expected)/bufferLen · factor, 0)` for one response, or 0 when the buffer is
 * disabled. The result is ≤ 0; at `L = expected` it is +0, as verl computes it from an integer difference.
 *
 * @param validResponseLength - valid response tokens L (verl sums the response attention mask, tool tokens included)
 * @param cfg - the buffer settings (validated)
 * @param options - `precision` (default `'float32'`, verl's arithmetic)
 */
export function overlongPenalty(validResponseLength: number, cfg: OverlongConfig, options: OverlongOptions = {}): number {
  const pen = rawPenalty(validResponseLength, cfg, options.precision ?? 'float32');
  // Python's min(pen, 0) returns the literal 0 when 0 < pen, else pen.
  return pen === null || 0 < pen ? 0 : pen;
}

/**
 * Shape one response's score the way verl's DAPO reward manager does: the reward, the penalty, whether it applied,
 * and the column that receives the reward.
 *
 * @param score - the verifier's score (`compute_score`'s number, or its dict's `score`)
 * @param validResponseLength - valid response tokens L (a non-negative integer; above maxResponseLength the penalty
 *   keeps growing, as verl's formula has no floor)
 * @param cfg - the buffer settings
 * @param options - `precision` (default `'float32'`, the value verl stores in its float32 reward tensor)
 */
export function shapeOverlongReward(
  score: number,
  validResponseLength: number,
  cfg: OverlongConfig,
  options: OverlongOptions = {},
): ShapedReward {
  if (typeof score !== 'number' || !Number.isFinite(score)) throw new ValueError(`score must be a finite number, got ${String(score)}`, 'score');
  const precision = options.precision ?? 'float32';
  const pen = rawPenalty(validResponseLength, cfg, precision);
  const overlongReward = pen === null || 0 < pen ? 0 : pen;
  let reward: number;
  if (precision === 'float64') reward = score + overlongReward;
  // Disabled, or min() returned the int 0: the Python float score is stored in the float32 tensor.
  else if (pen === null || 0 < pen) reward = f32(score);
  // min() returned the float32 tensor: score + tensor runs in float32 (the score rounded first).
  else reward = f32(f32(score) + overlongReward);
  return { reward, overlongReward, overlong: overlongReward < 0, rewardPosition: validResponseLength - 1 };
}

/**
 * The column of a padded response row of width `width` that receives the reward, resolving verl's index `L − 1`
 * the way Python does: an empty response (L = 0) gives index −1, i.e. the last column `width − 1`.
 *
 * @param validResponseLength - valid response tokens L
 * @param width - the padded response width T (≥ 1, ≥ L)
 */
export function rewardColumn(validResponseLength: number, width: number): number {
  if (!Number.isInteger(width) || width < 1) throw new ValueError(`width must be a positive integer, got ${String(width)}`, 'width');
  if (!Number.isInteger(validResponseLength) || validResponseLength < 0 || validResponseLength > width) {
    throw new ValueError(`validResponseLength must be an integer in [0, ${width}], got ${String(validResponseLength)}`, 'validResponseLength');
  }
  return validResponseLength > 0 ? validResponseLength - 1 : width - 1;
}

/** One row for {@link overlongRewardTensor}. */
export interface OverlongRewardItem {
  /** The verifier's score. */
  score: number;
  /** Valid response tokens L. */
  validResponseLength: number;
}

/** The result of {@link overlongRewardTensor}. */
export interface OverlongRewardTensor {
  /** verl's `reward_tensor` (`token_level_scores`): zeros, with each row's reward at its {@link rewardColumn}. Row-major B×T. */
  rewardTensor: Float32Array;
  /** `[B, T]`. */
  shape: [number, number];
  /** The per-row shaping results. */
  rows: ShapedReward[];
}

/**
 * Build verl's float32 reward tensor for a batch: shape every row with {@link shapeOverlongReward} and place its
 * reward at column L − 1 of a zero `B × width` tensor (an empty response's reward goes to the last column, as in verl).
 *
 * @param items - one `{ score, validResponseLength }` per response
 * @param width - the padded response width T (usually maxResponseLength)
 * @param cfg - the buffer settings
 */
export function overlongRewardTensor(items: readonly OverlongRewardItem[], width: number, cfg: OverlongConfig): OverlongRewardTensor {
  const rows = items.map((it, i) => {
    if (it == null || typeof it !== 'object') throw new ValueError(`items[${i}] must be { score, validResponseLength }`, 'items');
    return shapeOverlongReward(it.score, it.validResponseLength, cfg);
  });
  const rewardTensor = new Float32Array(rows.length * width);
  rows.forEach((r, i) => {
    rewardTensor[i * width + rewardColumn(items[i]!.validResponseLength, width)] = r.reward;
  });
  return { rewardTensor, shape: [rows.length, width], rows };
}
