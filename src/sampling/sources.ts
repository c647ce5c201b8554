/**
 * Prompt sources: verl-format training files read as streams, and the seed's two-file set-up (`TRAIN_4K_FILE`,
 * `TRAIN_16K_FILE`, each with its own length limits) as one source that tags every prompt with its file.
 *
 * verl's row format (what its preprocessing scripts write with `datasets.to_parquet`): `prompt` (a list of chat
 * messages `{ role, content }`), `data_source`, `ability`, `reward_model: { ground_truth, style }`, `extra_info`.
 * Parquet is read with `hyparquet` one row group at a time; JSONL with `readline`, one line at a time. Neither
 * loads a whole file.
 *
 * @module
 */
import { createReadStream } from 'node:fs';
import { basename, extname } from 'node:path';
import { createInterface } from 'node:readline';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { ConfigError, LumiragError, ValueError } from '../errors.js';
import type { ChatMessage } from './promptFilter.js';

/** One training row in verl's format. Unknown columns are kept. */
export interface VerlPromptRow {
  /** The chat messages (verl's `data.prompt_key`, default `prompt`). */
  prompt: ChatMessage[];
  /** Which scorer applies (verl's `data.reward_fn_key`, default `data_source`). */
  data_source?: string;
  /** Free-form task family (`math`, …). */
  ability?: string;
  /** `{ ground_truth, style }`; `ground_truth` is what `compute_score` receives. */
  reward_model?: { ground_truth?: unknown; style?: string; [key: string]: unknown };
  /** Anything else (`index`, `split`, …); passed to `compute_score` as `extra_info`. */
  extra_info?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A prompt with where it came from and the length limits of its file. */
export interface SourcedPrompt {
  /** The row. */
  row: VerlPromptRow;
  /** Path of the file it was read from. */
  file: string;
  /** The file's label (`'4k'`, `'16k'`, or the file name). */
  label: string;
  /** 0-based row index within the file. */
  index: number;
  /** The prompt limit of this row's file, when configured. */
  maxPromptLength?: number;
  /** The response limit of this row's file, when configured. */
  maxResponseLength?: number;
}

/** The file formats read. */
export type PromptFileFormat = 'parquet' | 'jsonl';

/** An I/O or format error while reading a prompt file (code `E_IO`), naming the file and row/line. */
function ioError(message: string, path: string): LumiragError {
  return new LumiragError('E_IO', message, path);
}

/** Format from the extension: `.parquet` → parquet; `.jsonl`, `.json`, `.ndjson` → JSONL. */
export function detectPromptFileFormat(path: string): PromptFileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl';
  throw new ConfigError(`cannot tell the format of ${path} from its extension (use .parquet or .jsonl, or pass format)`, 'format');
}

/** Deep copy with bigints turned into numbers (verl's int64 columns) and typed arrays into plain arrays. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(plain);
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<unknown>, plain);
  if (v instanceof Date) return v;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x);
    return out;
  }
  return v;
}

/** Options of {@link readParquetRows}. */
export interface ReadParquetOptions {
  /** Only these columns. */
  columns?: string[];
}

/**
 * Stream the rows of a parquet file as plain objects, one row group in memory at a time (int64 values become
 * numbers when safe, else strings).
 */
export async function* readParquetRows(path: string, options: ReadParquetOptions = {}): AsyncGenerator<Record<string, unknown>> {
  let file;
  let metadata;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw ioError(`cannot read parquet file ${path}: ${err instanceof Error ? err.message : String(err)}`, path);
  }
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    if (rowEnd > rowStart) {
      const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, columns: options.columns });
      for (const r of rows) yield plain(r) as Record<string, unknown>;
    }
    rowStart = rowEnd;
  }
}

/** Stream the objects of a JSONL file, one line at a time; blank lines are skipped, bad JSON names the line. */
export async function* readJsonlRows(path: string): AsyncGenerator<Record<string, unknown>> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw ioError(`${path}:${lineNo}: not valid JSON (${err instanceof Error ? err.message : String(err)})`, path);
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw ioError(`${path}:${lineNo}: each line must be a JSON object`, path);
      yield obj as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof LumiragError) throw err;
    throw ioError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, path);
  } finally {
    lines.close();
    stream.destroy();
  }
}

/**
 * Check and normalise one verl row: `prompt` must be a list of `{ role, content }` (a JSON string holding one is
 * parsed, as some exports store it that way).
 *
 * @param raw - the row as read
 * @param where - location for messages (`file:row`)
 * @param promptKey - the prompt column (verl's `data.prompt_key`)
 */
export function toVerlPromptRow(raw: Record<string, unknown>, where: string, promptKey = 'prompt'): VerlPromptRow {
  let prompt = raw[promptKey];
  if (typeof prompt === 'string') {
    try {
      prompt = JSON.parse(prompt);
    } catch {
      throw new ValueError(`${where}: ${promptKey} is a string that is not a JSON list of chat messages`, promptKey);
    }
  }
  if (!Array.isArray(prompt)) throw new ValueError(`${where}: ${promptKey} must be a list of chat messages, got ${prompt === undefined ? 'nothing' : typeof prompt}`, promptKey);
  prompt.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string') {
      throw new ValueError(`${where}: ${promptKey}[${i}] must be a message { role, content }`, promptKey);
    }
  });
  const row: VerlPromptRow = { ...raw, prompt: prompt as ChatMessage[] };
  if (promptKey !== 'prompt') delete row[promptKey];
  return row;
}

/** One file of a prompt source. */
export interface PromptFileSpec {
  /** The file. */
  path: string;
  /** Label put on its prompts (default: the file name). */
  label?: string;
  /** Its prompt limit (tagged on every prompt; the filter can use it). */
  maxPromptLength?: number;
  /** Its response limit (tagged on every prompt). */
  maxResponseLength?: number;
  /** Format; default from the extension. */
  format?: PromptFileFormat;
  /** The prompt column (verl's `data.prompt_key`); default `prompt`. */
  promptKey?: string;
}

function checkLimit(v: number | undefined, field: string): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new ConfigError(`${field} must be a positive integer, got ${String(v)}`, field);
}

/** Stream one verl-format file as {@link SourcedPrompt}s. */
export async function* readPromptFile(spec: PromptFileSpec | string): AsyncGenerator<SourcedPrompt> {
  const s: PromptFileSpec = typeof spec === 'string' ? { path: spec } : spec;
  if (!s || typeof s.path !== 'string' || s.path.length === 0) throw new ConfigError('a prompt file needs a path', 'path');
  checkLimit(s.maxPromptLength, 'maxPromptLength');
  checkLimit(s.maxResponseLength, 'maxResponseLength');
  const format = s.format ?? detectPromptFileFormat(s.path);
  const label = s.label ?? basename(s.path);
  const rows = format === 'parquet' ? readParquetRows(s.path) : readJsonlRows(s.path);
  let index = 0;
  for await (const raw of rows) {
    const out: SourcedPrompt = { row: toVerlPromptRow(raw, `${s.path}:${format === 'parquet' ? 'row ' : 'record '}${index}`, s.promptKey), file: s.path, label, index };
    if (s.maxPromptLength !== undefined) out.maxPromptLength = s.maxPromptLength;
    if (s.maxResponseLength !== undefined) out.maxResponseLength = s.maxResponseLength;
    index++;
    yield out;
  }
}

/** Options of {@link multiFileSource}. */
export interface MultiFileSourceOptions {
  /**
   * `'concat'` (default): every row of the first file, then the next — verl's order for a list of `train_files`
   * without shuffling. `'round-robin'`: one row from each file in turn until all run out.
   */
  order?: 'concat' | 'round-robin';
  /** Passes over the files (default 1); the source ends after the last. */
  epochs?: number;
}

/** Several verl files as one stream of tagged prompts (see {@link MultiFileSourceOptions.order}). */
export async function* multiFileSource(files: readonly (PromptFileSpec | string)[], options: MultiFileSourceOptions = {}): AsyncGenerator<SourcedPrompt> {
  if (!Array.isArray(files) || files.length === 0) throw new ConfigError('multiFileSource needs at least one file', 'files');
  const epochs = options.epochs ?? 1;
  if (!Number.isInteger(epochs) || epochs < 1) throw new ConfigError(`epochs must be a positive integer, got ${String(epochs)}`, 'epochs');
  const order = options.order ?? 'concat';
  if (order !== 'concat' && order !== 'round-robin') throw new ConfigError(`order must be 'concat' or 'round-robin', got ${String(order)}`, 'order');
  for (let e = 0; e < epochs; e++) {
    if (order === 'concat') {
      for (const f of files) yield* readPromptFile(f);
      continue;
    }
    const its = files.map((f) => readPromptFile(f));
    const live = new Set(its.keys());
    while (live.size > 0) {
      for (const i of [...live]) {
        const r = await (its[i] as AsyncGenerator<SourcedPrompt>).next();
        if (r.done) live.delete(i);
        else yield r.value;
      }
    }
  }
}

/** The seed's two training files and their limits (see `configFromEnv`'s `data`). */
export interface SeedDataFiles {
  /** `TRAIN_4K_FILE`. */
  train4kFile?: string;
  /** `TRAIN_16K_FILE`. */
  train16kFile?: string;
  /** Limits of the 4K file. */
  limits4k: { maxPromptLength: number; maxResponseLength: number };
  /** Limits of the 16K file. */
  limits16k: { maxPromptLength: number; maxResponseLength: number };
}

/**
 * The seed's two-file set-up as one source: the 4K file's prompts labelled `'4k'`, the 16K file's `'16k'`, each
 * carrying its own `maxPromptLength` / `maxResponseLength`. At least one file must be set.
 */
export function seedPromptSource(data: SeedDataFiles, options: MultiFileSourceOptions = {}): AsyncGenerator<SourcedPrompt> {
  const files: PromptFileSpec[] = [];
  if (data.train4kFile) files.push({ path: data.train4kFile, label: '4k', ...data.limits4k });
  if (data.train16kFile) files.push({ path: data.train16kFile, label: '16k', ...data.limits16k });
  if (files.length === 0) throw new ConfigError('neither TRAIN_4K_FILE nor TRAIN_16K_FILE is set', 'TRAIN_4K_FILE');
  return multiFileSource(files, options);
}
