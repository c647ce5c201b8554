/**
 * The overlong-prompt filter (verl's `data.filter_overlong_prompts`, `RLHFDataset`; SPEC.md §9) and prompt
 * truncation (`data.truncation`).
 *
 * A row is kept iff its chat-templated prompt — `apply_chat_template(messages, add_generation_prompt=True)`, then
 * the tokenizer, no extra special tokens — has at most `maxPromptLength` tokens. Any exception while measuring counts
 * as too long (dropped), as in verl. Every dropped row is reported with its reason; nothing is dropped silently.
 *
 * The tokenizer comes from the model directory (`MODEL_PATH`): `tokenizer.json` through `@huggingface/tokenizers`,
 * the chat template through `@huggingface/jinja`. A caller-supplied `countTokens` can replace both.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError, UnknownModeError, ValueError } from '../errors.js';

/** One chat message (verl's `prompt` column holds a list of these). */
export interface ChatMessage {
  /** `system`, `user`, `assistant`, `tool`, … */
  role: string;
  /** Text, or multimodal parts (counted only as far as the chat template renders them). */
  content: unknown;
  [key: string]: unknown;
}

/** Options of {@link ChatTokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the assistant header (verl measures with `add_generation_prompt=True`). Default true. */
  addGenerationPrompt?: boolean;
  /** Tool schemas passed to the template as `tools` (verl's `tools` kwarg). */
  tools?: unknown[];
  /** Extra template variables (verl's `data.apply_chat_template_kwargs`, e.g. `{ enable_thinking: false }`). */
  templateKwargs?: Record<string, unknown>;
}

/** A tokenizer plus its chat template, as loaded from a model directory. */
export interface ChatTokenizer {
  /** The chat template source. */
  readonly chatTemplate: string;
  /** Render `messages` with the chat template (the special tokens of `tokenizer_config.json` are in scope). */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
  /** Token ids of `text`, without added special tokens (as `apply_chat_template(tokenize=True)` encodes). */
  encode(text: string): number[];
  /** Tokens of the chat-templated prompt: `encode(applyChatTemplate(messages, { addGenerationPrompt: true, … }))`. */
  countPromptTokens(messages: readonly ChatMessage[], options?: ChatTemplateOptions): number;
}

/** The JSON contents a {@link ChatTokenizer} is built from. */
export interface ChatTokenizerFiles {
  /** Parsed `tokenizer.json`. */
  tokenizerJson: Record<string, unknown>;
  /** Parsed `tokenizer_config.json` (special tokens; usually the chat template). */
  tokenizerConfig: Record<string, unknown>;
  /** A chat template that overrides the config's (e.g. from `chat_template.jinja`). */
  chatTemplate?: string;
  /** Name of the template to use when the config holds several (`[{ name, template }]`); default `'default'`. */
  templateName?: string;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function pickTemplate(config: Record<string, unknown>, name: string, hasTools: boolean): string | null {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = new Map<string, string>();
    for (const e of t) if (e && typeof e.name === 'string' && typeof e.template === 'string') named.set(e.name, e.template);
    return named.get(hasTools && named.has('tool_use') && name === 'default' ? 'tool_use' : name) ?? null;
  }
  return null;
}

/**
 * Build a {@link ChatTokenizer} from parsed files. The template context is what transformers passes: `messages`,
 * `add_generation_prompt`, `tools` (when given), the special tokens (`bos_token`, `eos_token`, …) and the template
 * kwargs; `raise_exception` and `strftime_now` come from `@huggingface/jinja`.
 */
export function createChatTokenizer(files: ChatTokenizerFiles): ChatTokenizer {
  const { tokenizerJson, tokenizerConfig } = files;
  if (tokenizerJson == null || typeof tokenizerJson !== 'object') throw new ConfigError('tokenizerJson must be the parsed tokenizer.json', 'tokenizerJson');
  if (tokenizerConfig == null || typeof tokenizerConfig !== 'object') throw new ConfigError('tokenizerConfig must be the parsed tokenizer_config.json', 'tokenizerConfig');
  const source = files.chatTemplate ?? pickTemplate(tokenizerConfig, files.templateName ?? 'default', false);
  if (typeof source !== 'string' || source.length === 0) {
    throw new ConfigError('no chat template: tokenizer_config.json has no chat_template and none was given (chat_template.jinja)', 'chatTemplate');
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (err) {
    throw new ConfigError(`tokenizer.json could not be loaded: ${err instanceof Error ? err.message : String(err)}`, 'tokenizerJson');
  }
  const compiled = new Map<string, Template>();
  const templateFor = (hasTools: boolean): Template => {
    const src = files.chatTemplate ?? (pickTemplate(tokenizerConfig, files.templateName ?? 'default', hasTools) as string);
    let t = compiled.get(src);
    if (!t) compiled.set(src, (t = new Template(src)));
    return t;
  };
  templateFor(false); // fail early on a template that does not parse
  const specials: Record<string, unknown> = {};
  for (const k of SPECIAL_KEYS) specials[k] = tokenString(tokenizerConfig[k]) ?? undefined;
  const extra = tokenizerConfig.additional_special_tokens;
  if (Array.isArray(extra)) specials.additional_special_tokens = extra.map(tokenString);

  const self: ChatTokenizer = {
    chatTemplate: source,
    applyChatTemplate(messages, options = {}) {
      if (!Array.isArray(messages)) throw new ValueError('messages must be an array of chat messages', 'messages');
      const ctx: Record<string, unknown> = {
        ...specials,
        ...(options.templateKwargs ?? {}),
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? true,
      };
      if (options.tools) ctx.tools = options.tools;
      return templateFor(options.tools !== undefined).render(ctx);
    },
    encode(text) {
      return tokenizer.encode(text, { add_special_tokens: false }).ids;
    },
    countPromptTokens(messages, options = {}) {
      return self.encode(self.applyChatTemplate(messages, { ...options, addGenerationPrompt: options.addGenerationPrompt ?? true })).length;
    },
  };
  return self;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, path);
  }
}

/**
 * Load the tokenizer and chat template of a model directory (`MODEL_PATH`): `tokenizer.json`,
 * `tokenizer_config.json`, and the chat template from `chat_template.jinja` if present (as recent transformers
 * save it), else `chat_template.json`, else `tokenizer_config.json`'s `chat_template`.
 *
 * @param modelDir - the model directory
 * @param options - `chatTemplate` to override the template, `templateName` to pick a named one
 */
export async function loadChatTokenizer(modelDir: string, options: { chatTemplate?: string; templateName?: string } = {}): Promise<ChatTokenizer> {
  const tokPath = join(modelDir, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new ConfigError(`${tokPath} not found (MODEL_PATH must hold tokenizer.json)`, 'MODEL_PATH');
  const tokenizerJson = await readJson(tokPath);
  const cfgPath = join(modelDir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(cfgPath) ? await readJson(cfgPath) : {};
  let chatTemplate = options.chatTemplate;
  if (chatTemplate === undefined && existsSync(join(modelDir, 'chat_template.jinja'))) {
    chatTemplate = await readFile(join(modelDir, 'chat_template.jinja'), 'utf8');
  }
  if (chatTemplate === undefined && existsSync(join(modelDir, 'chat_template.json'))) {
    const t = (await readJson(join(modelDir, 'chat_template.json'))).chat_template;
    if (typeof t === 'string') chatTemplate = t;
  }
  return createChatTokenizer({ tokenizerJson, tokenizerConfig, chatTemplate, templateName: options.templateName });
}

/** A caller-supplied token counter: the prompt's length in tokens, exactly as the training run will count it. */
export type CountTokens<T> = (messages: readonly ChatMessage[], item: T) => number | Promise<number>;

/** Options of {@link filterOverlongPrompts} and {@link filterPromptStream}. */
export interface PromptFilterOptions<T> {
  /** Longest prompt kept (`data.max_prompt_length`), or a per-item limit (the seed's two files differ). */
  maxPromptLength: number | ((item: T) => number);
  /** The tokenizer to count with (see {@link loadChatTokenizer}); or give `countTokens`. */
  tokenizer?: ChatTokenizer;
  /** A counter that replaces the tokenizer. */
  countTokens?: CountTokens<T>;
  /** How to get the messages of an item; default `item.prompt`, or `item.row.prompt` for a tagged source record. */
  getMessages?: (item: T) => readonly ChatMessage[];
  /** Template options (verl's `apply_chat_template_kwargs`, `tools`); the generation prompt is always added. */
  template?: Omit<ChatTemplateOptions, 'addGenerationPrompt'>;
  /** Called for every dropped item, as it is dropped. */
  onDrop?: (drop: DroppedPrompt<T>) => void;
}

/** Why a prompt was dropped. */
export type PromptDropReason = 'too-long' | 'error';

/** A dropped prompt. */
export interface DroppedPrompt<T> {
  /** Position of the item in the input (0-based). */
  index: number;
  /** The item. */
  item: T;
  /** `'too-long'` (tokens > limit) or `'error'` (measuring threw; verl drops these too). */
  reason: PromptDropReason;
  /** Tokens counted (absent for `'error'`). */
  tokens?: number;
  /** The limit applied. */
  maxPromptLength: number;
  /** The exception message (for `'error'`). */
  error?: string;
}

/** Counts of a filter run. */
export interface PromptFilterStats {
  /** Items measured. */
  seen: number;
  /** Items kept. */
  kept: number;
  /** Items dropped as too long. */
  droppedTooLong: number;
  /** Items dropped because measuring threw. */
  droppedError: number;
}

/** The result of {@link filterOverlongPrompts}. */
export interface PromptFilterResult<T> {
  /** Kept items, in input order. */
  kept: T[];
  /** Dropped items, in input order. */
  dropped: DroppedPrompt<T>[];
  /** Counts. */
  stats: PromptFilterStats;
}

function defaultMessages(item: unknown): readonly ChatMessage[] {
  const o = item as { prompt?: unknown; row?: { prompt?: unknown } };
  const m = o?.prompt ?? o?.row?.prompt;
  if (!Array.isArray(m)) throw new ValueError('the item has no chat messages at .prompt (or .row.prompt)', 'prompt');
  return m as ChatMessage[];
}

function makeJudge<T>(options: PromptFilterOptions<T>): (item: T, index: number) => Promise<DroppedPrompt<T> | null> {
  if (options == null || typeof options !== 'object') throw new ConfigError('prompt filter options must be an object', 'options');
  const { tokenizer, countTokens, template } = options;
  if (!tokenizer && !countTokens) throw new ConfigError('the prompt filter needs a tokenizer (loadChatTokenizer(MODEL_PATH)) or countTokens', 'tokenizer');
  const limitOf = typeof options.maxPromptLength === 'function' ? options.maxPromptLength : () => options.maxPromptLength as number;
  const getMessages = options.getMessages ?? defaultMessages;
  return async (item, index) => {
    const limit = limitOf(item);
    if (!Number.isInteger(limit) || limit < 1) {
      throw new ConfigError(`maxPromptLength must be a positive integer, got ${String(limit)} (item ${index})`, 'maxPromptLength');
    }
    let tokens: number;
    try {
      const messages = getMessages(item);
      tokens = countTokens ? await countTokens(messages, item) : (tokenizer as ChatTokenizer).countPromptTokens(messages, { ...template, addGenerationPrompt: true });
      if (!Number.isInteger(tokens) || tokens < 0) throw new ValueError(`token count must be a non-negative integer, got ${String(tokens)}`, 'countTokens');
    } catch (err) {
      return { index, item, reason: 'error', maxPromptLength: limit, error: err instanceof Error ? err.message : String(err) };
    }
    return tokens <= limit ? null : { index, item, reason: 'too-long', tokens, maxPromptLength: limit };
  };
}

/**
 * Keep the items whose chat-templated prompt has at most `maxPromptLength` tokens (verl's
 * `filter_overlong_prompts`). Items that make measuring throw are dropped with reason `'error'`, as verl does.
 */
export async function filterOverlongPrompts<T>(items: readonly T[], options: PromptFilterOptions<T>): Promise<PromptFilterResult<T>> {
  if (!Array.isArray(items)) throw new ValueError('items must be an array', 'items');
  const judge = makeJudge(options);
  const kept: T[] = [];
  const dropped: DroppedPrompt<T>[] = [];
  for (let i = 0; i < items.length; i++) {
    const d = await judge(items[i] as T, i);
    if (d) {
      dropped.push(d);
      options.onDrop?.(d);
    } else kept.push(items[i] as T);
  }
  return { kept, dropped, stats: statsOf(items.length, dropped) };
}

function statsOf<T>(seen: number, dropped: readonly DroppedPrompt<T>[]): PromptFilterStats {
  const droppedError = dropped.filter((d) => d.reason === 'error').length;
  return { seen, kept: seen - dropped.length, droppedTooLong: dropped.length - droppedError, droppedError };
}

/** A filtered stream: iterate it for the kept items; `dropped` and `stats` fill in as it goes. */
export interface PromptFilterStream<T> extends AsyncIterable<T> {
  /** Every dropped item so far. */
  readonly dropped: DroppedPrompt<T>[];
  /** Counts so far. */
  readonly stats: PromptFilterStats;
}

/**
 * The streaming form of {@link filterOverlongPrompts}: reads `source` one item at a time (never all at once) and
 * yields the kept ones. Drops are collected on the returned object and passed to `onDrop` as they happen.
 */
export function filterPromptStream<T>(source: Iterable<T> | AsyncIterable<T>, options: PromptFilterOptions<T>): PromptFilterStream<T> {
  const judge = makeJudge(options);
  const dropped: DroppedPrompt<T>[] = [];
  let seen = 0;
  return {
    dropped,
    get stats() {
      return statsOf(seen, dropped);
    },
    async *[Symbol.asyncIterator]() {
      for await (const item of source as AsyncIterable<T>) {
        const d = await judge(item, seen++);
        if (d) {
          dropped.push(d);
          options.onDrop?.(d);
        } else yield item;
      }
    },
  };
}

/** verl's `data.truncation` modes. */
export const TRUNCATION_MODES = ['error', 'left', 'right', 'middle'] as const;

/** One of {@link TRUNCATION_MODES}. */
export type TruncationMode = (typeof TRUNCATION_MODES)[number];

/** The result of {@link truncatePrompt}. */
export interface TruncateResult<T> {
  /** The kept tokens (a new array). */
  ids: T[];
  /** Tokens removed. */
  removed: number;
}

/**
 * Truncate a token sequence to `maxPromptLength` the way verl's `postprocess_data` does: `left` keeps the last N
 * tokens, `right` the first N, `middle` the first ⌊N/2⌋ and the last N − ⌊N/2⌋; `error` throws
 * {@link ValueError}. Sequences within the limit come back unchanged (copied).
 *
 * @param ids - token ids (or any per-token array: attention mask, position ids)
 * @param maxPromptLength - N ≥ 1
 * @param mode - the truncation mode (default `'error'`, verl's default)
 */
export function truncatePrompt<T>(ids: readonly T[], maxPromptLength: number, mode: TruncationMode = 'error'): TruncateResult<T> {
  if (!Array.isArray(ids)) throw new ValueError('ids must be an array', 'ids');
  if (!Number.isInteger(maxPromptLength) || maxPromptLength < 1) {
    throw new ConfigError(`maxPromptLength must be a positive integer, got ${String(maxPromptLength)}`, 'maxPromptLength');
  }
  if (!(TRUNCATION_MODES as readonly string[]).includes(mode)) throw new UnknownModeError('truncation', String(mode), TRUNCATION_MODES);
  const L = ids.length;
  const N = maxPromptLength;
  if (L <= N) return { ids: ids.slice(), removed: 0 };
  switch (mode) {
    case 'left':
      return { ids: ids.slice(L - N), removed: L - N };
    case 'right':
      return { ids: ids.slice(0, N), removed: L - N };
    case 'middle': {
      const left = Math.floor(N / 2);
      return { ids: ids.slice(0, left).concat(ids.slice(L - (N - left))), removed: L - N };
    }
    default:
      throw new ValueError(
        `prompt has ${L} tokens, more than maxPromptLength = ${N} (truncation 'error', verl's default; use left, right or middle, or filter overlong prompts)`,
        'maxPromptLength',
      );
  }
}
