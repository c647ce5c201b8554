/**
 * The main job: a small policy trained the DAPO way, end to end. Per step: sample n responses per prompt,
 * score them with the math_dapo verifier, shape overlong responses, let the dynamic-sampling filler drop
 * all-equal groups and complete the batch, compute GRPO advantages, run the chosen strategy's loss and gradient
 * on the engine, chain the gradient into the policy's parameters, and take an Adam step.
 *
 * @module
 */
import { grpoAdvantages } from '../advantages/index.js';
import type { PolicyLossConfig } from '../config/policyLoss.js';
import { presets } from '../config/presets.js';
import type { PolicyLossBatch } from '../losses/types.js';
import { mathDapoScore } from '../reward/index.js';
import { shapeOverlongReward } from '../reward/overlong.js';
import { ExhaustedError } from '../errors.js';
import { DynamicBatchFiller, type TakeResult } from '../sampling/index.js';
import { mulberry32, shuffled } from '../random.js';
import { Adam, MlpPolicy, type Sample } from './policy.js';
import { type ArithmeticPrompt, VOCAB, arithmeticPrompts, decodeResponse } from './task.js';

/** The seed's three strategies. */
export type DemoStrategy = 'dapo' | 'gspo' | 'sapo';

/** What runs the loss: an engine's `policyLoss` (WebGPU or CPU) or the CPU function. */
export type LossRunner = (
  lossMode: string,
  batch: PolicyLossBatch,
  config: PolicyLossConfig,
) => Promise<{ loss: number; grad: ArrayLike<number>; metrics: Record<string, number> }>;

/** Options of {@link trainDemo}. Defaults are sized for a couple of minutes on two cores for all three strategies. */
export interface DemoOptions {
  strategy: DemoStrategy;
  /** Training steps (default 150). */
  steps?: number;
  /** Seed of everything random (default 1). */
  seed?: number;
  /** verl's data.train_batch_size: prompt groups per training batch (default 16). */
  trainBatchSize?: number;
  /** verl's rollout.n: samples per prompt (default 8). */
  n?: number;
  /** Prompts drawn per generation batch (default 32). */
  genBatchSize?: number;
  /** algorithm.filter_groups.max_num_gen_batches (default 8); the batch is then completed by resampling. */
  maxNumGenBatches?: number;
  /** PPO mini-batches per step (default 2: the second is slightly off-policy, so the clip matters). */
  miniBatches?: number;
  /** Adam learning rate (default 0.01). */
  lr?: number;
  /** data.max_response_length in tokens (default 6). */
  maxResponseLength?: number;
  /** overlong_buffer_len (default 2). */
  overlongBufferLen?: number;
  /** overlong_penalty_factor (default 1.0). */
  overlongPenaltyFactor?: number;
  /** Operands 0..operands-1 (default 6: 36 prompts, sums 0..10). */
  operands?: number;
  /** Runs the loss: an engine's `policyLoss` (WebGPU or CPU) or the CPU `policyLoss`. */
  runLoss: LossRunner;
  /** Called after every step. */
  onStep?: (s: DemoStepStats) => void;
}

/** Per-step statistics (over every response generated in the step, so the reward is the policy's real reward). */
export interface DemoStepStats {
  step: number;
  strategy: DemoStrategy;
  /** Mean shaped reward over all generated responses. */
  reward: number;
  /** Fraction of correct answers over all generated responses. */
  accuracy: number;
  /** Groups kept / seen by the dynamic-sampling filter. */
  keptGroups: number;
  seenGroups: number;
  /** Generation batches used to complete the batch. */
  genBatches: number;
  /** How the batch was completed: 'full', 'resample' when max_num_gen_batches ran out, 'none' when no group was kept (no update). */
  completion: string;
  /** Mean over mini-batches of actor/pg_clipfrac. */
  clipFrac: number;
  /** Mean over mini-batches of actor/ppo_kl. */
  kl: number;
  /** Mean response length in tokens (EOS included). */
  responseLength: number;
  /** Mean policy loss over mini-batches. */
  loss: number;
}

/** The loss mode and config of a seed strategy (the seed's presets). */
export function strategyLoss(strategy: DemoStrategy): { lossMode: string; config: PolicyLossConfig } {
  const p = presets[strategy];
  return { lossMode: p.lossMode, config: p.policyLoss };
}

interface Row {
  uid: string;
  acc: number;
  score: number;
  prompt: ArithmeticPrompt;
  sample: Sample;
  [key: string]: unknown;
}

function emptyStep(
  step: number,
  strategy: DemoStrategy,
  reward: number,
  accuracy: number,
  responseLength: number,
  genBatches: number,
  err: ExhaustedError,
): DemoStepStats {
  return { step, strategy, reward, accuracy, keptGroups: 0, seenGroups: err.numGroupsSeen, genBatches, completion: 'none', clipFrac: 0, kl: 0, responseLength, loss: 0 };
}

/** Train one strategy; returns the per-step statistics. */
export async function trainDemo(opts: DemoOptions): Promise<DemoStepStats[]> {
  const steps = opts.steps ?? 150;
  const seed = opts.seed ?? 1;
  const trainBatchSize = opts.trainBatchSize ?? 16;
  const n = opts.n ?? 8;
  const genBatchSize = opts.genBatchSize ?? 32;
  const maxNumGenBatches = opts.maxNumGenBatches ?? 8;
  const miniBatches = opts.miniBatches ?? 2;
  const maxLen = opts.maxResponseLength ?? 6;
  const overlong = {
    enable: true,
    maxResponseLength: maxLen,
    overlongBufferLen: opts.overlongBufferLen ?? 2,
    overlongPenaltyFactor: opts.overlongPenaltyFactor ?? 1.0,
  };
  const operands = opts.operands ?? 6;
  const rng = mulberry32(seed);
  const policy = new MlpPolicy({ operands, maxLen, vocab: VOCAB, hidden: 48 }, mulberry32(seed ^ 0x9e3779b9));
  const adam = new Adam(policy.params(), opts.lr ?? 0.01, 1.0);
  const prompts = arithmeticPrompts(operands);
  const { lossMode, config } = strategyLoss(opts.strategy);
  const history: DemoStepStats[] = [];

  for (let step = 1; step <= steps; step++) {
    const filler = new DynamicBatchFiller<Row>({
      trainBatchSize,
      n,
      metric: 'acc',
      maxNumGenBatches,
      onExhausted: 'resample',
      seed: seed * 7919 + step,
    });
    let sumReward = 0;
    let sumAcc = 0;
    let sumLen = 0;
    let generated = 0;
    let genBatches = 0;
    while (!filler.isFull && genBatches < maxNumGenBatches) {
      genBatches++;
      const rows: Row[] = [];
      for (let q = 0; q < genBatchSize; q++) {
        const prompt = prompts[Math.floor(rng() * prompts.length)] as ArithmeticPrompt;
        const uid = `s${step}g${genBatches}p${q}`;
        for (let r = 0; r < n; r++) {
          const sample = policy.sample(prompt.a, prompt.b, rng);
          const verdict = mathDapoScore(decodeResponse(sample.tokens), prompt.groundTruth);
          const shaped = shapeOverlongReward(verdict.score, sample.tokens.length, overlong);
          const acc = verdict.acc ? 1 : 0;
          rows.push({ uid, acc, score: shaped.reward, prompt, sample });
          sumReward += shaped.reward;
          sumAcc += acc;
          sumLen += sample.tokens.length;
          generated++;
        }
      }
      filler.add(rows);
    }
    let taken: TakeResult<Row>;
    try {
      taken = filler.take();
    } catch (err) {
      // Every group of every generation batch had equal rewards (typically: every prompt solved every time):
      // no learning signal, so no update this step, as verl would stop with an error under 'error'.
      if (!(err instanceof ExhaustedError)) throw err;
      const s = emptyStep(step, opts.strategy, sumReward / generated, sumAcc / generated, sumLen / generated, genBatches, err);
      history.push(s);
      opts.onStep?.(s);
      continue;
    }
    const batchRows = taken.rows;
    const fm = taken.metrics;

    // GRPO advantages from one outcome score per response.
    const adv = grpoAdvantages(
      batchRows.map((r) => r.score),
      batchRows.map((r) => r.uid),
    );
    // Shuffle rows into mini-batches (verl keeps order unless actor.shuffle; shuffling keeps each mini-batch mixed).
    const order = shuffled([...batchRows.keys()], rng);
    const per = Math.ceil(order.length / miniBatches);
    let clipFrac = 0;
    let kl = 0;
    let lossSum = 0;
    let mbCount = 0;
    for (let mb = 0; mb < miniBatches; mb++) {
      const idx = order.slice(mb * per, (mb + 1) * per);
      if (idx.length === 0) continue;
      const B = idx.length;
      const olp = new Float64Array(B * maxLen);
      const a = new Float64Array(B * maxLen);
      const mask = new Float64Array(B * maxLen);
      const ps: [number, number][] = [];
      const ys: number[][] = [];
      idx.forEach((ri, i) => {
        const row = batchRows[ri] as Row;
        ps.push([row.prompt.a, row.prompt.b]);
        ys.push(row.sample.tokens);
        row.sample.tokens.forEach((_, t) => {
          olp[i * maxLen + t] = row.sample.logProbs[t] as number;
          a[i * maxLen + t] = adv[ri] as number;
          mask[i * maxLen + t] = 1;
        });
      });
      const fwd = policy.logProbs(ps, ys);
      const res = await opts.runLoss(
        lossMode,
        { oldLogProbs: olp, logProbs: fwd.logProbs, advantages: a, responseMask: mask, entropy: fwd.entropy, shape: [B, maxLen] },
        config,
      );
      const grads = adam.zeroGrads();
      fwd.backward(res.grad, grads);
      adam.step(grads);
      clipFrac += res.metrics['actor/pg_clipfrac'] ?? 0;
      kl += res.metrics['actor/ppo_kl'] ?? 0;
      lossSum += res.loss;
      mbCount++;
    }
    const stats: DemoStepStats = {
      step,
      strategy: opts.strategy,
      reward: sumReward / generated,
      accuracy: sumAcc / generated,
      keptGroups: fm['train/num_groups_kept'],
      seenGroups: fm['train/num_groups_seen'],
      genBatches,
      completion: taken.completion,
      clipFrac: clipFrac / mbCount,
      kl: kl / mbCount,
      responseLength: sumLen / generated,
      loss: lossSum / mbCount,
    };
    history.push(stats);
    opts.onStep?.(stats);
  }
  return history;
}
