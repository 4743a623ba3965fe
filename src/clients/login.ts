import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { randomBytes } from 'node:crypto';

/** Docker `config.json` and containers `auth.json` share the `auths` shape. */
export interface AuthFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

export function authEntry(username: string, secret: string): { auth: string } {
  return { auth: Buffer.from(`${username}:${secret}`).toString('base64') };
}

/** Merges one registry's credentials into an existing document, keeping every other entry. */
export function mergeAuth(doc: AuthFile, registry: string, username: string, secret: string): AuthFile {
  const auths = { ...(doc.auths ?? {}) };
  auths[registry] = authEntry(username, secret);
  const next: AuthFile = { ...doc, auths };
  // A credHelpers entry for this registry would win over `auths`: ours must be used.
  if (next.credHelpers && typeof next.credHelpers === 'object' && registry in (next.credHelpers as object)) {
    const { [registry]: _dropped, ...rest } = next.credHelpers as Record<string, string>;
    next.credHelpers = rest;
  }
  return next;
}

function readJson(file: string): AuthFile {
  if (!existsSync(file)) return {};
  const text = readFileSync(file, 'utf8').trim();
  if (!text) return {};
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    return doc as AuthFile;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); refusing to overwrite it`);
  }
}

/** Writes atomically (temp file + rename in the same directory) with 0600 permissions. */
export function writeAtomic(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function loginToFile(file: string, registry: string, username: string, secret: string): void {
  writeAtomic(file, `${JSON.stringify(mergeAuth(readJson(file), registry, username, secret), null, 2)}\n`);
}

export function defaultDockerConfig(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

export function defaultAuthFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'containers', 'auth.json') : join(homedir(), '.config', 'containers', 'auth.json');
}

/** A `kubernetes.io/dockerconfigjson` Secret manifest for one registry. */
export function dockerConfigSecret(name: string, namespace: string, registry: string, username: string, secret: string, labels: Record<string, string> = {}) {
  const config = { auths: { [registry]: authEntry(username, secret) } };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name, namespace, ...(Object.keys(labels).length ? { labels } : {}) },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  };
}
