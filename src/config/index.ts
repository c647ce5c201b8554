/**
 * Configuration: the policy-loss options with verl's defaults, and converters from verl's keys.
 *
 * @module
 */
export * from './policyLoss.js';
export * from './verl.js';
export * from './env.js';
export * from './presets.js';
