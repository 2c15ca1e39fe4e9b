// Shared Vitest settings: tests import workspace packages from their TypeScript sources
// (the `@ring-linear/source` export condition), so no build is needed to run them.
import { defineConfig } from 'vitest/config';

export const sourceConditions = ['@ring-linear/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: { conditions: sourceConditions },
  ssr: { resolve: { conditions: sourceConditions, externalConditions: sourceConditions } },
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
