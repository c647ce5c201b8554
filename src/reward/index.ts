/**
 * reward.
 *
 * @module
 */
export {};
