/**
 * lumirag-rl: verl's RL policy losses (DAPO, GSPO, SAPO and relatives), advantage estimators, KL and entropy for
 * JavaScript, with a float64 CPU reference and WGSL kernels on WebGPU.
 *
 * The Node entry: everything of the browser entry (`./browser.ts`), plus the parts that need Node — the reward
 * bridge server, the verl-format file sources and the tokenizer-file prompt filter.
 *
 * @packageDocumentation
 */
export * from './browser.js';
export * from './reward/bridge/server.js';
export * from './reward/bridge/python.js';
export * from './sampling/promptFilter.js';
export * from './sampling/sources.js';
export * from './losses/parallel.js';
