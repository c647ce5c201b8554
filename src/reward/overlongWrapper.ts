/**
 * DAPO overlong shaping as a reward wrapper, for verl users who do not run verl's DAPO reward manager (e.g. the naive
 * or batch manager calling a bridged `compute_score`): `reward = score + min(−(L − expected)/buffer · factor, 0)`
 * (SPEC.md §7), computed by {@link shapeOverlongReward}.
 *
 * @module
 */
import { ConfigError, RewardError } from '../errors.js';
import { defineReward, isRewardHook, type JsonObject, type RewardFn, type RewardHook, type RewardInput, type RewardValue } from './hooks.js';
import { checkOverlongConfig, shapeOverlongReward, type OverlongConfig, type OverlongPrecision } from './overlong.js';

/** Options of {@link withOverlongPenalty}. */
export interface OverlongWrapperOptions {
  /** The overlong-buffer settings (`maxResponseLength`, `overlongBufferLen`, `overlongPenaltyFactor`, `enable`). */
  overlong: OverlongConfig;
  /**
   * The valid response length in tokens of a sample. verl's `compute_score` does not receive token ids, so this must
   * come from somewhere: default reads `extraInfo.valid_response_length`, then `extraInfo.response_length`, and
   * fails the item when neither is a non-negative integer. Pass a tokenizer-based function otherwise.
   */
  responseLength?: (input: RewardInput) => number;
  /** verl's `overlong_buffer.log`: add `overlong_reward` (float) and `overlong` (bool) to the extras. Default false. */
  log?: boolean;
  /** Arithmetic of the shaped value; default `'float32'` (the value verl's float32 reward tensor holds). */
  precision?: OverlongPrecision;
  /** Name for messages; default `"<inner>+overlong"`. */
  name?: string;
}

function defaultLength(input: RewardInput): number {
  const ei = input.extraInfo;
  const v = ei?.valid_response_length ?? ei?.response_length;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new RewardError(
      'overlong shaping needs the response length: put a non-negative integer extra_info.valid_response_length ' +
        '(or response_length) in the data, or pass responseLength(input)',
      'extraInfo.valid_response_length',
    );
  }
  return v;
}

/**
 * Wrap a reward so its score gets DAPO's overlong penalty. A plain-number result stays a number unless `log` is on;
 * a dict keeps its extras and its `score` becomes the shaped reward.
 *
 * @example
 * ```ts
 * const shaped = withOverlongPenalty(mathDapoReward, {
 *   overlong: { maxResponseLength: 20480, overlongBufferLen: 4096, overlongPenaltyFactor: 1, enable: true },
 *   responseLength: ({ solutionStr }) => tokenizer.encode(solutionStr).ids.length,
 * });
 * ```
 */
export function withOverlongPenalty(reward: RewardFn | RewardHook, options: OverlongWrapperOptions): RewardHook {
  if (!options || typeof options !== 'object') throw new ConfigError('withOverlongPenalty needs options { overlong }', 'options');
  const cfg = checkOverlongConfig(options.overlong);
  const inner = defineReward(reward);
  const lengthOf = options.responseLength ?? defaultLength;
  const precision = options.precision ?? 'float32';
  return defineReward(
    async (input: RewardInput): Promise<RewardValue> => {
      const length = lengthOf(input);
      const { score, extras } = await inner.score(input, { signal: input.signal });
      const shaped = shapeOverlongReward(score, length, cfg, { precision });
      if (!options.log && extras === null) return shaped.reward;
      const out: JsonObject = { ...(extras ?? {}), score: shaped.reward };
      if (options.log) {
        out.overlong_reward = shaped.overlongReward;
        out.overlong = shaped.overlong;
      }
      return out as JsonObject & { score: number };
    },
    { name: options.name ?? `${isRewardHook(reward) ? reward.name : reward.name || 'reward'}+overlong` },
  );
}
