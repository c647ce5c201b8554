/**
 * gpu.
 *
 * @module
 */
export {};
