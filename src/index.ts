/**
 * lumirag-rl: verl's RL policy losses (DAPO, GSPO, SAPO and relatives), advantage estimators, KL and entropy for
 * JavaScript, with a float64 CPU reference and WGSL kernels on WebGPU.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './matrix.js';
export * from './random.js';
export * from './aggregate.js';
export * from './config/index.js';
export * from './losses/index.js';
export * from './advantages/index.js';
export * from './kl/index.js';
export * from './entropy/index.js';
export * from './reward/index.js';
export * from './sampling/index.js';
export * from './actor/index.js';
export * from './gpu/index.js';
