import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, symlinkSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { generatePrivateKeyPem, loadKeyRing, signingKeyFromPem } from '../../../src/token/signing-keys.js';
import { issueRegistryToken, issueRefreshToken } from '../../../src/token/issue.js';
import { createRegistryTokenVerifier, verifyRefreshToken } from '../../../src/token/verify.js';
import { RegistryTokenError } from '../../../src/token/types.js';
import { selfSignedCertificateForKey } from '../../../src/pki/certificates.js';
import { silentLogger } from '../../../src/log.js';
import type { Identity } from '../../../src/identity/types.js';

const id: Identity = {
  issuerName: 'cluster',
  issuer: 'https://k',
  subject: 'system:serviceaccount:ns:sa',
  claims: { sub: 'system:serviceaccount:ns:sa' },
  expiresAt: Math.floor(Date.now() / 1000) + 600,
};
const opts = { issuer: 'https://proxy.test', service: 'registry.test', ttl: 300 };
const tokens = { algorithm: 'ES256' as const, ttl: 300 };

// The libtrust key ID, checked against openssl, is in test/integration/token/libtrust-kid.test.ts (a tool).
describe('signing keys', () => {
  it('a key that cannot be read is a config error naming the file the setting came from', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'rap-keys-')), 'absent.pem');
    const load = (configFile?: string) =>
      loadKeyRing({ ...tokens, signingKeyFile: missing }, silentLogger(), { configFile });
    await expect(load('/etc/registry-auth-proxy/config.yaml')).rejects.toThrow(
      /^\/etc\/registry-auth-proxy\/config\.yaml: tokens\.signingKeyFile: .*absent\.pem: signing key file does not exist$/,
    );
    await expect(load()).rejects.toThrow(/^<flags>: tokens\.signingKeyFile: /);
  });

  it('publishes a JWKS of public keys only', async () => {
    const ring = await loadKeyRing(tokens, silentLogger());
    const jwks = ring.jwks();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: ring.current().kid });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(ring.ephemeral).toBe(true);
  });

  it('adds x5c from a matching certificate and rejects a mismatched one', async () => {
    const pem = generatePrivateKeyPem('ES256');
    const cert = await selfSignedCertificateForKey(pem, 'signer');
    const key = signingKeyFromPem(pem, 'k.pem', cert);
    expect(key.x5c).toHaveLength(1);
    const other = await selfSignedCertificateForKey(generatePrivateKeyPem('ES256'), 'other');
    expect(() => signingKeyFromPem(pem, 'k.pem', other)).toThrow(/does not match/);
    const token = (
      await issueRegistryToken(
        {
          current: () => key,
          all: () => [key],
          byKid: () => key,
          jwks: () => ({ keys: [] }),
          ephemeral: false,
          close() {},
        },
        id,
        [],
        opts,
      )
    ).token;
    expect(decodeProtectedHeader(token).x5c).toEqual(key.x5c);
  });

  it('rejects weak or unsupported keys', () => {
    expect(() => signingKeyFromPem('not a key', 'x.pem')).toThrow(/not a PEM private key/);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    expect(() => signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'p384.pem')).toThrow(
      /P-256/,
    );
  });

  it('rotates through a key directory: current signs, all verify, reload on change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-ring-'));
    writeFileSync(join(dir, 'a.pem'), generatePrivateKeyPem('ES256'));
    writeFileSync(join(dir, 'b.pem'), generatePrivateKeyPem('RS256'));
    symlinkSync('a.pem', join(dir, 'current.pem'));
    const ring = await loadKeyRing({ ...tokens, signingKeyFile: dir }, silentLogger());
    expect(ring.all()).toHaveLength(2);
    const oldKid = ring.current().kid;
    expect(ring.current().alg).toBe('ES256');
    const verifier = createRegistryTokenVerifier(ring, opts);
    const before = (await issueRegistryToken(ring, id, [], opts)).token;
    // switch current to b
    rmSync(join(dir, 'current.pem'));
    symlinkSync('b.pem', join(dir, 'current.tmp'));
    renameSync(join(dir, 'current.tmp'), join(dir, 'current.pem'));
    const deadline = Date.now() + 5000;
    while (ring.current().kid === oldKid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(ring.current().alg).toBe('RS256');
    const after = (await issueRegistryToken(ring, id, [], opts)).token;
    expect(decodeProtectedHeader(after).alg).toBe('RS256');
    // tokens of the previous key stay valid while it is still in the directory
    await expect(verifier.verify(before)).resolves.toMatchObject({ subject: 'cluster:system:serviceaccount:ns:sa' });
    await expect(verifier.verify(after)).resolves.toBeTruthy();
    ring.close();
  });
});

describe('issued tokens', () => {
  it('have the claims Distribution needs: aud a string, sub the workload, access', async () => {
    const ring = await loadKeyRing(tokens, silentLogger());
    const access = [{ type: 'repository', name: 'ns/app', actions: ['pull'] }];
    const { token, expiresIn } = await issueRegistryToken(ring, id, access, opts);
    const c = decodeJwt(token);
    expect(c).toMatchObject({
      iss: 'https://proxy.test',
      aud: 'registry.test',
      sub: 'cluster:system:serviceaccount:ns:sa',
      access,
    });
    expect(typeof c.aud).toBe('string');
    expect(c.nbf).toBe(c.iat);
    expect((c.exp as number) - (c.iat as number)).toBe(300);
    expect(expiresIn).toBe(300);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: ring.current().kid });
  });

  it('carry the identity (idn) only for the catalog, or always when the policy has request-time rules', async () => {
    const ring = await loadKeyRing(tokens, silentLogger());
    const access = [{ type: 'repository', name: 'ns/app', actions: ['pull'] }];
    expect(decodeJwt((await issueRegistryToken(ring, id, access, opts)).token).idn).toBeUndefined();
    const carried = (await issueRegistryToken(ring, id, access, { ...opts, embedIdentity: true })).token;
    expect(decodeJwt(carried).idn).toMatchObject({ issuerName: id.issuerName, subject: id.subject, claims: id.claims });
    // and the proxy reads it back for the request-time guard
    const verifier = createRegistryTokenVerifier(ring, { issuer: 'https://proxy.test', service: 'registry.test' });
    await expect(verifier.verify(carried)).resolves.toMatchObject({
      identity: { issuerName: id.issuerName, claims: id.claims },
    });
    ring.close();
  });

  it('are refused when expired, forged, for another service or by another key', async () => {
    const ring = await loadKeyRing(tokens, silentLogger());
    const other = await loadKeyRing(tokens, silentLogger());
    const v = createRegistryTokenVerifier(ring, opts);
    const good = (await issueRegistryToken(ring, id, [], opts)).token;
    await expect(v.verify(good)).resolves.toBeTruthy();
    const expired = (await issueRegistryToken(ring, id, [], { ...opts, now: () => Date.now() - 3_600_000 })).token;
    await expect(v.verify(expired)).rejects.toBeInstanceOf(RegistryTokenError);
    await expect(
      v.verify((await issueRegistryToken(ring, id, [], { ...opts, service: 'other' })).token),
    ).rejects.toBeInstanceOf(RegistryTokenError);
    await expect(
      v.verify((await issueRegistryToken(ring, id, [], { ...opts, issuer: 'https://evil' })).token),
    ).rejects.toBeInstanceOf(RegistryTokenError);
    await expect(v.verify((await issueRegistryToken(other, id, [], opts)).token)).rejects.toBeInstanceOf(
      RegistryTokenError,
    );
    const [h, p, s] = good.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.access = [{ type: 'repository', name: 'x', actions: ['*'] }];
    await expect(
      v.verify(`${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`),
    ).rejects.toBeInstanceOf(RegistryTokenError);
    await expect(v.verify('garbage')).rejects.toBeInstanceOf(RegistryTokenError);
  });

  it('refresh tokens carry the identity, end with it, and are not access tokens', async () => {
    const ring = await loadKeyRing(tokens, silentLogger());
    const refresh = (await issueRefreshToken(ring, id, opts))!;
    expect(decodeJwt(refresh).exp).toBe(id.expiresAt);
    await expect(verifyRefreshToken(ring, refresh, opts)).resolves.toMatchObject({
      issuerName: 'cluster',
      subject: id.subject,
    });
    await expect(createRegistryTokenVerifier(ring, opts).verify(refresh)).rejects.toBeInstanceOf(RegistryTokenError);
    const access = (await issueRegistryToken(ring, id, [], opts)).token;
    await expect(verifyRefreshToken(ring, access, opts)).rejects.toBeInstanceOf(RegistryTokenError);
    expect(await issueRefreshToken(ring, { ...id, expiresAt: undefined }, opts)).toBeUndefined();
  });
});
