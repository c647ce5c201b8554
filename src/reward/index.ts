/**
 * Rewards: DAPO overlong shaping, verl-compatible reward hooks, the bridge server.
 *
 * @module
 */
export * from './overlong.js';
export * from './hooks.js';
export * from './mathDapo.js';
export * from './registry.js';
export * from './overlongWrapper.js';
export * from './bridge/protocol.js';
export * from './bridge/server.js';
export * from './bridge/python.js';
