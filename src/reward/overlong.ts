/** DAPO overlong reward shaping (placeholder until implemented). @module */
export {};
