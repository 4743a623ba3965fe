import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { TestIssuer } from '../../test/support/issuer.js';
import { freePort, waitForHttp } from '../../test/support/net.js';
import { fetchRegistryToken } from '../../test/support/token.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface BenchProxy {
  url: string;
  pid: number;
  logFile: string;
  /** Identity token of the bench issuer (valid 1 h), `n` distinct ones via `seq`. */
  identity(seq?: number): Promise<string>;
  /** A registry token of the proxy for these scopes. */
  registryToken(scopes: string[]): Promise<string>;
  rss(): number;
  peakRss(): number;
  stop(): Promise<void>;
}

function status(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The built proxy (`bin/registry-auth-proxy.js`, what a user runs) as a child process, configured as
 * in production — a signing key file, a static-key issuer, a policy, the default log level (info,
 * one access line per request) written to a file — except that /token rate limits are off, since
 * the benchmark measures capacity from a single client address.
 */
export async function startBenchProxy(upstream: string, extraEnv: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<BenchProxy> {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  const dir = mkdtempSync(join(tmpdir(), 'rap-bench-proxy-'));
  const issuer = await TestIssuer.create({ issuer: 'https://bench.test', audience: 'registry.bench', kid: 'bench', jwkAlg: true });
  issuer.writeJwks(join(dir, 'jwks.json'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'rules:\n  - name: bench\n    actions: [pull, push]\n    when: identity.issuerName == "bench" && request.repository.startsWith("bench/")\n',
  );
  const signing = await generateKeyPair('ES256', { extractable: true });
  const { createPrivateKey } = await import('node:crypto');
  const pem = createPrivateKey({ key: (await exportJWK(signing.privateKey)) as never, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(join(dir, 'signing.pem'), pem, { mode: 0o600 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'config.yaml'),
    stringify({
      listen: `127.0.0.1:${port}`,
      publicURL: url,
      service: 'registry.bench',
      upstream: { url: upstream },
      policies: join(dir, 'policy.yaml'),
      tokens: { signingKeyFile: join(dir, 'signing.pem') },
      issuers: [{ name: 'bench', issuer: issuer.issuer, jwksFile: join(dir, 'jwks.json') }],
      limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 } },
    }),
  );
  const logFile = join(dir, 'proxy.log');
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin/registry-auth-proxy.js'), 'serve', '--config', join(dir, 'config.yaml')], {
    cwd: dir,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...extraEnv },
  });
  try {
    await waitForHttp(`${url}/healthz`, 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`proxy did not start: ${(err as Error).message}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const identity = (seq = 0) => issuer.mint({ seq, sub: `bench-${seq}` }, { now, ttl: 3600 });
  return {
    url,
    pid: child.pid!,
    logFile,
    identity,
    registryToken: async (scopes) => fetchRegistryToken(url, await identity(), scopes, { service: 'registry.bench', user: 'bench' }),
    rss: () => status(child.pid!, 'VmRSS'),
    peakRss: () => status(child.pid!, 'VmHWM'),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
