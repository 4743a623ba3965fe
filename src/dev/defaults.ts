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
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(home, '.local', 'state');
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
  };
}

export type DevPaths = ReturnType<typeof devPaths>;
