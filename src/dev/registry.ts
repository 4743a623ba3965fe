import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import bcrypt from 'bcryptjs';
import { stringify as toYaml } from 'yaml';
import type { UpstreamConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { DevPaths } from './defaults.js';
import { DevSetupError, findOnPath, resolveRegistryBinary } from './registry-binary.js';

/** The embedded registry's one user: the proxy. */
const REGISTRY_USER = 'registry-auth-proxy';
/** The header the embedded registry answers with, carrying this run's nonce: proof that the registry on the port is the one started. */
const IDENTITY_HEADER = 'x-rap-dev';

/**
 * Distribution's config for the embedded upstream. Pure. Basic auth with an htpasswd file whose one
 * user is the proxy (any local user can reach a loopback port: without it they would bypass the
 * proxy), every answer carrying `nonce` in IDENTITY_HEADER, deletes enabled (so `skopeo delete`
 * through the proxy does something), quiet logs: the proxy's own log says what happened.
 */
export function registryConfig(opts: {
  port: number;
  dataDir: string;
  secret: string;
  htpasswd: string;
  nonce: string;
}): string {
  return toYaml({
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: opts.dataDir },
      delete: { enabled: true },
    },
    auth: { htpasswd: { realm: 'registry-auth-proxy --dev', path: opts.htpasswd } },
    http: { addr: `127.0.0.1:${opts.port}`, secret: opts.secret, headers: { [IDENTITY_HEADER]: [opts.nonce] } },
  });
}

/**
 * The htpasswd line of `user` with `password` (bcrypt: all Distribution reads). Cost 4, the least
 * bcrypt allows, is enough for a password of 256 random bits, and the registry checks it on every
 * request.
 */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:${bcrypt.hashSync(password, 4)}\n`;
}

/**
 * What an answer on the registry's port says about who is listening. Pure. Ours carries this run's
 * nonce (and, asked without credentials, is a 401): anything else is another process on the port.
 */
export function registryIdentity(status: number, nonceHeader: string | null, nonce: string): 'ours' | 'other' {
  return status === 401 && nonceHeader === nonce ? 'ours' : 'other';
}

export interface EmbeddedRegistry {
  url: string;
  pid: number;
  /** The proxy's credentials for it: upstream.auth, and the same as an Authorization header. */
  auth: Extract<UpstreamConfig['auth'], { type: 'basic' }>;
  authorization: string;
  /** Resolves when the registry process ends, however that happens. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines the registry wrote (its log file), for error messages. */
  logTail(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * This run's credentials: a random password in a file only the proxy reads, its bcrypt hash in the
 * registry's htpasswd (both 0600), and the proxy's upstream.auth and Authorization header for them.
 */
function newCredentials(paths: DevPaths): Pick<EmbeddedRegistry, 'auth' | 'authorization'> {
  const password = randomBytes(32).toString('base64url');
  writePrivate(paths.registryPassword, password);
  writePrivate(paths.registryHtpasswd, htpasswdLine(REGISTRY_USER, password));
  const auth = { type: 'basic' as const, username: REGISTRY_USER, passwordFile: paths.registryPassword };
  return { auth, authorization: `Basic ${Buffer.from(`${REGISTRY_USER}:${password}`).toString('base64')}` };
}

/** SIGTERM, then SIGKILL after 10 s; resolves once it has exited (at once if it already had). */
async function stopRegistry(child: ChildProcess, exited: EmbeddedRegistry['exited']): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts Distribution on a free loopback port with storage in the state directory and waits until
 * it answers `GET /v2/` with this run's nonce (the port is found free, then released: another
 * process may take it first, and must not be trusted with the proxy's credentials or the pushes).
 * Its credentials are new each run (newCredentials). On Linux it runs under `setpriv --pdeathsig`,
 * so the kernel stops it if the proxy dies in any way (even SIGKILL): an orphan would keep the port
 * and the storage busy.
 */
export async function startEmbeddedRegistry(
  paths: DevPaths,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<EmbeddedRegistry> {
  const bin = resolveRegistryBinary(logger, env);
  mkdirSync(paths.registryData, { recursive: true, mode: 0o700 });
  const setpriv = process.platform === 'linux' ? findOnPath(['setpriv'], env) : undefined;
  const { auth, authorization } = newCredentials(paths);
  // The port is free when we look; another process may take it before the registry binds. Retry a few times.
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const nonce = randomBytes(16).toString('hex');
    const config = registryConfig({
      port,
      dataDir: paths.registryData,
      secret: randomBytes(16).toString('hex'),
      htpasswd: paths.registryHtpasswd,
      nonce,
    });
    writePrivate(paths.registryConfig, config);
    const { child, exited } = spawnRegistry(
      setpriv ? [setpriv, '--pdeathsig', 'TERM', '--', bin] : [bin],
      paths,
      env,
      (e) => (lastError = e),
    );
    const url = `http://127.0.0.1:${port}`;
    const up = await waitUntilServing(url, nonce, exited, 15_000);
    if (up) {
      logger.info(
        { registryPid: child.pid, url, data: paths.registryData, log: paths.registryLog },
        'embedded registry started',
      );
      return {
        url,
        pid: child.pid!,
        auth,
        authorization,
        exited,
        logTail: () => tail(paths.registryLog),
        stop: () => stopRegistry(child, exited),
      };
    }
    child.kill('SIGKILL');
    await exited;
    lastError = tail(paths.registryLog) || lastError;
    if (!/address already in use/.test(lastError)) break;
    logger.warn({ port }, 'the embedded registry lost its port to another process: trying another');
  }
  throw new DevSetupError(
    `the embedded registry (${bin}) did not start:\n${lastError}\n(config: ${paths.registryConfig})`,
  );
}

/**
 * Starts the registry detached, its output in its log file. It must not keep the proxy alive (a
 * start-up error after this point just returns), and whatever ends this process normally, an
 * uncaught exception included, ends the registry too.
 */
function spawnRegistry(command: string[], paths: DevPaths, env: NodeJS.ProcessEnv, onError: (message: string) => void) {
  const logFd = openSync(paths.registryLog, 'w', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(command[0]!, [...command.slice(1), 'serve', paths.registryConfig], {
      stdio: ['ignore', logFd, logFd],
      detached: true,
      env: registryEnv(env),
    });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      onError(err.message);
      resolve({ code: null, signal: null });
    });
  });
  child.unref();
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));
  return { child, exited };
}

/**
 * The registry's environment: Distribution reads every `REGISTRY_*` variable as a config override
 * (`REGISTRY_AUTH_FILE`, which podman users set for their credentials, becomes `auth.file` and the
 * registry refuses to start), so none pass. Pure.
 */
export function registryEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('REGISTRY_')));
}

/** Creates or replaces `file` readable by its owner only (a file left by an earlier run keeps no other mode). */
function writePrivate(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * Polls `GET /v2/`, without credentials, until the registry we started answers (true), or the
 * process exits or the deadline passes (false). Another process answering is not ours: our
 * registry then fails to bind and exits.
 */
async function waitUntilServing(
  url: string,
  nonce: string,
  exited: Promise<unknown>,
  timeoutMs: number,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (!gone && Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (registryIdentity(res.status, res.headers.get(IDENTITY_HEADER), nonce) === 'ours') return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
