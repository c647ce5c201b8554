/**
 * `lumirag-rl serve --reward FILE`: serve a TypeScript reward to verl over the HTTP bridge. Prints
 * `listening on http://HOST:PORT` once ready; SIGINT/SIGTERM drain in-flight calls, then exit.
 *
 * @module
 */
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { defineReward, isRewardHook, type RewardFn, type RewardHook } from '../reward/hooks.js';
import { serveRewards } from '../reward/bridge/server.js';

function intOption(name: string, min: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) {
      throw new ConfigError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`, name);
    }
    return n;
  };
}

/**
 * Load a reward module: its default export (or a named `reward` export) must be a reward function or a
 * `defineReward(...)` result. `.mjs`/`.js` load with a dynamic import; `.ts` needs the process to run under tsx.
 */
export async function loadRewardModule(file: string): Promise<RewardHook> {
  const abs = resolve(file);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?tsx?$/.test(abs)) {
      throw new ConfigError(`cannot load ${abs}: TypeScript rewards need tsx (npx tsx ...) or compile it to .mjs`, 'reward');
    }
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(abs)) throw new ConfigError(`reward module ${abs} not found`, 'reward');
    throw new ConfigError(`cannot load reward module ${abs}: ${err.message}`, 'reward');
  }
  let candidate: unknown = mod.default ?? mod.reward;
  // A CommonJS module exporting { default: fn } comes through as default.default.
  if (!isRewardHook(candidate) && typeof candidate === 'object' && candidate !== null && 'default' in candidate) {
    candidate = (candidate as { default: unknown }).default;
  }
  if (isRewardHook(candidate)) return candidate;
  if (typeof candidate === 'function') {
    const fnName = (candidate as RewardFn).name;
    return defineReward(candidate as RewardFn, { name: fnName && fnName !== 'default' ? fnName : basename(abs) });
  }
  throw new ConfigError(
    `${abs} must default-export a reward function or a defineReward(...) result; its exports are: ${Object.keys(mod).join(', ') || 'none'}`,
    'reward',
  );
}

/** Register `serve` on the program. */
export function register(program: Command): void {
  program
    .command('serve')
    .description('serve a TypeScript reward to verl over HTTP (the Python end: see `lumirag-rl verl-setup`)')
    .requiredOption('--reward <file>', 'module whose default export is a reward function or a defineReward(...) result')
    .option('--host <host>', 'interface to bind (loopback by default)', '127.0.0.1')
    .option('--port <port>', 'TCP port; 0 = any free port', intOption('port', 0), 8765)
    .option('--token <token>', 'require "Authorization: Bearer <token>" (default: $LUMIRAG_RL_BRIDGE_TOKEN)')
    .option('--timeout-ms <ms>', 'per-call timeout in ms; 0 = none', intOption('timeout-ms', 0), 30_000)
    .option('--max-concurrency <n>', 'concurrent reward calls', intOption('max-concurrency', 1), 64)
    .option('--max-body-bytes <n>', 'largest request body', intOption('max-body-bytes', 1), 32 * 1024 * 1024)
    .action(
      async (opts: {
        reward: string;
        host: string;
        port: number;
        token?: string;
        timeoutMs: number;
        maxConcurrency: number;
        maxBodyBytes: number;
      }) => {
        const reward = await loadRewardModule(opts.reward);
        const token = opts.token ?? (process.env.LUMIRAG_RL_BRIDGE_TOKEN || null);
        const srv = await serveRewards({
          reward,
          host: opts.host,
          port: opts.port,
          token,
          timeoutMs: opts.timeoutMs,
          maxConcurrency: opts.maxConcurrency,
          maxBodyBytes: opts.maxBodyBytes,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(`listening on ${srv.url}\n`);
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) {
            process.stderr.write(`${sig} again: exiting now\n`);
            process.exit(130);
          }
          stopping = true;
          process.stderr.write(`${sig}: finishing ${srv.stats().inFlight} in-flight request(s)\n`);
          void srv.close().then(() => process.exit(0));
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      },
    );
}
