/** Config from the seed's environment variables (placeholder until implemented). @module */
export {};
