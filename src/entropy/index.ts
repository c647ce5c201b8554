/**
 * entropy.
 *
 * @module
 */
export {};
