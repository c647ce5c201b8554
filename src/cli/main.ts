#!/usr/bin/env node
/**
 * The `lumirag-rl` command line. Each command lives in its own module and registers itself on the program.
 *
 * @module
 */
import { Command } from 'commander';
import { register as registerConfig } from './config.js';
import { register as registerDemo } from './demo.js';
import { register as registerServe } from './serve.js';
import { register as registerVerlSetup } from './verlSetup.js';

const program = new Command('lumirag-rl')
  .description("verl's RL policy losses for JavaScript: CPU reference, WebGPU kernels, DAPO data side, reward bridge")
  .showHelpAfterError();

for (const register of [registerDemo, registerServe, registerVerlSetup, registerConfig]) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
