import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../support/net.js';

/**
 * Start-up RSS is measured, and the OpenTelemetry SDK and exporter weigh megabytes: a proxy
 * without `tracing:` must not load them, not at start-up and not while serving. The built proxy
 * runs in a child of its own (this test's process has its own modules loaded) and reports which
 * @opentelemetry modules are in the CommonJS cache (the packages are CommonJS: an ESM import of
 * them lands there too) after serving /token and /v2/. `@opentelemetry/api` itself is left out:
 * prom-client loads it (for exemplars) in every proxy, as it did before tracing existed.
 */
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const SCRIPT = `
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
const { buildConfig } = await import(process.env.ROOT + '/dist/config/load.js');
const { startRuntime } = await import(process.env.ROOT + '/dist/server/runtime.js');
const { createLogger } = await import(process.env.ROOT + '/dist/log.js');
const config = buildConfig(JSON.parse(process.env.RAW), {}, undefined, {});
const quiet = new Writable({ write: (_c, _e, cb) => cb() });
const runtime = await startRuntime(config, createLogger('info', quiet));
for (const path of ['/v2/', '/v2/a/b/manifests/latest', '/token?service=registry.test&scope=repository:a/b:pull'])
  await (await fetch(runtime.url + path)).arrayBuffer();
const loaded = Object.keys(createRequire(process.env.ROOT + '/').cache).filter((k) => k.includes('@opentelemetry/') && !k.includes('@opentelemetry/api/'));
await runtime.stop(100);
process.stdout.write(JSON.stringify(loaded));
`;

async function openTelemetryModulesLoaded(extra: Record<string, unknown>): Promise<string[]> {
  if (!existsSync(join(ROOT, 'dist/server/runtime.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  const dir = mkdtempSync(join(tmpdir(), 'rap-lazy-'));
  const script = join(dir, 'probe.mjs');
  writeFileSync(script, SCRIPT);
  const port = await freePort();
  const raw = {
    listen: `127.0.0.1:${port}`,
    publicURL: `http://127.0.0.1:${port}`,
    service: 'registry.test',
    upstream: { url: `http://127.0.0.1:${await freePort()}` },
    ...extra,
  };
  const { stdout } = await run(process.execPath, [script], {
    env: { ...process.env, ROOT, RAW: JSON.stringify(raw) },
    timeout: 30_000,
  });
  return JSON.parse(stdout) as string[];
}

describe('the OpenTelemetry SDK is loaded only when tracing is configured', () => {
  it('without tracing: no OpenTelemetry SDK module after serving /token and /v2/', async () => {
    expect(await openTelemetryModulesLoaded({})).toEqual([]);
  });

  it('with tracing: the SDK and the exporter are loaded (the probe sees them)', async () => {
    const loaded = await openTelemetryModulesLoaded({
      tracing: { otlpEndpoint: `http://127.0.0.1:${await freePort()}`, timeout: '100ms' },
    });
    expect(loaded.some((m) => m.includes('@opentelemetry/sdk-trace'))).toBe(true);
    expect(loaded.some((m) => m.includes('@opentelemetry/exporter-trace-otlp-http'))).toBe(true);
  });
});
