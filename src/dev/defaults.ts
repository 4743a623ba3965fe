import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Name of the embedded issuer (what policies see as identity.issuerName). */
export const DEV_ISSUER_NAME = 'dev';

/**
 * Where `--dev` keeps what must outlive one run: the embedded registry's storage, the dev issuer's
 * key and JWKS (so `verify --dev` and earlier tokens keep working), the proxy's signing key (so a
 * stored `docker login` survives a restart) and the token file. Pure: flag > RAP_DEV_STATE_DIR >
 * $XDG_STATE_HOME/registry-auth-proxy/dev > ~/.local/state/registry-auth-proxy/dev.
 */
export function devStateDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  if (flag) return resolve(flag);
  if (env.RAP_DEV_STATE_DIR) return resolve(env.RAP_DEV_STATE_DIR);
  const base =
    env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(home, '.local', 'state');
  return join(base, 'registry-auth-proxy', 'dev');
}

/** The files in the state directory. */
export function devPaths(stateDir: string) {
  return {
    stateDir,
    token: join(stateDir, 'token'),
    issuerKey: join(stateDir, 'issuer-key.json'),
    jwks: join(stateDir, 'jwks.json'),
    /** A config file holding only the dev issuer: `verify --dev` (or `verify --config` it) checks dev tokens. */
    issuerConfig: join(stateDir, 'issuer.yaml'),
    signingKey: join(stateDir, 'signing-key.pem'),
    registryConfig: join(stateDir, 'registry.yml'),
    registryData: join(stateDir, 'registry'),
    registryLog: join(stateDir, 'registry.log'),
    /** The embedded registry's only user, as Distribution reads it (bcrypt), and its password, which only the proxy reads. */
    registryHtpasswd: join(stateDir, 'registry.htpasswd'),
    registryPassword: join(stateDir, 'registry-password'),
  };
}

/**
 * Why `--dev` must not use this state directory, or undefined. Pure. It holds keys, tokens and the
 * embedded registry's credentials: another user who owns it, or anyone who may write to it, could
 * read them or swap them (a key of theirs, a registry config of theirs).
 */
export function stateDirProblem(
  dir: string,
  st: { uid: number; mode: number; isDirectory: boolean },
  myUid: number,
): string | undefined {
  if (!st.isDirectory)
    return `the state directory ${dir} is not a directory: remove it or choose another with --state-dir`;
  if (st.uid !== myUid)
    return `the state directory ${dir} belongs to uid ${st.uid}, not to you (uid ${myUid}): use a directory of your own (--state-dir)`;
  if (st.mode & 0o022) {
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    return `the state directory ${dir} is writable by others (mode ${mode}): chmod 700 ${dir}`;
  }
  return undefined;
}

export type DevPaths = ReturnType<typeof devPaths>;
