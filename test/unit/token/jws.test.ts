import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { jwtVerify, decodeProtectedHeader } from 'jose';
import { signingKeyFromPem } from '../../../src/token/signing-keys.js';
import { signJwt } from '../../../src/token/jws.js';

function pemOf(type: 'ec' | 'rsa' | 'ed25519'): string {
  const { privateKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

describe('signJwt (node:crypto compact JWS)', () => {
  it.each([
    ['ES256', 'ec'],
    ['RS256', 'rsa'],
    ['EdDSA', 'ed25519'],
  ] as const)(
    '%s tokens verify with jose against the published key, with header and claims as given',
    async (alg, type) => {
      const key = signingKeyFromPem(pemOf(type), 'test');
      expect(key.alg).toBe(alg);
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt(
        { kid: key.kid, typ: 'JWT' },
        {
          iss: 'https://proxy.test',
          aud: 'svc',
          exp: now + 60,
          access: [{ type: 'repository', name: 'a/b', actions: ['pull'] }],
        },
        key,
      );
      expect(decodeProtectedHeader(token)).toEqual({ alg, kid: key.kid, typ: 'JWT' });
      const { payload } = await jwtVerify(token, key.publicKey, {
        issuer: 'https://proxy.test',
        audience: 'svc',
        algorithms: [alg],
      });
      expect(payload.access).toEqual([{ type: 'repository', name: 'a/b', actions: ['pull'] }]);
    },
  );

  it('a token whose payload was changed after signing does not verify', async () => {
    const key = signingKeyFromPem(pemOf('ec'), 'test');
    const [h, , s] = signJwt({ kid: key.kid }, { sub: 'a' }, key).split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'b' })).toString('base64url')}.${s}`;
    await expect(jwtVerify(forged, key.publicKey)).rejects.toThrow(/signature/);
  });

  it('the header cannot override the key algorithm', () => {
    const key = signingKeyFromPem(pemOf('ec'), 'test');
    expect(decodeProtectedHeader(signJwt({ alg: 'none' }, {}, key)).alg).toBe('ES256');
  });
});
