import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRewardModule } from '../src/cli/serve.js';
import { ConfigError } from '../src/errors.js';
import { rewardInput } from '../src/reward/index.js';
import { PY_FILE, REPO, runPython } from './bridge-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'lumirag-rl-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Spawn the CLI in its own process group (so the whole npx → tsx → node chain can be signalled). */
function cli(args: string[]): ChildProcess {
  return spawn('npx', ['tsx', 'src/cli/main.ts', ...args], { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Resolves when every process of the chain has exited ('close': all stdio writers gone) with npx's exit code and
 * signal. After `timeoutMs` the group is SIGKILLed and `timedOut` is set.
 */
function waitClose(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null; timedOut: boolean }> {
  return new Promise((resolve) => {
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, timedOut });
    });
  });
}

describe('lumirag-rl serve (end to end)', () => {
  it('loads a .ts reward module under tsx, prints the listening line, serves python, exits cleanly on SIGTERM', async () => {
    const mod = join(dir, 'my-reward.ts');
    const hooks = pathToFileURL(join(REPO, 'src', 'reward', 'hooks.ts')).href;
    writeFileSync(
      mod,
      `import { defineReward } from ${JSON.stringify(hooks)};\n` +
        `export default defineReward(({ solutionStr, groundTruth }: { solutionStr: string; groundTruth: unknown }) =>\n` +
        `  ({ score: solutionStr === groundTruth ? 1 : -1, len: solutionStr.length }), { name: 'cli-test' });\n`,
    );
    const child = cli(['serve', '--reward', mod, '--port', '0', '--token', 'cli-tok', '--timeout-ms', '5000']);
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const closed = waitClose(child, 60_000);
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line within 45 s; stderr: ${err}`)), 45_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
    });
    try {
      const health = await (await fetch(`${url}/health`)).json();
      expect(health).toMatchObject({ status: 'ok', reward: 'cli-test' });
      const r = await runPython(
        `emit([compute_score(data_source="d", solution_str="42", ground_truth="42", extra_info={"index": 0}),
               compute_score(data_source="d", solution_str="41", ground_truth="42", extra_info={"index": 1})])`,
        { LUMIRAG_RL_BRIDGE_URL: url, LUMIRAG_RL_BRIDGE_TOKEN: 'cli-tok' },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.json).toEqual([
        { score: 1, len: 2 },
        { score: -1, len: 2 },
      ]);
    } finally {
      // npx does not forward signals, so signal the whole group: npm dies of it, tsx relays it to the server process
      if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGTERM');
    }
    const end = await closed;
    expect(end.timedOut).toBe(false);
    expect(err).toMatch(/SIGTERM: finishing 0 in-flight request\(s\)/); // the server drained and exited on its own
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });

  it('verl-setup prints the python path and the two overrides, one per line', async () => {
    const child = cli(['verl-setup']);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    expect(await waitClose(child, 45_000)).toEqual({ code: 0, signal: null, timedOut: false });
    expect(out.trim().split('\n')).toEqual([
      PY_FILE,
      `custom_reward_function.path=${PY_FILE}`,
      'custom_reward_function.name=compute_score',
    ]);
  });
});

describe('loadRewardModule', () => {
  it('accepts a default-exported plain function (.mjs)', async () => {
    const f = join(dir, 'plain.mjs');
    writeFileSync(f, 'export default ({ solutionStr }) => solutionStr.length / 10;\n');
    const hook = await loadRewardModule(f);
    expect(await hook.score(rewardInput({ data_source: 'd', solution_str: 'abcde' }))).toEqual({ score: 0.5, extras: null });
  });

  it('explains what is wrong with a module that has no reward, or no file', async () => {
    const f = join(dir, 'none.mjs');
    writeFileSync(f, 'export const x = 1;\n');
    await expect(loadRewardModule(f)).rejects.toThrow(/must default-export a reward function .*exports are: x/);
    await expect(loadRewardModule(join(dir, 'missing.mjs'))).rejects.toThrow(ConfigError);
  });
});
