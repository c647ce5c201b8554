/**
 * `lumirag-rl verl-setup`: print the absolute path of the shipped Python bridge file and the two verl overrides that
 * load it, one per line.
 *
 * @module
 */
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { bridgePythonPath, verlRewardOverrides } from '../reward/bridge/python.js';

const NAMES = ['compute_score', 'compute_score_batch', 'compute_score_async'] as const;

/** Register `verl-setup` on the program. */
export function register(program: Command): void {
  program
    .command('verl-setup')
    .description('print the path of python/lumirag_rl_verl.py and the verl overrides that use it')
    .option('--name <name>', `entry point: ${NAMES.join(' | ')} (batch: with reward_model.reward_manager=batch)`, 'compute_score')
    .action((opts: { name: string }) => {
      const name = NAMES.find((n) => n === opts.name);
      if (!name) throw new ConfigError(`--name must be one of ${NAMES.join(', ')}, got ${JSON.stringify(opts.name)}`, 'name');
      process.stdout.write(`${[bridgePythonPath(), ...verlRewardOverrides(name)].join('\n')}\n`);
    });
}
