/**
 * `fillBatch`: the async driver of DAPO dynamic sampling. It draws prompts from a source, calls the user's
 * `generate` (n responses per prompt) and `score` (one verifier call per response, verl's `compute_score` shape),
 * optionally shapes overlong responses, filters groups with a {@link DynamicBatchFiller}, and keeps going until the
 * training batch is complete (or the budget runs out), reporting progress through `onProgress`.
 *
 * @module
 */
import { ExhaustedError, ValueError } from '../errors.js';
import { type OverlongConfig, shapeOverlongReward } from '../reward/overlong.js';
import {
  type AddReport,
  DynamicBatchFiller,
  type FillerRow,
  type OnExhausted,
  type TakeResult,
} from './dynamicBatchFiller.js';

/** What `score` may return: a number (or boolean), or a dict with `score` plus extras, like verl's `compute_score`. */
export type ScoreResult = number | boolean | { score: number | boolean; [key: string]: unknown };

/** Context passed to `generate`. */
export interface GenerateContext {
  /** 1-based generation-batch index within this call. */
  genBatch: number;
  /** Responses to produce per prompt. */
  n: number;
  /** A seed for this generation batch (`seed · 1_000_003 + genBatch`), so generation can be reproducible too. */
  seed: number;
  /** The caller's abort signal, if any. */
  signal: AbortSignal | undefined;
}

/** One response handed to `score`. */
export interface ScoreInput<P, S> {
  /** The prompt. */
  prompt: P;
  /** The response. */
  response: S;
  /** Which of the prompt's n responses (0-based). */
  sampleIndex: number;
  /** The group id. */
  uid: string;
}

/**
 * One scored response as `fillBatch` builds it (and as the filler sees it). Extras from a dict `score` result are
 * spread in. As in verl's DAPO reward manager, a plain-number score also sets `acc = score`.
 */
export interface ScoredRow<P, S> extends FillerRow {
  /** Group id: `"<uidPrefix>g<genBatch>p<index>"`. */
  uid: string;
  /** The prompt. */
  prompt: P;
  /** The response. */
  response: S;
  /** Which of the prompt's n responses. */
  sampleIndex: number;
  /** The verifier's score (float64, as returned). */
  score: number;
  /** verl's `seq_reward` / `seq_final_reward`: the value in the float32 reward tensor (score + overlong penalty). */
  seq_reward: number;
  /** Same as `seq_reward` (no KL-in-reward here). */
  seq_final_reward: number;
  /** The overlong penalty (present when `overlong` is configured). */
  overlong_reward?: number;
  /** Whether the penalty applied (present when `overlong` is configured). */
  overlong?: boolean;
  /** Valid response length (present when `overlong` is configured). */
  response_length?: number;
}

/** Progress events of {@link fillBatch}. */
export type FillProgressEvent =
  | { type: 'generate'; genBatch: number; prompts: number }
  | { type: 'genBatch'; genBatch: number; report: AddReport }
  | { type: 'exhausted'; cause: 'maxNumGenBatches' | 'source'; genBatch: number; numPromptInBatch: number; trainBatchSize: number }
  | { type: 'done'; completion: TakeResult<FillerRow>['completion']; metrics: TakeResult<FillerRow>['metrics'] };

/** A source of prompts: an array, any (async) iterable, or an (async) iterator. */
export type PromptSourceInput<P> = Iterable<P> | AsyncIterable<P> | Iterator<P> | AsyncIterator<P>;

/** Options of {@link fillBatch}. */
export interface FillBatchOptions<P, S> {
  /**
   * Where prompts come from. Iterators (generators included) are read with `next()` and never closed, so passing the
   * same iterator to the next `fillBatch` call continues where this one stopped; an array restarts at its start.
   */
  source: PromptSourceInput<P>;
  /** Produce n responses for each prompt: returns one array of n responses per prompt, in prompt order. */
  generate: (prompts: readonly P[], ctx: GenerateContext) => Promise<readonly (readonly S[])[]> | readonly (readonly S[])[];
  /** Score one response (verl's `compute_score`): a number, a boolean, or `{ score, ...extras }`; may be async. */
  score: (input: ScoreInput<P, S>) => Promise<ScoreResult> | ScoreResult;
  /** Groups per training batch (`data.train_batch_size`). */
  trainBatchSize: number;
  /** Responses per prompt (`rollout.n`). */
  n: number;
  /** Prompts per generation batch (`data.gen_batch_size`); default `trainBatchSize`. */
  genBatchSize?: number;
  /** Filter metric (`filter_groups.metric`); default `'acc'`. */
  metric?: string;
  /** `filter_groups.max_num_gen_batches`; ≤ 0 = unlimited (default 0). */
  maxNumGenBatches?: number;
  /** Default `'error'` (verl). */
  onExhausted?: OnExhausted;
  /** Seed for resampling and for `GenerateContext.seed`. Default 0. */
  seed?: number;
  /** `filter_groups.enable`; default true. */
  filterGroups?: boolean;
  /** Overlong shaping of each response's score, and how to measure a response's valid length. */
  overlong?: { config: OverlongConfig; responseLength: (response: S, prompt: P) => number };
  /** Prefix of generated uids (default `''`). */
  uidPrefix?: string;
  /** Most `score` calls in flight at once (default 64). */
  scoreConcurrency?: number;
  /** Called synchronously for each {@link FillProgressEvent}. */
  onProgress?: (event: FillProgressEvent) => void;
  /** Abort between steps (the current `generate`/`score` calls get the signal but are not cancelled). */
  signal?: AbortSignal;
}

/** The result of {@link fillBatch}: the filler's {@link TakeResult} plus every generation batch's report. */
export interface FillBatchResult<P, S> extends TakeResult<ScoredRow<P, S>> {
  /** One report per generation batch. */
  reports: AddReport[];
}

function toIterator<P>(source: PromptSourceInput<P>): { next(): Promise<IteratorResult<P>> } {
  const s = source as Partial<AsyncIterable<P> & Iterable<P> & AsyncIterator<P> & Iterator<P>>;
  if (typeof s.next === 'function') {
    const it = s as AsyncIterator<P> | Iterator<P>;
    return { next: async () => it.next() };
  }
  if (typeof s[Symbol.asyncIterator] === 'function') {
    const it = (s as AsyncIterable<P>)[Symbol.asyncIterator]();
    return { next: () => it.next() };
  }
  if (typeof s[Symbol.iterator] === 'function') {
    const it = (s as Iterable<P>)[Symbol.iterator]();
    return { next: async () => it.next() };
  }
  throw new ValueError('source must be an iterable, an async iterable or an iterator', 'source');
}

async function mapPool<T, U>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<U>): Promise<U[]> {
  const out = new Array<U>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function normaliseScore(res: ScoreResult, where: string): { score: number; extras: Record<string, unknown> } {
  if (typeof res === 'number' || typeof res === 'boolean') {
    const score = Number(res);
    if (!Number.isFinite(score)) throw new ValueError(`${where}: score must be finite, got ${res}`, 'score');
    return { score, extras: { acc: res } };
  }
  if (res == null || typeof res !== 'object' || !('score' in res)) {
    throw new ValueError(`${where}: score must return a number, a boolean or a dict with "score"`, 'score');
  }
  const score = Number(res.score);
  if (typeof res.score !== 'number' && typeof res.score !== 'boolean' || !Number.isFinite(score)) {
    throw new ValueError(`${where}: score.score must be a finite number, got ${String(res.score)}`, 'score');
  }
  const { score: _s, ...extras } = res;
  return { score, extras };
}

/**
 * Complete one training batch the DAPO way: draw `genBatchSize` prompts, generate n responses each, score them,
 * drop the groups without a learning signal, and repeat until `trainBatchSize` groups are kept (exactly
 * `trainBatchSize · n` rows are returned) or the budget runs out (`onExhausted`). A source that runs dry counts as
 * running out. Progress is reported through `onProgress`.
 */
export async function fillBatch<P, S>(options: FillBatchOptions<P, S>): Promise<FillBatchResult<P, S>> {
  const { generate, score, trainBatchSize, n, onProgress, signal, overlong } = options;
  if (typeof generate !== 'function') throw new ValueError('generate must be a function', 'generate');
  if (typeof score !== 'function') throw new ValueError('score must be a function', 'score');
  const filler = new DynamicBatchFiller<ScoredRow<P, S>>({
    trainBatchSize,
    n,
    metric: options.metric ?? 'acc',
    maxNumGenBatches: options.maxNumGenBatches ?? 0,
    onExhausted: options.onExhausted ?? 'error',
    seed: options.seed ?? 0,
    enable: options.filterGroups ?? true,
  });
  const genBatchSize = options.genBatchSize ?? trainBatchSize;
  if (!Number.isInteger(genBatchSize) || genBatchSize < 1) throw new ValueError(`genBatchSize must be a positive integer, got ${String(genBatchSize)}`, 'genBatchSize');
  const concurrency = options.scoreConcurrency ?? 64;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValueError(`scoreConcurrency must be a positive integer, got ${String(concurrency)}`, 'scoreConcurrency');
  const seed = options.seed ?? 0;
  const prefix = options.uidPrefix ?? '';
  const it = toIterator(options.source);
  const reports: AddReport[] = [];
  const emit = (e: FillProgressEvent): void => onProgress?.(e);
  let genBatch = 0;
  let sourceDone = false;

  while (!filler.isReady) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new ValueError('fillBatch aborted', 'signal');
    const prompts: P[] = [];
    while (!sourceDone && prompts.length < genBatchSize) {
      const r = await it.next();
      if (r.done) sourceDone = true;
      else prompts.push(r.value);
    }
    if (prompts.length === 0) {
      emit({ type: 'exhausted', cause: 'source', genBatch, numPromptInBatch: filler.numPromptInBatch, trainBatchSize });
      filler.exhaust(); // throws ExhaustedError under 'error'
      break;
    }
    genBatch += 1;
    emit({ type: 'generate', genBatch, prompts: prompts.length });
    const responses = await generate(prompts, { genBatch, n, seed: seed * 1_000_003 + genBatch, signal });
    if (!Array.isArray(responses) || responses.length !== prompts.length) {
      throw new ValueError(`generate must return one array per prompt (${prompts.length}), got ${Array.isArray(responses) ? responses.length : typeof responses}`, 'generate');
    }
    const items: ScoreInput<P, S>[] = [];
    prompts.forEach((prompt, p) => {
      const group = responses[p];
      if (!Array.isArray(group) || group.length !== n) {
        throw new ValueError(`generate returned ${Array.isArray(group) ? group.length : typeof group} responses for prompt ${p}, expected n = ${n}`, 'generate');
      }
      const uid = `${prefix}g${genBatch}p${p}`;
      group.forEach((response, sampleIndex) => items.push({ prompt, response: response as S, sampleIndex, uid }));
    });
    const rows = await mapPool(items, concurrency, async (item, i) => {
      const { score: s, extras } = normaliseScore(await score(item), `score for ${item.uid}[${item.sampleIndex}] (item ${i})`);
      let seqReward = Math.fround(s);
      const extra: Record<string, unknown> = {};
      if (overlong) {
        const L = overlong.responseLength(item.response, item.prompt);
        const shaped = shapeOverlongReward(s, L, overlong.config);
        seqReward = shaped.reward;
        extra.overlong_reward = shaped.overlongReward;
        extra.overlong = shaped.overlong;
        extra.response_length = L;
      }
      const row: ScoredRow<P, S> = {
        ...extras,
        ...extra,
        uid: item.uid,
        prompt: item.prompt,
        response: item.response,
        sampleIndex: item.sampleIndex,
        score: s,
        seq_reward: seqReward,
        seq_final_reward: seqReward,
      };
      return row;
    });
    let report: AddReport;
    try {
      report = filler.add(rows);
    } catch (err) {
      if (err instanceof ExhaustedError) {
        emit({ type: 'exhausted', cause: 'maxNumGenBatches', genBatch, numPromptInBatch: err.numPromptInBatch, trainBatchSize });
      }
      throw err;
    }
    reports.push(report);
    emit({ type: 'genBatch', genBatch, report });
    if (report.exhausted) {
      emit({ type: 'exhausted', cause: 'maxNumGenBatches', genBatch, numPromptInBatch: report.numPromptInBatch, trainBatchSize });
    }
  }
  const taken = filler.take();
  emit({ type: 'done', completion: taken.completion, metrics: taken.metrics });
  return { ...taken, reports };
}
