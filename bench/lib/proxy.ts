import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { TestIssuer } from '../../test/support/issuer.js';
import { freePort, waitForHttp } from '../../test/support/net.js';
import { cmdline, environ, listenerPid } from '../../test/support/proc.js';
import { fetchRegistryToken } from '../../test/support/token.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface BenchProxy {
  url: string;
  pid: number;
  logFile: string;
  /** The bench issuer's JWKS (for the /token floor). */
  jwks: string;
  /** How the serving process really runs: its node flags and malloc settings, from /proc. */
  startedAs: string;
  /** Identity token of the bench issuer (valid 1 h), `n` distinct ones via `seq`. */
  identity(seq?: number): Promise<string>;
  /** A registry token of the proxy for these scopes. */
  registryToken(scopes: string[]): Promise<string>;
  stop(): Promise<void>;
}

interface BenchProxyOptions {
  env?: NodeJS.ProcessEnv;
  /** Extra node flags (e.g. --cpu-prof); none by default: the proxy starts as a user starts it. */
  nodeArgs?: string[];
  /** The `workers` config key; left out of the config when undefined (a build without the key refuses it). */
  workers?: number;
  /** More policy rules (YAML list items, indented as under `rules:`), e.g. a request-time rule. */
  extraRules?: string;
  /** More config keys (e.g. `trust`), merged over the bench's. */
  config?: Record<string, unknown>;
}

/** The serving process's node flags before the script, and its MALLOC_/GLIBC_ settings, as /proc has them. */
function startedAs(port: number): string {
  const pid = listenerPid(port);
  const argv = cmdline(pid);
  const flags = argv.slice(
    1,
    argv.findIndex((a) => a.endsWith('registry-auth-proxy.js')),
  );
  const env = Object.entries(environ(pid)).filter(([k]) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES');
  return [...env.map(([k, v]) => `${k}=${v}`), 'node', ...flags].join(' ');
}

/** The build refused the `workers` config key: it predates the key. */
export class WorkersUnsupported extends Error {}

/** Resolves when the URL answers, rejects as soon as the child exits (a refused config exits at once). */
async function waitForStart(child: ChildProcess, url: string): Promise<void> {
  let onExit: (code: number | null) => void = () => undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = (code) => reject(new Error(`proxy exited with code ${code}`));
    child.once('exit', onExit);
  });
  try {
    await Promise.race([waitForHttp(url, 20_000), exited]);
  } finally {
    child.off('exit', onExit);
    exited.catch(() => undefined);
  }
}

/**
 * The built proxy (`bin/registry-auth-proxy.js`, what a user runs) as a child process, configured as
 * in production — a signing key file, a static-key issuer, a policy, the default log level (info,
 * one access line per request) written to a file — except that /token rate limits are off, since
 * the benchmark measures capacity from a single client address.
 */
export async function startBenchProxy(upstream: string, opts: BenchProxyOptions = {}): Promise<BenchProxy> {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  const dir = mkdtempSync(join(tmpdir(), 'rap-bench-proxy-'));
  const issuer = await TestIssuer.create({
    issuer: 'https://bench.test',
    audience: 'registry.bench',
    kid: 'bench',
    jwkAlg: true,
  });
  issuer.writeJwks(join(dir, 'jwks.json'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'rules:\n  - name: bench\n    actions: [pull, push]\n    when: identity.issuerName == "bench" && request.repository.startsWith("bench/")\n' +
      (opts.extraRules ?? ''),
  );
  const signing = await generateKeyPair('ES256', { extractable: true });
  const { createPrivateKey } = await import('node:crypto');
  const pem = createPrivateKey({ key: (await exportJWK(signing.privateKey)) as never, format: 'jwk' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
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
      ...(opts.workers === undefined ? {} : { workers: opts.workers }),
      ...opts.config,
    }),
  );
  const logFile = join(dir, 'proxy.log');
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(
    process.execPath,
    // As a user starts it: no flags or environment of the bench's (the CLI applies its own settings).
    [...(opts.nodeArgs ?? []), join(ROOT, 'bin/registry-auth-proxy.js'), 'serve', '--config', join(dir, 'config.yaml')],
    { cwd: dir, stdio: ['ignore', out, out], env: { ...process.env, ...opts.env } },
  );
  try {
    await waitForStart(child, `${url}/healthz`);
  } catch (err) {
    child.kill('SIGKILL');
    const output = readFileSync(logFile, 'utf8').slice(-3000);
    rmSync(dir, { recursive: true, force: true });
    if (opts.workers !== undefined && /\bworkers: unknown key/.test(output))
      throw new WorkersUnsupported(output.trim());
    throw new Error(`proxy did not start: ${(err as Error).message}\n${output}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const identity = (seq = 0) => issuer.mint({ seq, sub: `bench-${seq}` }, { now, ttl: 3600 });
  return {
    url,
    pid: child.pid!,
    logFile,
    jwks: issuer.jwks,
    startedAs: startedAs(port),
    identity,
    registryToken: async (scopes) =>
      fetchRegistryToken(url, await identity(), scopes, { service: 'registry.bench', user: 'bench' }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
