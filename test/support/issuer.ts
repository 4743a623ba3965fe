import { writeFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/**
 * The identity issuer of tests and the benchmark: one ES256 key, its JWKS (for `jwksFile`, so the
 * proxy needs no network) and minting. Every token carries iss, aud, iat and exp; the issuer's
 * `claims` and then the caller's are laid over them, so a test can override any of them — a wrong
 * `aud`, an `exp` in the past, another `iss` for the same key.
 */
interface TestIssuerOptions {
  issuer: string;
  audience: string;
  kid: string;
  /** Claims every token carries unless the call overrides them, e.g. `{ sub: 'job-42' }`. */
  claims?: Record<string, unknown>;
  /** Put `alg: ES256` in the JWK, as issuers that pin a key to one algorithm do. */
  jwkAlg?: boolean;
}

interface MintOptions {
  /** Lifetime in seconds; negative for a token that has already expired. Default 600. */
  ttl?: number;
  /** `iat`, in seconds since the epoch; default now. */
  now?: number;
}

export class TestIssuer {
  /** The public key as JWKS text. */
  readonly jwks: string;

  private constructor(
    private readonly options: TestIssuerOptions,
    readonly privateKey: CryptoKey,
    publicJwk: JWK,
  ) {
    const jwk = { ...publicJwk, kid: options.kid, use: 'sig', ...(options.jwkAlg ? { alg: 'ES256' } : {}) };
    this.jwks = JSON.stringify({ keys: [jwk] });
  }

  static async create(options: TestIssuerOptions): Promise<TestIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    return new TestIssuer(options, privateKey, await exportJWK(publicKey));
  }

  get issuer(): string {
    return this.options.issuer;
  }

  /** Writes the JWKS to `file` and returns the path (for an issuer's `jwksFile`). */
  writeJwks(file: string): string {
    writeFileSync(file, this.jwks);
    return file;
  }

  mint(claims: Record<string, unknown> = {}, opts: MintOptions = {}): Promise<string> {
    const now = opts.now ?? Math.floor(Date.now() / 1000);
    const { issuer, audience, kid } = this.options;
    const payload = {
      iss: issuer,
      aud: audience,
      iat: now,
      exp: now + (opts.ttl ?? 600),
      ...this.options.claims,
      ...claims,
    };
    return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(this.privateKey);
  }
}

/** `iss` of the issuer named `ci` that every in-process test proxy trusts. */
export const TEST_ISSUER = 'https://ci.test';

let ci: Promise<TestIssuer> | undefined;

/** The `ci` issuer, one key per test process (the attack suite signs hand-built payloads with it). */
export function ciIssuer(): Promise<TestIssuer> {
  ci ??= TestIssuer.create({
    issuer: TEST_ISSUER,
    audience: 'registry.test',
    kid: 'ci-1',
    claims: { sub: 'job-42', team: 'team-a' },
  });
  return ci;
}
