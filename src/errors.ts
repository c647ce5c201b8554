/**
 * Typed errors. Every error this package throws on purpose is a {@link LumiragError} with a stable `code`,
 * so callers can branch on `err.code` instead of parsing messages.
 *
 * @module
 */

/** Stable machine-readable error codes. */
export type LumiragErrorCode =
  | 'E_SHAPE'
  | 'E_VALUE'
  | 'E_CONFIG'
  | 'E_UNKNOWN_MODE'
  | 'E_GPU_UNAVAILABLE'
  | 'E_GPU_DEVICE_LOST'
  | 'E_GPU_SHADER'
  | 'E_GPU'
  | 'E_ESTIMATOR'
  | 'E_EXHAUSTED'
  | 'E_REWARD'
  | 'E_BRIDGE'
  | 'E_IO';

/** Base class of every error thrown by lumirag-rl. */
export class LumiragError extends Error {
  /** Stable machine-readable code. */
  readonly code: LumiragErrorCode;
  /** The input field or option the error is about, when there is one (e.g. `"logProbs"`, `"clipRatioC"`). */
  readonly field: string | undefined;

  /**
   * @param code - stable error code
   * @param message - human-readable message (should name the field and the problem)
   * @param field - the offending input field or option, if any
   */
  constructor(code: LumiragErrorCode, message: string, field?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.field = field;
  }
}

/** Ragged rows, mismatched shapes, wrong lengths. */
export class ShapeError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending field */
  constructor(message: string, field?: string) {
    super('E_SHAPE', message, field);
  }
}

/** A value that is not allowed: non-finite at a valid position, a mask that is not 0/1, a negative length. */
export class ValueError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending field */
  constructor(message: string, field?: string) {
    super('E_VALUE', message, field);
  }
}

/** An invalid configuration value (e.g. `clipRatioC <= 1`, an overlong buffer longer than the response limit). */
export class ConfigError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending option */
  constructor(message: string, field?: string) {
    super('E_CONFIG', message, field);
  }
}

/** An unknown named mode (loss mode, aggregation mode, estimator, KL kind). The message lists the valid names. */
export class UnknownModeError extends LumiragError {
  /** The names that would have been accepted. */
  readonly valid: readonly string[];
  /**
   * @param kind - what kind of name it is (e.g. `"lossMode"`)
   * @param got - the name that was given
   * @param valid - the accepted names
   */
  constructor(kind: string, got: string, valid: readonly string[]) {
    super('E_UNKNOWN_MODE', `unknown ${kind} ${JSON.stringify(got)}; valid: ${valid.join(', ')}`, kind);
    this.valid = valid;
  }
}

/** Throw a {@link ValueError} unless `cond` holds. Internal helper shared by validators. */
export function ensure(cond: boolean, message: string, field?: string): asserts cond {
  if (!cond) throw new ValueError(message, field);
}

/** A reward function that threw, timed out, returned something that is not a number / `{ score }`, or no reward
 * registered for a `dataSource`. `field` names the item (e.g. `"items[3]"`) or option when known. */
export class RewardError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending item or option */
  constructor(message: string, field?: string) {
    super('E_REWARD', message, field);
  }
}

/** The reward bridge (HTTP server or client) failed: bad request, listen error, closed server. */
export class BridgeError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending field or option */
  constructor(message: string, field?: string) {
    super('E_BRIDGE', message, field);
  }
}

/**
 * An advantage estimator refused a batch where verl raises too: `grpo_passk` with a group of one sample, or
 * whitening (`reinforce_plus_plus`, `reinforce_plus_plus_baseline`, `gae`) with ≤ 1 valid token in the batch.
 */
export class EstimatorError extends LumiragError {
  /** @param message - what is wrong; @param field - the offending input or option */
  constructor(message: string, field?: string) {
    super('E_ESTIMATOR', message, field);
  }
}

/** No WebGPU adapter could be found (or the `webgpu` package could not be loaded) under `backend: 'webgpu'`. */
export class GpuUnavailableError extends LumiragError {
  /** @param message - why no adapter was found */
  constructor(message: string) {
    super('E_GPU_UNAVAILABLE', message, 'backend');
  }
}

/** The GPU device was lost (driver reset, `destroy()`, out of memory); create a new engine to continue. */
export class GpuDeviceLostError extends LumiragError {
  /** Dawn's / the browser's reason string (`'destroyed'` or `'unknown'`). */
  readonly reason: string;
  /** @param message - what was lost; @param reason - the device-lost reason */
  constructor(message: string, reason: string) {
    super('E_GPU_DEVICE_LOST', message, 'device');
    this.reason = reason;
  }
}

/** A WGSL shader failed to compile; the message carries the compiler's messages with line numbers. */
export class GpuShaderError extends LumiragError {
  /** The kernel (pipeline) name. */
  readonly kernel: string;
  /** @param kernel - kernel name; @param message - the WGSL compiler messages */
  constructor(kernel: string, message: string) {
    super('E_GPU_SHADER', message, kernel);
    this.kernel = kernel;
  }
}

/** Any other WebGPU failure (a validation error, an out-of-memory error, a failed map). */
export class GpuError extends LumiragError {
  /** @param message - what failed */
  constructor(message: string) {
    super('E_GPU', message);
  }
}

/**
 * Dynamic sampling ran out of generation batches (`algorithm.filter_groups.max_num_gen_batches`) before enough
 * prompt groups with a learning signal were kept; verl raises a ValueError at that point. Carries the counts.
 */
export class ExhaustedError extends LumiragError {
  /** Generation batches used (equals the maximum when the budget ran out). */
  readonly numGenBatches: number;
  /** The budget (`maxNumGenBatches`); 0 when the cause was a source that ran dry. */
  readonly maxNumGenBatches: number;
  /** Groups kept so far (verl's `num_prompt_in_batch`). */
  readonly numPromptInBatch: number;
  /** Groups required (`trainBatchSize`). */
  readonly trainBatchSize: number;
  /** Groups seen so far, kept or dropped. */
  readonly numGroupsSeen: number;
  /**
   * @param message - what ran out
   * @param counts - the counts at the time
   */
  constructor(
    message: string,
    counts: { numGenBatches: number; maxNumGenBatches: number; numPromptInBatch: number; trainBatchSize: number; numGroupsSeen: number },
  ) {
    super('E_EXHAUSTED', message, 'maxNumGenBatches');
    this.numGenBatches = counts.numGenBatches;
    this.maxNumGenBatches = counts.maxNumGenBatches;
    this.numPromptInBatch = counts.numPromptInBatch;
    this.trainBatchSize = counts.trainBatchSize;
    this.numGroupsSeen = counts.numGroupsSeen;
  }
}
