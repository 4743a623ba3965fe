import {
  createLocalJWKSet,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type FlattenedJWSInput,
  type CryptoKey,
  type KeyObject,
  type JWK,
} from 'jose';

export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | KeyObject>;

/** A source of an issuer's public keys. */
export interface KeySource {
  resolver: KeyResolver;
  /** True once keys have been loaded at least once. */
  ready(): boolean;
  /** Loads keys now (start-up warm-up). */
  refresh(): Promise<void>;
}

/** Only public signature keys may verify identity tokens: private parts and symmetric keys are dropped. */
function publicOnly(jwks: JSONWebKeySet): JWK[] {
  const keys: JWK[] = [];
  for (const k of jwks.keys ?? []) {
    if (typeof k !== 'object' || k === null) continue;
    if (k.kty !== 'RSA' && k.kty !== 'EC' && k.kty !== 'OKP') continue;
    if (k.use !== undefined && k.use !== 'sig') continue;
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k as JWK & Record<string, unknown>;
    keys.push(pub as JWK);
  }
  return keys;
}

/**
 * Resolves by `kid` when the keys have ids; keys without a `kid` (PEM files) are tried for tokens
 * whose `kid` matches none. jose tries each candidate when several match.
 */
export function localResolver(jwks: JSONWebKeySet): KeyResolver {
  const keys = publicOnly(jwks);
  const withKid = createLocalJWKSet({ keys: keys.filter((k) => k.kid !== undefined) });
  const kidless = keys.filter((k) => k.kid === undefined);
  const anonymous = kidless.length ? createLocalJWKSet({ keys: kidless }) : undefined;
  const kids = new Set(keys.map((k) => k.kid).filter((k) => k !== undefined));
  return async (header, token) => {
    if (header.kid !== undefined && kids.has(header.kid)) return withKid(header, token);
    if (anonymous) return anonymous({ ...header, kid: undefined }, token);
    return withKid(header, token);
  };
}

export function hasKid(jwks: JSONWebKeySet, kid: string | undefined): boolean {
  return publicOnly(jwks).some((k) => (kid === undefined ? true : k.kid === kid || k.kid === undefined));
}
