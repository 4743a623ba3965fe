import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real registries and clients; two cores, so keep parallelism modest.
    maxWorkers: 2,
    projects: [
      // Pure code, no tools, no root: `npm run test:unit` anywhere.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      // Real registries and clients: the set-up checks the tools are there (`.ci/run` installs them).
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**'],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
