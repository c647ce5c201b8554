/**
 * `lumirag-rl demo` (also `npm run demo`): the main job. Trains the demo policy with dapo, gspo and sapo (the
 * seed's settings), shows progress, and writes a plot of reward against step.
 *
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { rewardPlotSvg, svgToPng } from '../demo/plot.js';
import { type DemoStepStats, type DemoStrategy, trainDemo } from '../demo/train.js';
import { createEngine } from '../gpu/index.js';

const COLORS: Record<DemoStrategy, string> = { dapo: '#d62728', gspo: '#1f77b4', sapo: '#2ca02c' };

/** Options of {@link runDemo}. */
export interface RunDemoOptions {
  strategies: DemoStrategy[];
  steps: number;
  seed: number;
  backend: 'auto' | 'cpu' | 'webgpu';
  out: string;
  /** Print a line per step instead of a live bar (default: when stdout is not a terminal). */
  plain?: boolean;
}

const f = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));

/** Run the main job and write `reward.svg` (and `reward.png`, `history.json`) under `out`. */
export async function runDemo(o: RunDemoOptions): Promise<Record<DemoStrategy, DemoStepStats[]>> {
  const engine = await createEngine({ backend: o.backend });
  process.stdout.write(`lumirag-rl demo: engine backend = ${engine.backend}${engine.reason ? ` (${engine.reason})` : ''}\n`);
  process.stdout.write(
    'task: "a+b=" answered as digits then EOS; reward = math_dapo verifier (+1/-1) + overlong shaping; ' +
      'dynamic sampling (filter acc), GRPO advantages, Adam\n',
  );
  const plain = o.plain ?? !process.stdout.isTTY;
  const results = {} as Record<DemoStrategy, DemoStepStats[]>;
  try {
    for (const strategy of o.strategies) {
      const t0 = performance.now();
      const bar = plain
        ? null
        : new cliProgress.SingleBar(
            {
              format: `${strategy.padEnd(4)} {bar} {value}/{total} | reward {reward} | acc {acc} | kept {kept} | clip {clip} | kl {kl} | len {len}`,
              barsize: 20,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          );
      bar?.start(o.steps, 0, { reward: '-', acc: '-', kept: '-', clip: '-', kl: '-', len: '-' });
      if (plain) process.stdout.write(`\n${'strategy'.padEnd(8)} ${'step'.padStart(4)}  reward   acc    kept  clip    kl       len\n`);
      results[strategy] = await trainDemo({
        strategy,
        steps: o.steps,
        seed: o.seed,
        runLoss: (mode, batch, config) => engine.policyLoss(mode, batch, config),
        onStep: (s) => {
          const payload = {
            reward: f(s.reward),
            acc: f(s.accuracy, 2),
            kept: `${s.keptGroups}/${s.seenGroups}`,
            clip: f(s.clipFrac, 3),
            kl: f(s.kl, 4),
            len: f(s.responseLength, 2),
          };
          if (bar) bar.update(s.step, payload);
          else if (s.step === 1 || s.step % 10 === 0 || s.step === o.steps) {
            process.stdout.write(
              `${strategy.padEnd(8)} ${String(s.step).padStart(4)}  ${payload.reward.padStart(6)}  ${payload.acc.padStart(4)}  ${payload.kept.padStart(6)}  ${payload.clip}  ${payload.kl.padStart(7)}  ${payload.len}\n`,
            );
          }
        },
      });
      bar?.stop();
      const h = results[strategy];
      const first = h.slice(0, 5).reduce((a, s) => a + s.reward, 0) / Math.min(5, h.length);
      const last = h.slice(-5).reduce((a, s) => a + s.reward, 0) / Math.min(5, h.length);
      process.stdout.write(
        `${strategy}: mean reward ${f(first)} (first 5 steps) -> ${f(last)} (last 5), accuracy ${f(h[h.length - 1]?.accuracy ?? 0, 2)}, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      );
    }
  } finally {
    engine.destroy();
  }
  mkdirSync(o.out, { recursive: true });
  const svg = rewardPlotSvg(
    o.strategies.map((s) => ({ label: s, values: results[s].map((x) => x.reward), color: COLORS[s] })),
    { title: 'lumirag-rl demo: mean reward per step (seed settings)', yLabel: 'mean reward', yMin: -1.5, yMax: 1, smooth: 5 },
  );
  writeFileSync(resolve(o.out, 'reward.svg'), svg);
  writeFileSync(resolve(o.out, 'history.json'), JSON.stringify(results, null, 1));
  const png = await svgToPng(svg);
  if (png) writeFileSync(resolve(o.out, 'reward.png'), png);
  process.stdout.write(`plot: ${resolve(o.out, 'reward.svg')}${png ? ` and ${resolve(o.out, 'reward.png')}` : ''}\n`);
  return results;
}

/** Register `demo` on the program. */
export function register(program: Command): void {
  program
    .command('demo')
    .description('the main job: train a small policy the DAPO way with dapo, gspo and sapo, and plot reward per step')
    .option('--strategy <name>', 'dapo | gspo | sapo | all', 'all')
    .option('--steps <n>', 'training steps per strategy', '150')
    .option('--seed <n>', 'random seed', '1')
    .option('--backend <name>', 'auto | cpu | webgpu', 'auto')
    .option('--out <dir>', 'where the plot and history are written', 'demo-out')
    .option('--plain', 'print one line per 10 steps instead of a live progress bar')
    .action(async (opts: { strategy: string; steps: string; seed: string; backend: string; out: string; plain?: boolean }) => {
      const all: DemoStrategy[] = ['dapo', 'gspo', 'sapo'];
      const strategies = opts.strategy === 'all' ? all : [opts.strategy as DemoStrategy];
      for (const s of strategies) if (!all.includes(s)) throw new Error(`--strategy must be dapo, gspo, sapo or all; got ${s}`);
      const backend = opts.backend as RunDemoOptions['backend'];
      if (!['auto', 'cpu', 'webgpu'].includes(backend)) throw new Error(`--backend must be auto, cpu or webgpu; got ${opts.backend}`);
      const steps = Number(opts.steps);
      const seed = Number(opts.seed);
      if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer; got ${opts.steps}`);
      await runDemo({ strategies, steps, seed, backend, out: opts.out, plain: opts.plain });
    });
}
