import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { formatSpan, kubernetesAPIAudience } from './token-source.js';

export { formatSpan };

/** Docker `config.json` and containers `auth.json` share the `auths` shape. */
interface AuthFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

function authEntry(username: string, secret: string): { auth: string } {
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
function writeAtomic(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/**
 * Whether a Docker `config.json` holds `docker login`'s own login for `registry`: an `identitytoken`
 * (our refresh token). containers/common (podman, skopeo, buildah 4.x) reads that file too and its
 * `login` then refuses with "currently logged in, auth file contains an Identity token" — unless
 * its own auth file has an entry for the registry, which it reads first. Pure.
 */
export function dockerRefreshLogin(doc: AuthFile, registry: string): boolean {
  const auths = doc.auths ?? {};
  return [registry, `https://${registry}`, `http://${registry}`].some(
    (key) => typeof auths[key]?.identitytoken === 'string' && auths[key].identitytoken !== '',
  );
}

/** dockerRefreshLogin for a file; a missing or unreadable one holds none. */
export function dockerRefreshLoginIn(file: string, registry: string): boolean {
  try {
    return dockerRefreshLogin(readJson(file), registry);
  } catch {
    return false;
  }
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
export function dockerConfigSecret(
  name: string,
  namespace: string,
  registry: string,
  username: string,
  secret: string,
  labels: Record<string, string> = {},
) {
  const config = { auths: { [registry]: authEntry(username, secret) } };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name, namespace, ...(Object.keys(labels).length ? { labels } : {}) },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  };
}

/** What `login` learned about the token it is about to write: a refusal, or its expiry and warnings. */
type TokenCheck =
  { ok: false; problem: string } | { ok: true; expiresAt: Date; issuer?: string; subject?: string; warnings: string[] };

/**
 * Whether `token` is worth writing for a registry login. Pure (decodes, never verifies: the proxy
 * does that). Refused: anything that is not a JWT (three base64url parts, JSON header and payload),
 * an expired token or one without `exp` (the proxy refuses both), and a Kubernetes API-server
 * credential (which must never reach a registry).
 */
export function checkLoginToken(token: string, nowSeconds: number): TokenCheck {
  let claims: Record<string, unknown>;
  try {
    if (token.split('.').length !== 3) throw new Error('not three dot-separated parts');
    decodeProtectedHeader(token);
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch (err) {
    return {
      ok: false,
      problem: `the token is not a JWT (${(err as Error).message}): give the identity token itself (header.payload.signature), not a registry password or a file of something else`,
    };
  }
  const api = kubernetesAPIAudience(token);
  if (api)
    return {
      ok: false,
      problem: `refusing a Kubernetes API-server credential: ${api}. Use a projected service-account token with the registry's audience`,
    };
  const warnings: string[] = [];
  const exp = claims.exp;
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp)))
    return { ok: false, problem: `the token's exp is not a number (${JSON.stringify(exp)})` };
  if (exp === undefined)
    return {
      ok: false,
      problem: 'the token has no exp (expiry) claim: registry-auth-proxy refuses identity tokens that never expire',
    };
  if (exp <= nowSeconds) {
    return {
      ok: false,
      problem: `the token expired at ${new Date(exp * 1000).toISOString()} (${formatSpan(nowSeconds - exp)} ago): get a fresh identity token`,
    };
  }
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds + 60)
    warnings.push(`the token is not valid before ${new Date(claims.nbf * 1000).toISOString()}`);
  return {
    ok: true,
    expiresAt: new Date(exp * 1000),
    ...(typeof claims.iss === 'string' ? { issuer: claims.iss } : {}),
    ...(typeof claims.sub === 'string' ? { subject: claims.sub } : {}),
    warnings,
  };
}
