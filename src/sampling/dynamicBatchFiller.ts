/**
 * DAPO dynamic sampling (verl's `algorithm.filter_groups`, recipe `dapo_ray_trainer.py`; SPEC.md §8): drop prompt
 * groups whose responses all got the same metric value (no learning signal), keep feeding generation batches until
 * `trainBatchSize` groups are kept, then hand over exactly `trainBatchSize · n` rows.
 *
 * @module
 */
import { ExhaustedError, ShapeError, ValueError } from '../errors.js';
import { seededRng, shuffled, type UniformRng } from '../random.js';

/** What to do when `maxNumGenBatches` generation batches did not yield enough groups. */
export type OnExhausted = 'error' | 'partial' | 'resample';

/** The accepted values of {@link OnExhausted}. */
export const ON_EXHAUSTED_MODES: readonly OnExhausted[] = ['error', 'partial', 'resample'];

/** A group id: verl's `uid` (one per prompt of a generation batch). */
export type GroupUid = string | number;

/**
 * One scored response, like a row of verl's `non_tensor_batch`: the group `uid`, the filter metric, and anything else
 * (`{ uid: 'p17', acc: 1, score: 1, response: '…' }`). Rows are never modified.
 */
export interface FillerRow {
  /** The group (prompt) this response belongs to. Rows of one group may be interleaved with other groups' rows. */
  uid: GroupUid;
  [key: string]: unknown;
}

/** Options of {@link DynamicBatchFiller}: verl's keys in camelCase. */
export interface DynamicBatchFillerOptions {
  /** Groups (prompts) per training batch (`data.train_batch_size`). */
  trainBatchSize: number;
  /** Responses per prompt (`actor_rollout_ref.rollout.n`); every group must have exactly n rows. */
  n: number;
  /**
   * The per-row field compared within a group (`algorithm.filter_groups.metric`): `acc`, `score`, `seq_reward`,
   * `seq_final_reward` or any key of the rows. Values must be numbers or booleans. Default `'acc'`.
   */
  metric?: string;
  /** Generation-batch budget (`algorithm.filter_groups.max_num_gen_batches`); ≤ 0 = unlimited (verl's default 0). */
  maxNumGenBatches?: number;
  /** What happens when the budget runs out: `'error'` (verl), `'partial'` or `'resample'`. Default `'error'`. */
  onExhausted?: OnExhausted;
  /** Seed of the resampling choice (`'resample'`). Default 0. The same seed and inputs give the same batch. */
  seed?: number;
  /** `algorithm.filter_groups.enable`: false keeps every group (no filtering). Default true. */
  enable?: boolean;
}

/** Why a group was dropped. */
export type GroupDropReason = 'all-equal' | 'non-finite';

/** A dropped group in an {@link AddReport}. */
export interface DroppedGroup {
  /** The group id. */
  uid: GroupUid;
  /** `'all-equal'`: every metric value equal (verl: std = 0); `'non-finite'`: a NaN/±Infinity value (verl: std is NaN). */
  reason: GroupDropReason;
  /** Rows in the group. */
  size: number;
  /** The shared metric value (`'all-equal'`) or the first non-finite one. */
  value: number;
}

/** What one {@link DynamicBatchFiller.add} call did. */
export interface AddReport {
  /** 1-based index of this generation batch (verl's `num_gen_batches` after the increment). */
  genBatch: number;
  /** Rows received. */
  rows: number;
  /** Groups in this generation batch. */
  groupsSeen: number;
  /** Groups kept from this generation batch. */
  groupsKept: number;
  /** Groups dropped from this generation batch. */
  groupsDropped: number;
  /** Ids of the kept groups, in order of first appearance. */
  kept: GroupUid[];
  /** The dropped groups and why. */
  dropped: DroppedGroup[];
  /** Groups kept so far, all batches (verl's `num_prompt_in_batch`). */
  numPromptInBatch: number;
  /** Groups needed. */
  trainBatchSize: number;
  /** Whether `trainBatchSize` groups are now kept. */
  isFull: boolean;
  /** Whether the budget ran out with fewer groups (only with `onExhausted` `'partial'`/`'resample'`). */
  exhausted: boolean;
}

/**
 * Metrics of one training batch. `train/num_gen_batches` is the one verl logs; the others are lumirag-rl's
 * (verl prints none of them).
 */
export interface FillerMetrics {
  /** Generation batches used for this training batch (verl's metric). */
  'train/num_gen_batches': number;
  /** Groups seen, kept or not. */
  'train/num_groups_seen': number;
  /** Groups that passed the filter (surplus included). */
  'train/num_groups_kept': number;
  /** Groups dropped by the filter. */
  'train/num_groups_dropped': number;
  /** kept / seen (0 when nothing was seen). */
  'train/kept_group_fraction': number;
  /** Kept groups cut off because the batch was already complete (returned as `surplus`). */
  'train/num_surplus_groups': number;
  /** Groups added by resampling kept groups (`onExhausted: 'resample'`). */
  'train/num_resampled_groups': number;
  /** Groups in the handed-over batch. */
  'train/num_batch_groups': number;
  /** 1 when the batch holds `trainBatchSize` filtered groups without resampling, else 0. */
  'train/batch_complete': number;
}

/** One group duplicated by resampling. */
export interface ResampledGroup {
  /** The uid the copy carries (`"<uid>#resample<k>"`, so advantage estimators see it as its own group). */
  uid: string;
  /** The kept group it copies. */
  from: GroupUid;
}

/** The result of {@link DynamicBatchFiller.take}. */
export interface TakeResult<R extends FillerRow> {
  /**
   * The training batch: exactly `trainBatchSize · n` rows (fewer only under `'partial'`), whole groups, each group's
   * rows together in their original order, groups in the order they were kept.
   */
  rows: R[];
  /** Kept rows beyond the batch (whole groups), which verl discards. */
  surplus: R[];
  /** The batch's metrics. */
  metrics: FillerMetrics;
  /** How the batch was completed: `'full'`, `'partial'` (under budget) or `'resample'`. */
  completion: 'full' | 'partial' | 'resample';
  /** Groups duplicated by resampling (empty unless `completion` is `'resample'`). */
  resampled: ResampledGroup[];
}

interface Group<R> {
  uid: GroupUid;
  rows: R[];
}

function int(v: unknown, field: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new ValueError(`${field} must be an integer >= ${min}, got ${String(v)}`, field);
  }
  return v;
}

/**
 * verl's keep rule for one group: kept iff it has one sample, or its metric values are not all equal. Equality is
 * exact float64 comparison (verl computes `np.std(values) > 0` in float64). A non-finite value makes verl's std NaN,
 * so such a group is dropped (unless it has one sample).
 *
 * @returns null when kept, else why it is dropped
 */
export function groupDropReason(values: readonly number[]): { reason: GroupDropReason; value: number } | null {
  if (values.length <= 1) return null;
  for (const v of values) if (!Number.isFinite(v)) return { reason: 'non-finite', value: v };
  const first = values[0] as number;
  for (let i = 1; i < values.length; i++) if (values[i] !== first) return null;
  return { reason: 'all-equal', value: first };
}

/**
 * The dynamic-sampling batch filler. Feed it generation batches with {@link add}; when {@link isFull} (or the budget
 * ran out under `'partial'`/`'resample'`), {@link take} hands over the training batch and resets the filler for the
 * next step (verl resets `num_gen_batches` after each step).
 *
 * ```ts
 * const filler = new DynamicBatchFiller({ trainBatchSize: 512, n: 16, metric: 'acc', maxNumGenBatches: 10 });
 * while (!filler.isFull) filler.add(await generateAndScore(nextPrompts()));
 * const { rows, surplus, metrics } = filler.take();
 * ```
 */
export class DynamicBatchFiller<R extends FillerRow = FillerRow> {
  /** Groups per training batch. */
  readonly trainBatchSize: number;
  /** Responses per group. */
  readonly n: number;
  /** The filter metric. */
  readonly metric: string;
  /** The generation-batch budget (≤ 0 = unlimited). */
  readonly maxNumGenBatches: number;
  /** The exhaustion policy. */
  readonly onExhausted: OnExhausted;
  /** Whether filtering is on. */
  readonly enable: boolean;

  private readonly rng: UniformRng;
  private kept: Group<R>[] = [];
  private seenUids = new Set<GroupUid>();
  private numGenBatches = 0;
  private groupsSeen = 0;
  private groupsDropped = 0;
  private exhausted = false;
  private failed = false;

  /** @param options - see {@link DynamicBatchFillerOptions} */
  constructor(options: DynamicBatchFillerOptions) {
    if (options == null || typeof options !== 'object') throw new ValueError('DynamicBatchFiller options must be an object', 'options');
    this.trainBatchSize = int(options.trainBatchSize, 'trainBatchSize', 1);
    this.n = int(options.n, 'n', 1);
    const metric = options.metric ?? 'acc';
    if (typeof metric !== 'string' || metric.length === 0) throw new ValueError(`metric must be a non-empty string, got ${String(metric)}`, 'metric');
    this.metric = metric;
    const max = options.maxNumGenBatches ?? 0;
    if (typeof max !== 'number' || !Number.isInteger(max)) throw new ValueError(`maxNumGenBatches must be an integer, got ${String(max)}`, 'maxNumGenBatches');
    this.maxNumGenBatches = max;
    const mode = options.onExhausted ?? 'error';
    if (!ON_EXHAUSTED_MODES.includes(mode)) {
      throw new ValueError(`onExhausted must be one of ${ON_EXHAUSTED_MODES.join(', ')}, got ${String(mode)}`, 'onExhausted');
    }
    this.onExhausted = mode;
    const seed = options.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new ValueError(`seed must be a finite number, got ${String(seed)}`, 'seed');
    this.rng = seededRng(seed);
    this.enable = options.enable ?? true;
  }

  /** Groups kept so far (verl's `num_prompt_in_batch`). */
  get numPromptInBatch(): number {
    return this.kept.length;
  }

  /** Generation batches added since the last {@link take}. */
  get numGenBatchesUsed(): number {
    return this.numGenBatches;
  }

  /** Whether `trainBatchSize` groups are kept. */
  get isFull(): boolean {
    return this.kept.length >= this.trainBatchSize;
  }

  /** Whether the budget ran out short of a full batch (only under `'partial'` / `'resample'`). */
  get isExhausted(): boolean {
    return this.exhausted;
  }

  /** Whether {@link take} will succeed now (full, or exhausted under `'partial'` / `'resample'`). */
  get isReady(): boolean {
    return !this.failed && (this.isFull || this.exhausted);
  }

  /**
   * Add one generation batch of scored responses (complete groups of n rows each, keyed by `uid`). Groups whose
   * metric values are all equal are dropped. Counts one generation batch against `maxNumGenBatches`; on the max-th
   * batch without a full batch, `'error'` throws {@link ExhaustedError} (as verl does) and the others mark the filler
   * exhausted.
   *
   * @param rows - the batch's rows, groups possibly interleaved; not modified
   * @returns what was kept and dropped
   */
  add(rows: readonly R[]): AddReport {
    this.checkOpen('add');
    if (!Array.isArray(rows)) throw new ValueError('rows must be an array', 'rows');
    const groups = new Map<GroupUid, Group<R>>();
    rows.forEach((row, i) => {
      if (row == null || typeof row !== 'object') throw new ValueError(`rows[${i}] must be an object`, 'rows');
      const uid = row.uid;
      if (!(typeof uid === 'string' && uid.length > 0) && !(typeof uid === 'number' && Number.isFinite(uid))) {
        throw new ValueError(`rows[${i}].uid must be a non-empty string or a finite number, got ${String(uid)}`, 'uid');
      }
      if (this.seenUids.has(uid)) {
        throw new ValueError(`rows[${i}].uid ${JSON.stringify(uid)} already came in an earlier generation batch; uids must be unique per generation`, 'uid');
      }
      const v = row[this.metric];
      if (typeof v !== 'number' && typeof v !== 'boolean') {
        throw new ValueError(`rows[${i}].${this.metric} (the filter metric) must be a number or boolean, got ${v === undefined ? 'undefined' : typeof v}`, this.metric);
      }
      let g = groups.get(uid);
      if (!g) groups.set(uid, (g = { uid, rows: [] }));
      g.rows.push(row);
    });
    for (const g of groups.values()) {
      if (g.rows.length !== this.n) {
        throw new ShapeError(`group ${JSON.stringify(g.uid)} has ${g.rows.length} rows, expected n = ${this.n}; groups must arrive whole`, 'rows');
      }
    }
    this.numGenBatches += 1;
    const kept: GroupUid[] = [];
    const dropped: DroppedGroup[] = [];
    for (const g of groups.values()) {
      this.seenUids.add(g.uid);
      const why = this.enable ? groupDropReason(g.rows.map((r) => Number(r[this.metric]))) : null;
      if (why) dropped.push({ uid: g.uid, reason: why.reason, size: g.rows.length, value: why.value });
      else {
        this.kept.push(g);
        kept.push(g.uid);
      }
    }
    this.groupsSeen += groups.size;
    this.groupsDropped += dropped.length;
    if (!this.isFull && this.maxNumGenBatches > 0 && this.numGenBatches >= this.maxNumGenBatches) this.markExhausted('maxNumGenBatches');
    return {
      genBatch: this.numGenBatches,
      rows: rows.length,
      groupsSeen: groups.size,
      groupsKept: kept.length,
      groupsDropped: dropped.length,
      kept,
      dropped,
      numPromptInBatch: this.kept.length,
      trainBatchSize: this.trainBatchSize,
      isFull: this.isFull,
      exhausted: this.exhausted,
    };
  }

  /**
   * Declare that no more generation batches will come (e.g. the prompt source ran dry). If the batch is not full,
   * this applies `onExhausted` now: `'error'` throws {@link ExhaustedError}; the others make {@link take} possible.
   */
  exhaust(): void {
    this.checkOpen('exhaust');
    if (!this.isFull) this.markExhausted('source');
  }

  private markExhausted(cause: 'maxNumGenBatches' | 'source'): void {
    if (this.onExhausted === 'error') {
      this.failed = true;
      const what = cause === 'maxNumGenBatches'
        ? `Generated too many. Please check if your data are too difficult. You could also try set max_num_gen_batches=0 to enable endless trials. (${this.numGenBatches} of maxNumGenBatches=${this.maxNumGenBatches} generation batches`
        : `The prompt source ran dry (${this.numGenBatches} generation batches`;
      throw new ExhaustedError(`${what}; ${this.kept.length} of ${this.trainBatchSize} groups kept, ${this.groupsSeen} seen)`, {
        numGenBatches: this.numGenBatches,
        maxNumGenBatches: cause === 'maxNumGenBatches' ? this.maxNumGenBatches : 0,
        numPromptInBatch: this.kept.length,
        trainBatchSize: this.trainBatchSize,
        numGroupsSeen: this.groupsSeen,
      });
    }
    this.exhausted = true;
  }

  private checkOpen(what: string): void {
    if (this.failed) throw new ValueError(`${what}: the filler ran out of generation batches under onExhausted 'error'; call reset()`, 'onExhausted');
    if (what !== 'take' && (this.isFull || this.exhausted)) {
      throw new ValueError(`${what}: the filler is ${this.isFull ? 'full' : 'exhausted'}; call take() first`, 'rows');
    }
  }

  /**
   * Hand over the training batch and reset for the next step. Throws {@link ValueError} when not {@link isReady}.
   * Under `'resample'` with nothing kept at all, throws {@link ExhaustedError} (there is nothing to resample).
   */
  take(): TakeResult<R> {
    this.checkOpen('take');
    if (!this.isReady) {
      throw new ValueError(`take: only ${this.kept.length} of ${this.trainBatchSize} groups kept and the budget is not used up; add more generation batches`, 'trainBatchSize');
    }
    const T = this.trainBatchSize;
    let batch = this.kept.slice(0, T);
    const surplusGroups = this.kept.slice(T);
    let completion: TakeResult<R>['completion'] = 'full';
    const resampled: ResampledGroup[] = [];
    if (batch.length < T) {
      if (this.onExhausted === 'partial') completion = 'partial';
      else {
        if (batch.length === 0) {
          const counts = {
            numGenBatches: this.numGenBatches,
            maxNumGenBatches: this.maxNumGenBatches,
            numPromptInBatch: 0,
            trainBatchSize: T,
            numGroupsSeen: this.groupsSeen,
          };
          this.reset();
          throw new ExhaustedError(`take: no group was kept in ${counts.numGenBatches} generation batches (${counts.numGroupsSeen} seen); nothing to resample`, counts);
        }
        completion = 'resample';
        batch = batch.concat(this.resample(batch, T - batch.length, resampled));
      }
    }
    const metrics: FillerMetrics = {
      'train/num_gen_batches': this.numGenBatches,
      'train/num_groups_seen': this.groupsSeen,
      'train/num_groups_kept': this.kept.length,
      'train/num_groups_dropped': this.groupsDropped,
      'train/kept_group_fraction': this.groupsSeen > 0 ? this.kept.length / this.groupsSeen : 0,
      'train/num_surplus_groups': surplusGroups.length,
      'train/num_resampled_groups': resampled.length,
      'train/num_batch_groups': batch.length,
      'train/batch_complete': completion === 'full' ? 1 : 0,
    };
    const result: TakeResult<R> = {
      rows: batch.flatMap((g) => g.rows),
      surplus: surplusGroups.flatMap((g) => g.rows),
      metrics,
      completion,
      resampled,
    };
    this.reset();
    return result;
  }

  /** Pick `need` copies among the kept groups: a seeded shuffle, cycled (so copies spread evenly), fresh uids. */
  private resample(kept: readonly Group<R>[], need: number, out: ResampledGroup[]): Group<R>[] {
    const copies: Group<R>[] = [];
    const times = new Map<GroupUid, number>();
    let order: Group<R>[] = [];
    while (copies.length < need) {
      if (order.length === 0) order = shuffled(kept, this.rng);
      const g = order.shift() as Group<R>;
      const k = (times.get(g.uid) ?? 0) + 1;
      times.set(g.uid, k);
      const uid = `${String(g.uid)}#resample${k}`;
      copies.push({ uid, rows: g.rows.map((r) => ({ ...r, uid })) });
      out.push({ uid, from: g.uid });
    }
    return copies;
  }

  /** Forget everything held (kept groups, counts, seen uids); the random stream continues. */
  reset(): void {
    this.kept = [];
    this.seenUids = new Set();
    this.numGenBatches = 0;
    this.groupsSeen = 0;
    this.groupsDropped = 0;
    this.exhausted = false;
    this.failed = false;
  }
}
