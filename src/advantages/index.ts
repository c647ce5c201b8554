/**
 * advantages.
 *
 * @module
 */
export {};
