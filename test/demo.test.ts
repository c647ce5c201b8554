/**
 * The main job: the training loop learns (reward rises) on the CPU reference, deterministically for a seed, and the
 * CLI writes its plot. Also the runnable examples run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainDemo } from '../src/demo/train.js';
import { policyLoss } from '../src/index.js';

const cpu = async (mode: string, batch: Parameters<typeof policyLoss>[1], config: Parameters<typeof policyLoss>[2]) => policyLoss(mode, batch, config);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('demo training loop', () => {
  it.each(['dapo', 'gspo', 'sapo'] as const)('%s: the mean reward rises over 80 steps', async (strategy) => {
    const h = await trainDemo({ strategy, steps: 80, seed: 3, runLoss: cpu });
    const first = mean(h.slice(0, 10).map((s) => s.reward));
    const last = mean(h.slice(-10).map((s) => s.reward));
    expect(last).toBeGreaterThan(first + 0.4);
    for (const s of h) {
      expect(s.keptGroups).toBeLessThanOrEqual(s.seenGroups);
      expect(['full', 'resample', 'none', 'partial']).toContain(s.completion);
    }
  });

  it('is deterministic for a seed', async () => {
    const a = await trainDemo({ strategy: 'gspo', steps: 8, seed: 11, runLoss: cpu });
    const b = await trainDemo({ strategy: 'gspo', steps: 8, seed: 11, runLoss: cpu });
    expect(b).toEqual(a);
  });
});

const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const run = (args: string[]): string => execFileSync(tsx, args, { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });

describe('command line and examples', () => {
  it('lumirag-rl demo writes the plot and the history', () => {
    const out = mkdtempSync(join(tmpdir(), 'lumirag-demo-'));
    try {
      const text = run(['src/cli/main.ts', 'demo', '--backend', 'cpu', '--steps', '4', '--plain', '--out', out]);
      expect(text).toMatch(/engine backend = cpu/);
      expect(text).toMatch(/^dapo: mean reward/m);
      expect(readFileSync(join(out, 'reward.svg'), 'utf8')).toMatch(/^<svg[\s\S]*dapo[\s\S]*gspo[\s\S]*sapo[\s\S]*<\/svg>$/);
      const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as Record<string, unknown[]>;
      expect(Object.keys(history)).toEqual(['dapo', 'gspo', 'sapo']);
      expect(history.sapo).toHaveLength(4);
      expect(existsSync(join(out, 'reward.png'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('examples/quickstart.ts and examples/custom-strategy.ts run', () => {
    const q = run(['examples/quickstart.ts']);
    expect(q).toMatch(/dapoLoss \(80\/20\)\s+loss -0\.087415/);
    expect(q).toMatch(/gspoLoss\s+loss 0\.126161/); // SPEC.md §13's gspo number
    expect(q).toMatch(/engine eighty-twenty\s+loss -0\.08741/);
    const c = run(['examples/custom-strategy.ts']);
    expect(c).toMatch(/loss 0\.066667/);
  });
});
