/**
 * Rewards: DAPO overlong shaping, verl-compatible reward hooks, the bridge server.
 *
 * @module
 */
export * from './overlong.js';
