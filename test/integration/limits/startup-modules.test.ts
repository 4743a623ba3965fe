import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * What limits cost at start-up (issue 23): rate-limiter-flexible is loaded only when limits.rules
 * are configured, ioredis only for a Redis store — a memory or cluster store never pays its RSS
 * (the 1 GiB streaming test's bound). A fresh `node` on the built proxy builds the limiter as
 * `serve` does and lists the CommonJS modules it loaded.
 */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const PROBE = `
import { createRequire } from 'node:module';
const { buildConfig } = await import('./dist/config/load.js');
const { createLimits } = await import('./dist/server/limits.js');
const pino = (await import('pino')).default;
const { Registry } = await import('prom-client');
const [rules, store] = JSON.parse(process.argv[1]);
const config = buildConfig({ limits: { rules, store } }, {}, undefined);
const limits = await createLimits(config, pino({ level: 'silent' }), new Registry());
const loaded = Object.keys(createRequire(process.cwd() + '/').cache);
const has = (name) => loaded.some((k) => k.includes('/node_modules/' + name + '/'));
console.log(JSON.stringify({ ioredis: has('ioredis'), rateLimiterFlexible: has('rate-limiter-flexible') }));
await limits?.close();
`;

async function loadedBy(rules: unknown[], store: Record<string, unknown>) {
  if (!existsSync(`${ROOT}/dist/server/limits.js`)) throw new Error('dist/ is missing: run `npm run build` first');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', PROBE, JSON.stringify([rules, store])],
    { cwd: ROOT, timeout: 60_000 },
  );
  return JSON.parse(stdout) as { ioredis: boolean; rateLimiterFlexible: boolean };
}

const RULES = [{ name: 'per-identity', rate: { per: '1m', count: 10 } }];

describe('modules loaded at start-up by limits', () => {
  it('none without rules; rate-limiter-flexible alone for a memory or cluster store; ioredis only for Redis', async () => {
    expect(await loadedBy([], {})).toEqual({ ioredis: false, rateLimiterFlexible: false });
    expect(await loadedBy(RULES, {})).toEqual({ ioredis: false, rateLimiterFlexible: true });
    expect(await loadedBy(RULES, { type: 'cluster' })).toEqual({ ioredis: false, rateLimiterFlexible: true });
    // nothing listens on port 9: the client is created (and closed) all the same
    expect(await loadedBy(RULES, { url: 'redis://127.0.0.1:9' })).toEqual({ ioredis: true, rateLimiterFlexible: true });
  });
});
