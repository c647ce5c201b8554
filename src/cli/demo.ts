/** CLI command (placeholder until implemented). @module */
import type { Command } from 'commander';

/** Register this command on the program. */
export function register(_program: Command): void {}
