/**
 * Test harness for the reward bridge: run a real `python3` that loads python/lumirag_rl_verl.py the way verl does
 * (`importlib.util.spec_from_file_location`, then `getattr(module, name)`), with the bridge configured by environment.
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PY_FILE = resolve(REPO, 'python', 'lumirag_rl_verl.py');

/** What a python run printed. `json` is the parsed last stdout line, when it parses. */
export interface PyRun {
  code: number | null;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Python preamble: load the bridge module as verl's `get_custom_reward_fn` does; `mod` is the module. */
export const PY_PREAMBLE = `
import importlib.util, sys, json, os, asyncio
spec = importlib.util.spec_from_file_location("custom_module", ${JSON.stringify(PY_FILE)})
mod = importlib.util.module_from_spec(spec)
sys.modules["custom_module"] = mod
spec.loader.exec_module(mod)
compute_score = getattr(mod, "compute_score")
compute_score_batch = getattr(mod, "compute_score_batch")
compute_score_async = getattr(mod, "compute_score_async")
def emit(obj):
    print(json.dumps(obj), flush=True)
`;

/** Run `python3 -c PREAMBLE + script` with `env` added; killed after `timeoutMs`. */
export function runPython(script: string, env: Record<string, string>, timeoutMs = 60_000): Promise<PyRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('python3', ['-c', PY_PREAMBLE + script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let json: unknown = undefined;
      try {
        json = JSON.parse(last);
      } catch {
        json = undefined;
      }
      resolvePromise({ code, stdout, stderr, json });
    });
  });
}

/** Raw HTTP request to the bridge (for 4xx checks). */
export async function rawRequest(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: init.method ?? 'POST',
    body: init.body,
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}
