/**
 * The reward bridge wire protocol (JSON over HTTP), shared by the TypeScript server and the stdlib Python client
 * `python/lumirag_rl_verl.py`.
 *
 * | method, path | body | reply |
 * |---|---|---|
 * | `POST /v1/score` | {@link WireScoreRequest} (verl's `compute_score` keyword arguments) | 200 {@link WireScoreReply} |
 * | `POST /v1/score_batch` | {@link WireBatchRequest} (verl's batch manager keyword arguments) | 200 {@link WireBatchReply} |
 * | `GET /health` | — | 200 {@link WireHealth}, 503 while draining |
 *
 * The HTTP status is about the request; each item carries its own `status` (`ok`, `error`, `timeout`, `invalid`).
 * Request errors are 4xx with a {@link WireErrorReply} body: 400 `bad_json` / `bad_request`, 401 `unauthorized`,
 * 404 `not_found`, 405 `method_not_allowed`, 413 `payload_too_large`, 415 `unsupported_media_type`; 503 `draining`.
 *
 * @module
 */
import { BridgeError } from '../../errors.js';
import type { JsonObject, JsonValue, RewardFailureCode, RewardFailureStatus, RewardInput, RewardItemResult } from '../hooks.js';

/** Protocol version reported by `/health`. */
export const BRIDGE_PROTOCOL_VERSION = 1;

/** Paths served by the bridge. */
export const BRIDGE_PATHS = { score: '/v1/score', scoreBatch: '/v1/score_batch', health: '/health' } as const;

/** Body of `POST /v1/score`: verl's per-sample keyword arguments. */
export interface WireScoreRequest {
  /** Echoed in the reply so the client can check it got its own answer. */
  id?: string | number;
  /** verl `data_source`. */
  data_source: string;
  /** verl `solution_str`. */
  solution_str: string;
  /** verl `ground_truth` (any JSON; missing = null). */
  ground_truth?: JsonValue;
  /** verl `extra_info` (object or null; missing = null). */
  extra_info?: JsonObject | null;
  /** Other JSON keyword arguments (`reward_kwargs`). */
  kwargs?: JsonObject;
}

/** Body of `POST /v1/score_batch`: verl's batch-manager keyword arguments (equal-length lists). */
export interface WireBatchRequest {
  /** Echoed in the reply. */
  id?: string | number;
  /** verl `data_sources`. */
  data_sources: string[];
  /** verl `solution_strs`. */
  solution_strs: string[];
  /** verl `ground_truths` (missing = all null). */
  ground_truths?: JsonValue[];
  /** verl `extra_infos` (missing or null = all null). */
  extra_infos?: (JsonObject | null)[] | null;
  /** Other JSON keyword arguments, shared by every item. */
  kwargs?: JsonObject;
}

/** One scored item on the wire. `extras` is present only when the reward returned a dict (it then includes `score`). */
export type WireItem =
  | { status: 'ok'; score: number; extras?: JsonObject }
  | { status: RewardFailureStatus; code: RewardFailureCode; message: string };

/** Reply of `POST /v1/score`. */
export interface WireScoreReply {
  /** The request's `id`, or null. */
  id: string | number | null;
  /** The item. */
  result: WireItem;
}

/** Reply of `POST /v1/score_batch`. */
export interface WireBatchReply {
  /** The request's `id`, or null. */
  id: string | number | null;
  /** One item per input, in order. */
  results: WireItem[];
}

/** Reply of `GET /health`. */
export interface WireHealth {
  /** `ok`, or `draining` during shutdown. */
  status: 'ok' | 'draining';
  /** {@link BRIDGE_PROTOCOL_VERSION}. */
  protocol: number;
  /** The served reward's name. */
  reward: string;
  /** Other requests being handled now (not counting this health check). */
  inFlight: number;
}

/** Machine-readable request error codes. */
export type WireErrorCode =
  | 'bad_json'
  | 'bad_request'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'draining';

/** Body of every 4xx/503 reply. */
export interface WireErrorReply {
  /** What went wrong. */
  error: { code: WireErrorCode; message: string; field?: string };
}

/** Convert an item result to its wire form. */
export function toWireItem(r: RewardItemResult): WireItem {
  if (r.status === 'ok') return r.extras === null ? { status: 'ok', score: r.score } : { status: 'ok', score: r.score, extras: r.extras };
  return { status: r.status, code: r.code, message: r.message };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function need(cond: boolean, message: string, field: string): asserts cond {
  if (!cond) throw new BridgeError(message, field);
}

function readId(body: Record<string, unknown>): string | number | null {
  const id = body.id;
  if (id === undefined || id === null) return null;
  need(typeof id === 'string' || typeof id === 'number', `id must be a string or a number, got ${typeName(id)}`, 'id');
  return id;
}

function readKwargs(body: Record<string, unknown>): JsonObject {
  const k = body.kwargs;
  if (k === undefined || k === null) return {};
  need(isObj(k), `kwargs must be an object, got ${typeName(k)}`, 'kwargs');
  return k as JsonObject;
}

function readExtra(v: unknown, field: string): JsonObject | null {
  if (v === undefined || v === null) return null;
  need(isObj(v), `${field} must be an object or null, got ${typeName(v)}`, field);
  return v as JsonObject;
}

/** Validate a parsed `/v1/score` body; throws a {@link BridgeError} naming the field. */
export function parseScoreRequest(body: unknown): { id: string | number | null; input: RewardInput } {
  need(isObj(body), `request body must be a JSON object, got ${typeName(body)}`, 'body');
  const id = readId(body);
  need(typeof body.data_source === 'string', `data_source must be a string, got ${typeName(body.data_source)}`, 'data_source');
  need(typeof body.solution_str === 'string', `solution_str must be a string, got ${typeName(body.solution_str)}`, 'solution_str');
  return {
    id,
    input: {
      dataSource: body.data_source,
      solutionStr: body.solution_str,
      groundTruth: body.ground_truth === undefined ? null : (body.ground_truth as JsonValue),
      extraInfo: readExtra(body.extra_info, 'extra_info'),
      kwargs: readKwargs(body),
    },
  };
}

/** Validate a parsed `/v1/score_batch` body; throws a {@link BridgeError} naming the field (and item). */
export function parseBatchRequest(body: unknown): { id: string | number | null; inputs: RewardInput[] } {
  need(isObj(body), `request body must be a JSON object, got ${typeName(body)}`, 'body');
  const id = readId(body);
  const ds = body.data_sources;
  const ss = body.solution_strs;
  need(Array.isArray(ds), `data_sources must be a list, got ${typeName(ds)}`, 'data_sources');
  need(Array.isArray(ss), `solution_strs must be a list, got ${typeName(ss)}`, 'solution_strs');
  const n = ds.length;
  need(ss.length === n, `solution_strs has ${ss.length} items but data_sources has ${n}`, 'solution_strs');
  const gts = body.ground_truths;
  need(gts === undefined || gts === null || Array.isArray(gts), `ground_truths must be a list, got ${typeName(gts)}`, 'ground_truths');
  if (Array.isArray(gts)) need(gts.length === n, `ground_truths has ${gts.length} items but data_sources has ${n}`, 'ground_truths');
  const eis = body.extra_infos;
  need(eis === undefined || eis === null || Array.isArray(eis), `extra_infos must be a list or null, got ${typeName(eis)}`, 'extra_infos');
  if (Array.isArray(eis)) need(eis.length === n, `extra_infos has ${eis.length} items but data_sources has ${n}`, 'extra_infos');
  const kwargs = readKwargs(body);
  const inputs: RewardInput[] = new Array(n);
  for (let i = 0; i < n; i++) {
    need(typeof ds[i] === 'string', `data_sources[${i}] must be a string, got ${typeName(ds[i])}`, `data_sources[${i}]`);
    need(typeof ss[i] === 'string', `solution_strs[${i}] must be a string, got ${typeName(ss[i])}`, `solution_strs[${i}]`);
    inputs[i] = {
      dataSource: ds[i] as string,
      solutionStr: ss[i] as string,
      groundTruth: Array.isArray(gts) && gts[i] !== undefined ? (gts[i] as JsonValue) : null,
      extraInfo: Array.isArray(eis) ? readExtra(eis[i], `extra_infos[${i}]`) : null,
      kwargs,
    };
  }
  return { id, inputs };
}
