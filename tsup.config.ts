import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // Node: the library (ESM + CJS) and the CLI.
    entry: { index: 'src/index.ts', cli: 'src/cli/main.ts', parallelWorker: 'src/losses/parallelWorker.ts' },
    format: ['esm', 'cjs'],
    dts: { entry: { index: 'src/index.ts' } },
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    external: ['webgpu'],
    splitting: false,
  },
  {
    // Browsers: everything that runs without Node, WebGPU through navigator.gpu.
    entry: { browser: 'src/browser.ts' },
    format: ['esm'],
    dts: { entry: { browser: 'src/browser.ts' } },
    sourcemap: true,
    clean: false,
    target: 'es2022',
    platform: 'browser',
    external: ['webgpu'],
    splitting: false,
  },
]);
