/**
 * Where the shipped Python end of the bridge lives, and the verl overrides that load it.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BridgeError } from '../../errors.js';

/** File name of the stdlib-only Python module shipped in the package's `python/` folder. */
export const BRIDGE_PYTHON_FILE = 'lumirag_rl_verl.py';

/**
 * Absolute path of `python/lumirag_rl_verl.py` in the installed package (found by walking up from this module, so it
 * works from `src/` under tsx and from the bundled `dist/`). Throws a {@link BridgeError} if it is missing.
 */
export function bridgePythonPath(): string {
  // The CommonJS build has __filename (import.meta is empty there); the ESM build and tsx have import.meta.url.
  const self = typeof __filename === 'string' && __filename ? __filename : fileURLToPath(import.meta.url);
  let dir = dirname(self);
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'python', BRIDGE_PYTHON_FILE);
    if (existsSync(candidate)) return resolve(candidate);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new BridgeError(`cannot find python/${BRIDGE_PYTHON_FILE} above ${self}`, 'path');
}

/**
 * The verl overrides that make verl call the bridge:
 * `custom_reward_function.path=<abs path>` and `custom_reward_function.name=<name>` (default `compute_score`; use
 * `compute_score_batch` with `reward_model.reward_manager=batch`, or `compute_score_async` for the reward loop).
 */
export function verlRewardOverrides(name: 'compute_score' | 'compute_score_batch' | 'compute_score_async' = 'compute_score'): string[] {
  return [`custom_reward_function.path=${bridgePythonPath()}`, `custom_reward_function.name=${name}`];
}
