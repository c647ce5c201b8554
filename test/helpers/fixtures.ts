/**
 * Loading verl's golden vectors from ../shared/fixtures/verl (never copied into the repo) and the tolerance rule
 * of their README: |got − exp| ≤ rtol·|exp| + atolRel·S.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { fromVerlConfig, type PolicyLossBatch, type PolicyLossConfig } from '../../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The fixture folder: $LUMIRAG_FIXTURES, else ../shared/fixtures/verl beside the checkout. */
export const FIXTURE_DIR = process.env.LUMIRAG_FIXTURES ?? resolve(here, '..', '..', '..', 'shared', 'fixtures', 'verl');

const cache = new Map<string, unknown>();

/** Parse a fixture file; "NaN"/"Infinity" strings become numbers. Missing fixtures fail loudly, never skip. */
export function loadFixture<T = FixtureFile>(name: string): T {
  const path = resolve(FIXTURE_DIR, name);
  if (!existsSync(path)) throw new Error(`fixture ${path} not found: CI and developers keep ../shared beside the checkout`);
  if (!cache.has(path)) {
    cache.set(
      path,
      JSON.parse(readFileSync(path, 'utf8'), (_k, v) =>
        v === 'NaN' ? Number.NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
      ),
    );
  }
  return cache.get(path) as T;
}

/** The common shape of a fixture file. */
export interface FixtureFile {
  source: Record<string, unknown>;
  inputs: Record<string, Record<string, unknown>>;
  cases: Record<string, unknown>[];
}

/** A tolerance: rtol relative to |expected| plus atolRel times a scale S. */
export interface Tolerance {
  rtol: number;
  atolRel: number;
}

/** The float64 CPU rule of the fixtures' README. */
export const CPU_TOL: Tolerance = { rtol: 1e-9, atolRel: 1e-12 };
/** The float32 GPU rule of the fixtures' README. */
export const GPU_TOL: Tolerance = { rtol: 1e-4, atolRel: 1e-5 };

/** Whether `got` is within tolerance of `exp` (both NaN counts as equal). */
export function isClose(got: number, exp: number, tol: Tolerance, scale = 1): boolean {
  if (Number.isNaN(exp)) return Number.isNaN(got);
  if (!Number.isFinite(exp)) return got === exp;
  return Math.abs(got - exp) <= tol.rtol * Math.abs(exp) + tol.atolRel * scale;
}

/** Throw a descriptive error unless `got` is close to `exp`. */
export function expectClose(got: number, exp: number, tol: Tolerance, scale: number, what: string): void {
  if (!isClose(got, exp, tol, scale)) {
    const err = Math.abs(got - exp);
    throw new Error(`${what}: got ${got}, expected ${exp} (|err| ${err.toExponential(3)}, allowed ${(tol.rtol * Math.abs(exp) + tol.atolRel * scale).toExponential(3)})`);
  }
}

/** Compare an array elementwise with S = max(1, max |exp|), as the README prescribes for arrays. */
export function expectArrayClose(got: ArrayLike<number>, exp: ArrayLike<number>, tol: Tolerance, what: string): void {
  if (got.length !== exp.length) throw new Error(`${what}: length ${got.length}, expected ${exp.length}`);
  let s = 1;
  for (let k = 0; k < exp.length; k++) s = Math.max(s, Math.abs(exp[k] as number));
  for (let k = 0; k < exp.length; k++) expectClose(got[k] as number, exp[k] as number, tol, s, `${what}[${k}]`);
}

/** Flatten a nested `[B][T]` (or deeper) array. */
export function flat(x: unknown): number[] {
  return (x as unknown[]).flat(Infinity as 1) as number[];
}

/** A policy_loss.json case (the fields the suites read). */
export interface PolicyCase {
  id: string;
  input_id: string;
  loss_mode: string;
  loss_agg_mode: string;
  loss_agg_mode_effective?: string;
  scenario: string;
  config_name: string;
  config: Record<string, unknown>;
  expected: { loss: number; metrics: Record<string, number>; grad_log_prob: number[][] };
  abs_scale: number;
  expect_error?: string;
}

/** An agg_loss.json case. */
export interface AggCase {
  id: string;
  input_id: string;
  loss_agg_mode: string;
  kwargs: Record<string, number>;
  expected: { loss: number; grad_loss_mat: number[][] };
  abs_scale: number;
}

/** The batch of a fixture input record (nested arrays, as a user would pass them). */
export function fixtureBatch(input: Record<string, unknown>): PolicyLossBatch {
  return {
    oldLogProbs: input.old_log_prob as number[][],
    logProbs: input.log_prob as number[][],
    advantages: input.advantages as number[][],
    responseMask: input.response_mask as number[][],
    rolloutIsWeights: (input.rollout_is_weights as number[][] | null) ?? null,
  };
}

/** The config of a fixture case; gspo/sapo/geo_mean keep their own aggregation, as verl does. */
export function fixtureConfig(c: PolicyCase): PolicyLossConfig {
  const { lossMode: _m, ignoredKeys, ...config } = fromVerlConfig(c.config);
  expect(ignoredKeys).toEqual([]);
  if (c.loss_agg_mode_effective === undefined) config.lossAggMode = c.loss_agg_mode as PolicyLossConfig['lossAggMode'];
  return config;
}
