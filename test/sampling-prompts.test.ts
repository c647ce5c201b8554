import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Record every hyparquet read so the test can check that parquet is streamed one row group at a time.
const reads = vi.hoisted(() => [] as [number, number][]);
vi.mock('hyparquet', async (importOriginal) => {
  const mod = await importOriginal<typeof import('hyparquet')>();
  return {
    ...mod,
    parquetReadObjects: (opts: Parameters<typeof mod.parquetReadObjects>[0]) => {
      reads.push([opts.rowStart ?? 0, opts.rowEnd ?? -1]);
      return mod.parquetReadObjects(opts);
    },
  };
});
import {
  type ChatMessage,
  filterOverlongPrompts,
  filterPromptStream,
  loadChatTokenizer,
  truncatePrompt,
} from '../src/sampling/promptFilter.js';
import { multiFileSource, readJsonlRows, readParquetRows, readPromptFile, seedPromptSource, type SourcedPrompt } from '../src/sampling/sources.js';
import { ConfigError, UnknownModeError, ValueError } from '../src/errors.js';

let dir: string;
const words = ['user', 'assistant', 'system', 'tool', 'hello', 'world', '.', 'what', 'is', '2', '+', '?', 'be', 'brief', 'a', 'b', 'c', 'd', 'e', 'f'];
const specials = ['<s>', '<|im_start|>', '<|im_end|>'];

/** ChatML with a BOS token from tokenizer_config (object form), a role check via raise_exception. */
const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('bad role ' + m.role) }}{% endif %}" +
  '<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}' +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and not enable_thinking %}brief\n{% endif %}{% endif %}";

function writeModelDir(path: string): void {
  const vocab: Record<string, number> = { '[UNK]': 0 };
  for (const t of [...specials, ...words]) vocab[t] = Object.keys(vocab).length;
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  };
  const tokenizerConfig = {
    bos_token: { content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    eos_token: '<|im_end|>',
    chat_template: TEMPLATE,
  };
  writeFileSync(join(path, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  writeFileSync(join(path, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
}

const msg = (content: string, role = 'user'): ChatMessage[] => [{ role, content }];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lumirag-prompts-'));
  writeModelDir(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('chat tokenizer from a model directory', () => {
  it('renders the template with the generation prompt and counts tokens like apply_chat_template', async () => {
    const tok = await loadChatTokenizer(dir);
    const text = tok.applyChatTemplate(msg('hello world .'));
    expect(text).toBe('<s><|im_start|>user\nhello world .<|im_end|>\n<|im_start|>assistant\n');
    // <s> <|im_start|> user hello world . <|im_end|> <|im_start|> assistant
    expect(tok.encode(text).length).toBe(9);
    expect(tok.countPromptTokens(msg('hello world .'))).toBe(9);
    expect(tok.countPromptTokens(msg('hello world .'), { addGenerationPrompt: false })).toBe(7);
    // Two messages: 1 + (3 + 2) + (3 + 3) + 2.
    expect(tok.countPromptTokens([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'what is ?' }])).toBe(14);
    // Template kwargs (verl's apply_chat_template_kwargs).
    expect(tok.countPromptTokens(msg('hello'), { templateKwargs: { enable_thinking: false } })).toBe(8);
  });

  it('chat_template.jinja in the model directory overrides the config template', async () => {
    const d2 = mkdtempSync(join(tmpdir(), 'lumirag-tpl-'));
    try {
      writeModelDir(d2);
      writeFileSync(join(d2, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }} {% endfor %}');
      const tok = await loadChatTokenizer(d2);
      expect(tok.countPromptTokens(msg('hello world'))).toBe(2);
    } finally {
      rmSync(d2, { recursive: true, force: true });
    }
  });

  it('a byte-level BPE tokenizer (Qwen/GPT-2 style) with a ChatML template', async () => {
    const d3 = mkdtempSync(join(tmpdir(), 'lumirag-bpe-'));
    try {
      const toks = ['<|im_start|>', '<|im_end|>', 'h', 'e', 'l', 'o', 'Ġ', 'Ċ', 'u', 's', 'r', 'a', 'i', 't', 'n', 'he', 'll', 'hell', 'hello', 'Ġhello', 'us', 'er', 'user'];
      const vocab = Object.fromEntries(toks.map((t, i) => [t, i]));
      writeFileSync(
        join(d3, 'tokenizer.json'),
        JSON.stringify({
          version: '1.0',
          added_tokens: [0, 1].map((id) => ({ id, content: toks[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
          normalizer: null,
          pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
          post_processor: null,
          decoder: { type: 'ByteLevel' },
          model: { type: 'BPE', vocab, merges: ['h e', 'l l', 'he ll', 'hell o', 'Ġ hello', 'u s', 'e r', 'us er'], dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false },
        }),
      );
      writeFileSync(
        join(d3, 'tokenizer_config.json'),
        JSON.stringify({
          eos_token: '<|im_end|>',
          chat_template:
            '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
        }),
      );
      const tok = await loadChatTokenizer(d3);
      // <|im_start|> user Ċ hello Ġhello <|im_end|> Ċ <|im_start|> a s s i s t a n t Ċ = 9 + 9 tokens.
      expect(tok.countPromptTokens(msg('hello hello'))).toBe(18);
      expect(tok.encode('user\nhello hello')).toEqual([22, 7, 18, 19]);
    } finally {
      rmSync(d3, { recursive: true, force: true });
    }
  });

  it('a missing tokenizer.json is a ConfigError naming MODEL_PATH', async () => {
    await expect(loadChatTokenizer(join(dir, 'nope'))).rejects.toThrow(/MODEL_PATH/);
  });
});

describe('overlong-prompt filter', () => {
  const rows = [
    { id: 0, prompt: msg('hello') }, // 1 + 3 + 1 + 2 = 7 tokens
    { id: 1, prompt: msg('a b c d e f') }, // 12 tokens
    { id: 2, prompt: msg('hello', 'tool') }, // template raises → dropped as error
    { id: 3, prompt: msg('a b c') }, // 9 tokens
    { id: 4, notAPrompt: true },
  ];

  it('keeps rows within max_prompt_length, reports every drop with its reason', async () => {
    const tokenizer = await loadChatTokenizer(dir);
    const seen: number[] = [];
    const res = await filterOverlongPrompts(rows, { maxPromptLength: 10, tokenizer, onDrop: (d) => seen.push(d.index) });
    expect(res.kept.map((r) => r.id)).toEqual([0, 3]);
    expect(res.dropped.map((d) => [d.index, d.reason, d.tokens, d.maxPromptLength])).toEqual([
      [1, 'too-long', 12, 10],
      [2, 'error', undefined, 10],
      [4, 'error', undefined, 10],
    ]);
    expect(res.dropped[1]!.error).toMatch(/bad role tool/);
    expect(res.dropped[2]!.error).toMatch(/prompt/);
    expect(res.stats).toEqual({ seen: 5, kept: 2, droppedTooLong: 1, droppedError: 2 });
    expect(seen).toEqual([1, 2, 4]);
    // The limit is inclusive: 12 tokens pass at 12.
    expect((await filterOverlongPrompts(rows, { maxPromptLength: 12, tokenizer })).kept.map((r) => r.id)).toEqual([0, 1, 3]);
  });

  it('a caller-supplied countTokens replaces the tokenizer; a throwing counter drops the row', async () => {
    const res = await filterOverlongPrompts(rows.slice(0, 4), {
      maxPromptLength: 5,
      countTokens: async (m) => {
        const text = String(m[0]!.content);
        if (text === 'a b c') throw new Error('boom');
        return text.length;
      },
    });
    expect(res.kept.map((r) => r.id)).toEqual([0, 2]);
    expect(res.dropped.map((d) => [d.index, d.reason])).toEqual([[1, 'too-long'], [3, 'error']]);
    await expect(filterOverlongPrompts(rows, { maxPromptLength: 5 })).rejects.toThrow(ConfigError);
  });
});

describe('truncation (verl postprocess_data)', () => {
  const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  it('left keeps the last N, right the first N, middle ⌊N/2⌋ + the last N − ⌊N/2⌋, error throws', () => {
    expect(truncatePrompt(ids, 4, 'left')).toEqual({ ids: [6, 7, 8, 9], removed: 6 });
    expect(truncatePrompt(ids, 4, 'right')).toEqual({ ids: [0, 1, 2, 3], removed: 6 });
    expect(truncatePrompt(ids, 5, 'middle')).toEqual({ ids: [0, 1, 7, 8, 9], removed: 5 });
    expect(truncatePrompt(ids, 1, 'middle').ids).toEqual([9]);
    expect(truncatePrompt(ids, 10, 'error')).toEqual({ ids, removed: 0 });
    expect(() => truncatePrompt(ids, 9)).toThrow(ValueError);
    expect(() => truncatePrompt(ids, 9, 'error')).toThrow(/10 tokens, more than maxPromptLength = 9/);
    expect(() => truncatePrompt(ids, 4, 'top' as 'left')).toThrow(UnknownModeError);
    expect(() => truncatePrompt(ids, 0, 'left')).toThrow(ConfigError);
  });
});

/** verl's preprocessing layout as pyarrow writes it: prompt list<struct<content, role>>, reward_model struct, extra_info struct with int64. */
function writeVerlParquet(path: string, texts: string[], rowGroupSize: number): void {
  const prompt = texts.map((t) => [{ content: t, role: 'user' }]);
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'data_source', data: texts.map(() => 'math_dapo') },
      { name: 'prompt', data: prompt },
      { name: 'ability', data: texts.map(() => 'math') },
      { name: 'reward_model', data: texts.map((_, i) => ({ ground_truth: String(i * 2), style: 'rule' })) },
      { name: 'extra_info', data: texts.map((_, i) => ({ index: BigInt(i), split: 'train' })) },
    ],
    schema: [
      { name: 'root', num_children: 5 },
      { name: 'data_source', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'prompt', repetition_type: 'OPTIONAL', num_children: 1, converted_type: 'LIST' },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'ability', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'reward_model', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'ground_truth', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'style', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'extra_info', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'index', type: 'INT64', repetition_type: 'OPTIONAL' },
      { name: 'split', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    rowGroupSize,
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('prompt sources', () => {
  it('parquet in verl layout, streamed by row groups', async () => {
    const p = join(dir, 'train.parquet');
    writeVerlParquet(p, ['hello', 'a b', 'a b c d e f', 'what is 2 + 2 ?', 'c'], 2);
    reads.length = 0;
    const raw = await collect(readParquetRows(p));
    expect(raw.length).toBe(5);
    expect(reads).toEqual([[0, 2], [2, 4], [4, 5]]); // one read per row group, never the whole file
    expect(raw[2]).toEqual({
      data_source: 'math_dapo',
      prompt: [{ content: 'a b c d e f', role: 'user' }],
      ability: 'math',
      reward_model: { ground_truth: '4', style: 'rule' },
      extra_info: { index: 2, split: 'train' },
    });
    // Stop early: only the first row group was read.
    reads.length = 0;
    const first: unknown[] = [];
    for await (const r of readParquetRows(p)) {
      first.push(r);
      if (first.length === 1) break;
    }
    expect(first.length).toBe(1);
    expect(reads).toEqual([[0, 2]]);
    const tagged = await collect(readPromptFile({ path: p, label: 'mine', maxPromptLength: 10 }));
    expect(tagged.map((t) => [t.index, t.label, t.maxPromptLength, t.row.reward_model?.ground_truth])).toEqual([
      [0, 'mine', 10, '0'],
      [1, 'mine', 10, '2'],
      [2, 'mine', 10, '4'],
      [3, 'mine', 10, '6'],
      [4, 'mine', 10, '8'],
    ]);
  });

  it('JSONL, blank lines skipped, a bad line named; prompt given as a JSON string is parsed', async () => {
    const p = join(dir, 'train.jsonl');
    const line = (t: string, i: number) => JSON.stringify({ data_source: 'x', prompt: msg(t), reward_model: { ground_truth: String(i) }, extra_info: { index: i } });
    writeFileSync(p, [line('hello', 0), '', JSON.stringify({ prompt: JSON.stringify(msg('a b')) }), line('c', 2)].join('\n') + '\n');
    const rows = await collect(readPromptFile(p));
    expect(rows.map((r) => r.row.prompt[0]!.content)).toEqual(['hello', 'a b', 'c']);
    expect(rows[0]!.label).toBe('train.jsonl');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${line('a', 0)}\n{oops\n`);
    await expect(collect(readJsonlRows(bad))).rejects.toThrow(/bad\.jsonl:2: not valid JSON/);
    const noPrompt = join(dir, 'noprompt.jsonl');
    writeFileSync(noPrompt, '{"question": "hi"}\n');
    await expect(collect(readPromptFile(noPrompt))).rejects.toThrow(/record 0: prompt must be a list/);
  });

  it("the seed's two files as one tagged source, each file's own limit applied by the filter", async () => {
    const f4 = join(dir, 'train4k.parquet');
    const f16 = join(dir, 'train16k.jsonl');
    writeVerlParquet(f4, ['hello', 'a b c d e f', 'a'], 1000);
    writeFileSync(f16, ['a b c d e f', 'a b c d e f a b c d e f', 'hello'].map((t) => JSON.stringify({ prompt: msg(t) })).join('\n'));
    const data = {
      train4kFile: f4,
      train16kFile: f16,
      limits4k: { maxPromptLength: 10, maxResponseLength: 30 },
      limits16k: { maxPromptLength: 16, maxResponseLength: 100 },
    };
    const all = await collect(seedPromptSource(data));
    expect(all.map((s) => `${s.label}:${s.index}`)).toEqual(['4k:0', '4k:1', '4k:2', '16k:0', '16k:1', '16k:2']);
    expect(all[3]).toMatchObject({ file: f16, maxPromptLength: 16, maxResponseLength: 100 });
    const rr = await collect(seedPromptSource(data, { order: 'round-robin' }));
    expect(rr.map((s) => `${s.label}:${s.index}`)).toEqual(['4k:0', '16k:0', '4k:1', '16k:1', '4k:2', '16k:2']);

    const tokenizer = await loadChatTokenizer(dir);
    const stream = filterPromptStream<SourcedPrompt>(seedPromptSource(data), {
      tokenizer,
      maxPromptLength: (p) => p.maxPromptLength ?? 10,
    });
    const kept = await collect(stream);
    // 'a b c d e f' is 12 tokens: too long for the 4K file (10), fine for the 16K file (16); the doubled one is 18.
    expect(kept.map((s) => `${s.label}:${s.index}`)).toEqual(['4k:0', '4k:2', '16k:0', '16k:2']);
    expect(stream.dropped.map((d) => [d.item.label, d.item.index, d.tokens, d.maxPromptLength])).toEqual([
      ['4k', 1, 12, 10],
      ['16k', 1, 18, 16],
    ]);
    expect(stream.stats).toEqual({ seen: 6, kept: 4, droppedTooLong: 2, droppedError: 0 });
    expect(() => seedPromptSource({ ...data, train4kFile: undefined, train16kFile: '' })).toThrow(/TRAIN_4K_FILE/);
    expect((await collect(multiFileSource([f4], { epochs: 2 }))).length).toBe(6);
  });
});

describe('the whole data side: seed files → prompt filter → fillBatch', () => {
  it('drops overlong prompts, fills the batch from the rest, rows remember their file', async () => {
    const { fillBatch } = await import('../src/sampling/fillBatch.js');
    const f4 = join(dir, 'p4k.jsonl');
    const f16 = join(dir, 'p16k.jsonl');
    const row = (t: string, gt: string) => JSON.stringify({ data_source: 'toy', prompt: msg(t), reward_model: { ground_truth: gt } });
    writeFileSync(f4, [row('a', '1'), row('a b c d e f', '2'), row('b', '3'), row('c', '4')].join('\n'));
    writeFileSync(f16, [row('d', '5'), row('e', '6'), row('f', '7')].join('\n'));
    const tokenizer = await loadChatTokenizer(dir);
    const data = { train4kFile: f4, train16kFile: f16, limits4k: { maxPromptLength: 8, maxResponseLength: 4 }, limits16k: { maxPromptLength: 16, maxResponseLength: 8 } };
    const stream = filterPromptStream<SourcedPrompt>(seedPromptSource(data, { order: 'round-robin' }), { tokenizer, maxPromptLength: (p) => p.maxPromptLength! });
    const res = await fillBatch<SourcedPrompt, string>({
      source: stream,
      trainBatchSize: 3,
      n: 2,
      genBatchSize: 2,
      maxNumGenBatches: 4,
      // Two responses per prompt: the ground truth (right) and "x" (wrong); 4K prompts with an odd answer score 0 twice.
      generate: (ps) => ps.map((p) => [`${p.row.reward_model!.ground_truth}`, 'x']),
      score: ({ prompt, response }) => (Number(prompt.row.reward_model!.ground_truth) % 2 === 1 && prompt.label === '4k' ? 0 : response === 'x' ? 0 : 1),
      overlong: { config: { maxResponseLength: 4, overlongBufferLen: 2, overlongPenaltyFactor: 1, enable: true }, responseLength: (r) => r.length },
    });
    expect(stream.dropped.map((d) => [d.item.label, d.item.index, d.reason])).toEqual([['4k', 1, 'too-long']]);
    expect(res.rows.length).toBe(6);
    // Round-robin order 4k:0, 16k:0, (4k:1 dropped), 16k:1, 4k:2, 16k:2, 4k:3; 4k:0 and 4k:2 are all-zero groups.
    expect([...new Set(res.rows.map((r) => `${r.prompt.label}:${r.prompt.index}`))]).toEqual(['16k:0', '16k:1', '16k:2']);
    expect(res.metrics['train/num_groups_dropped']).toBe(2);
    expect(res.rows.every((r) => r.response_length !== undefined && r.overlong === false)).toBe(true);
  });
});
