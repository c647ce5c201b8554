/**
 * sampling.
 *
 * @module
 */
export {};
