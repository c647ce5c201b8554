/**
 * The browser entry of lumirag-rl (the `browser` condition of the package's exports): everything that runs
 * without Node — the losses, aggregation, advantages, KL, entropy, the engine on `navigator.gpu`, reward hooks,
 * the overlong shaper and the dynamic-sampling filler. Left out: the bridge server, the file sources and the
 * tokenizer-file prompt filter, which need Node's `http` and `fs`.
 *
 * The Node entry (`./index.ts`) re-exports all of this and adds the Node-only modules.
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
export * from './actor/index.js';
export * from './gpu/index.js';
export * from './reward/overlong.js';
export * from './reward/hooks.js';
export * from './reward/mathDapo.js';
export * from './reward/registry.js';
export * from './reward/overlongWrapper.js';
export * from './reward/bridge/protocol.js';
export * from './sampling/dynamicBatchFiller.js';
export * from './sampling/fillBatch.js';
