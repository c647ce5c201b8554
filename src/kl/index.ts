/**
 * kl.
 *
 * @module
 */
export {};
