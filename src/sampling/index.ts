/**
 * The DAPO data side: the dynamic-sampling batch filler and its async driver, the overlong-prompt filter with
 * truncation, and verl-format prompt sources (parquet, JSONL, the seed's two-file 4K/16K set-up).
 *
 * @module
 */
export * from './dynamicBatchFiller.js';
export * from './fillBatch.js';
export * from './promptFilter.js';
export * from './sources.js';
