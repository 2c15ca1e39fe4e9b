import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/bin.ts', 'src/demo.ts'],
  format: ['esm'],
  dts: { entry: ['src/index.ts', 'src/demo.ts'] },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  platform: 'node',
  // Workspace packages stay imports (the optional GPU backends are loaded only when asked for).
  external: [/^@ring-linear\//],
});
