/** The seed's three strategy presets (placeholder until implemented). @module */
export {};
