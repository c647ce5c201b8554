/**
 * The reward bridge server: serves a TypeScript reward to verl's Python reward workers over HTTP + JSON (see
 * {@link ./protocol.js} for the wire format). node:http only; loopback by default; optional bearer token; request size
 * limit; per-call timeout; bounded concurrency; graceful shutdown that lets in-flight calls finish.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BridgeError, ConfigError } from '../../errors.js';
import { RewardLimiter, defineReward, type RewardFn, type RewardHook } from '../hooks.js';
import {
  BRIDGE_PATHS,
  BRIDGE_PROTOCOL_VERSION,
  parseBatchRequest,
  parseScoreRequest,
  toWireItem,
  type WireBatchReply,
  type WireErrorCode,
  type WireErrorReply,
  type WireHealth,
  type WireScoreReply,
} from './protocol.js';

/** Options of {@link serveRewards}. */
export interface ServeRewardsOptions {
  /** The reward: a function or a `defineReward(...)` / registry hook. */
  reward: RewardFn | RewardHook;
  /** Interface to bind; default `127.0.0.1` (loopback). Binding elsewhere without a token emits a warning. */
  host?: string;
  /** TCP port; default 0 (any free port; read it from `.port` / `.url`). */
  port?: number;
  /** When set, every scoring request needs `Authorization: Bearer <token>` (health stays open). */
  token?: string | null;
  /** Per-call timeout in ms (one sample, or one call of a batch reward); default 30000; 0 = none. */
  timeoutMs?: number;
  /** Maximum concurrent reward calls across all requests; default 64. Further calls wait their turn. */
  maxConcurrency?: number;
  /** Largest request body accepted, in bytes; default 32 MiB. Larger bodies get 413. */
  maxBodyBytes?: number;
  /** Receives one line per notable event (warnings, 5xx). Default: warnings via `process.emitWarning`. */
  log?: (line: string) => void;
}

/** Counters since start. */
export interface RewardServerStats {
  /** Scoring requests answered 200 (replies actually written; a reply to a vanished client is not counted). */
  requests: number;
  /** Items scored `ok`. */
  itemsOk: number;
  /** Items that failed (`error`, `timeout`, `invalid`). */
  itemsFailed: number;
  /** Requests refused with 4xx/503. */
  rejected: number;
  /** Requests being handled now. */
  inFlight: number;
}

/** Options of {@link RewardServer.close}. */
export interface RewardServerCloseOptions {
  /** After this many ms, cut the connections still open; default `max(2 * timeoutMs, 10000)`. */
  graceMs?: number;
}

/** A running bridge server. */
export interface RewardServer {
  /** `http://HOST:PORT` (IPv6 hosts in brackets). */
  readonly url: string;
  /** The bound host. */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  /** The underlying node:http server. */
  readonly server: Server;
  /** Counters since start. */
  stats(): RewardServerStats;
  /**
   * Graceful shutdown: stop accepting connections, answer new requests on open connections with 503 `draining`, let
   * in-flight calls finish, then close. Resolves when everything is closed. Idempotent.
   */
  close(options?: RewardServerCloseOptions): Promise<void>;
}

const MiB = 1024 * 1024;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function checkInt(v: number, name: string, min: number, allowInf = false): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || (!(allowInf && v === Infinity) && !Number.isInteger(v))) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got ${String(v)}`, name);
  }
  return v;
}

/**
 * Start the bridge server and resolve once it is listening.
 *
 * @example
 * ```ts
 * const srv = await serveRewards({ reward: createDefaultRewardRegistry(), port: 0 });
 * console.log(`listening on ${srv.url}`);
 * ```
 */
export async function serveRewards(options: ServeRewardsOptions): Promise<RewardServer> {
  if (!options || typeof options !== 'object') throw new ConfigError('serveRewards needs an options object', 'options');
  const hook = defineReward(options.reward);
  const host = options.host ?? '127.0.0.1';
  const port = checkInt(options.port ?? 0, 'port', 0);
  if (port > 65535) throw new ConfigError(`port must be <= 65535, got ${port}`, 'port');
  const timeoutMs = checkInt(options.timeoutMs ?? 30_000, 'timeoutMs', 0);
  const maxBodyBytes = checkInt(options.maxBodyBytes ?? 32 * MiB, 'maxBodyBytes', 1);
  const limiter = new RewardLimiter(checkInt(options.maxConcurrency ?? 64, 'maxConcurrency', 1, true));
  const token = options.token ?? null;
  if (token !== null && (typeof token !== 'string' || token.length === 0)) {
    throw new ConfigError('token must be a non-empty string (or null for none)', 'token');
  }
  const tokenDigest = token === null ? null : digest(token);
  const log = options.log ?? ((line: string) => process.emitWarning(line, { code: 'LUMIRAG_BRIDGE' }));
  if (!isLoopback(host) && token === null) {
    log(`reward bridge bound to ${host} without a token: anyone who can reach it can call your reward`);
  }
  // Bodies of refused requests are read and discarded (so the client can read the answer) up to this many bytes.
  const discardCap = Math.max(4 * maxBodyBytes, 64 * MiB);

  const stats = { requests: 0, itemsOk: 0, itemsFailed: 0, rejected: 0, inFlight: 0 };
  let draining = false;
  let onIdle: (() => void) | null = null;

  const send = (res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): boolean => {
    if (res.headersSent || res.destroyed) return false;
    const data = Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': data.length,
      ...extraHeaders,
    };
    if (draining) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(data);
    return true;
  };

  /** Answer a request error once the request body has been read (or cut the connection past the discard cap). */
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    code: WireErrorCode,
    message: string,
    field?: string,
    extraHeaders: Record<string, string> = {},
  ) => {
    stats.rejected++;
    const body: WireErrorReply = { error: field ? { code, message, field } : { code, message } };
    if (req.complete) {
      send(res, status, body, extraHeaders);
      return;
    }
    let seen = 0;
    req.removeAllListeners('data');
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > discardCap) {
        send(res, status, body, { ...extraHeaders, connection: 'close' });
        req.socket.destroySoon();
      }
    });
    req.once('end', () => send(res, status, body, extraHeaders));
    req.resume();
  };

  const readBody = (req: IncomingMessage): Promise<Buffer | 'too_large'> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) {
          over = true;
          req.off('data', onData);
          req.off('end', onEnd);
          chunks.length = 0;
          resolve('too_large');
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        if (!over) resolve(Buffer.concat(chunks, size));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === BRIDGE_PATHS.health || path === '/v1/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return refuse(req, res, 405, 'method_not_allowed', `${path} accepts GET, got ${req.method}`, undefined, { allow: 'GET, HEAD' });
      }
      const h: WireHealth = { status: draining ? 'draining' : 'ok', protocol: BRIDGE_PROTOCOL_VERSION, reward: hook.name, inFlight: stats.inFlight - 1 };
      send(res, draining ? 503 : 200, h);
      return;
    }
    const isScore = path === BRIDGE_PATHS.score;
    const isBatch = path === BRIDGE_PATHS.scoreBatch;
    if (!isScore && !isBatch) {
      return refuse(req, res, 404, 'not_found', `no endpoint ${path}; use POST ${BRIDGE_PATHS.score}, POST ${BRIDGE_PATHS.scoreBatch} or GET ${BRIDGE_PATHS.health}`);
    }
    if (req.method !== 'POST') {
      return refuse(req, res, 405, 'method_not_allowed', `${path} accepts POST, got ${req.method}`, undefined, { allow: 'POST' });
    }
    if (draining) return refuse(req, res, 503, 'draining', 'server is shutting down; retry on another server or later');
    if (tokenDigest) {
      const auth = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !timingSafeEqual(digest(m[1].trim()), tokenDigest)) {
        return refuse(req, res, 401, 'unauthorized', m ? 'wrong bearer token' : 'missing "Authorization: Bearer <token>" header', 'authorization', {
          'www-authenticate': 'Bearer realm="lumirag-rl"',
        });
      }
    }
    const ctype = req.headers['content-type'];
    if (ctype !== undefined && !/^application\/([\w.+-]*\+)?json\b/i.test(ctype)) {
      return refuse(req, res, 415, 'unsupported_media_type', `content-type must be application/json, got ${ctype}`, 'content-type');
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > maxBodyBytes) {
      return refuse(req, res, 413, 'payload_too_large', `body of ${declared} bytes exceeds maxBodyBytes ${maxBodyBytes}`, 'body');
    }
    const raw = await readBody(req);
    if (raw === 'too_large') {
      return refuse(req, res, 413, 'payload_too_large', `body exceeds maxBodyBytes ${maxBodyBytes}`, 'body');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return refuse(req, res, 400, 'bad_json', `body is not valid JSON: ${(e as Error).message}`, 'body');
    }
    let id: string | number | null;
    let inputs;
    try {
      ({ id, inputs } = isScore
        ? (({ id: i, input }) => ({ id: i, inputs: [input] }))(parseScoreRequest(parsed))
        : parseBatchRequest(parsed));
    } catch (e) {
      if (e instanceof BridgeError) return refuse(req, res, 400, 'bad_request', e.message, e.field);
      throw e;
    }
    // Give up on calls nobody is waiting for any more (client went away).
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort();
    };
    res.once('close', onClose);
    const results = await hook.scoreBatch(inputs, { timeoutMs, limiter, signal: gone.signal });
    res.off('close', onClose);
    const wire = results.map(toWireItem);
    const reply: WireScoreReply | WireBatchReply = isScore ? { id, result: wire[0] } : { id, results: wire };
    if (!send(res, 200, reply)) return; // the client went away: nothing was delivered, nothing is counted
    stats.requests++;
    for (const r of results) {
      if (r.status === 'ok') stats.itemsOk++;
      else stats.itemsFailed++;
    }
  };

  const server = createServer((req, res) => {
    stats.inFlight++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stats.inFlight--;
      if (stats.inFlight === 0 && onIdle) onIdle();
    };
    res.once('close', finish);
    handle(req, res).catch((e: unknown) => {
      log(`reward bridge internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: e instanceof Error ? e.message : String(e) } });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(new BridgeError(`cannot listen on ${host}:${port}: ${e.code ?? ''} ${e.message}`.trim(), 'port'));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => log(`reward bridge server error: ${e.message}`));
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy(err);
  });

  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;

  return {
    url: `http://${urlHost}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    server,
    stats: () => ({ ...stats }),
    close(closeOptions?: RewardServerCloseOptions): Promise<void> {
      if (closing) return closing;
      draining = true;
      const graceMs = closeOptions?.graceMs ?? Math.max(2 * timeoutMs, 10_000);
      closing = new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        server.close(() => {
          if (timer) clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
        const idle = () => {
          onIdle = null;
          server.closeIdleConnections();
          // Responses written while draining carry `connection: close`; sweep anything left.
          setImmediate(() => server.closeAllConnections());
        };
        if (stats.inFlight === 0) idle();
        else onIdle = idle;
        timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
      });
      return closing;
    },
  };
}
