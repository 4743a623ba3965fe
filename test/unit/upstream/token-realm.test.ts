import { describe, expect, it } from 'vitest';
import { parseTokenResponse, rateLimitRemaining, untrustedRealm } from '../../../src/upstream/token-realm.js';
import { insufficientScope, upstreamAuthFailureError } from '../../../src/upstream/failure.js';
import { buildConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';

const trusted = (upstream: string, realm: string, hosts: string[] = []) =>
  untrustedRealm(upstream, new URL(realm), hosts) === undefined;

describe('untrustedRealm', () => {
  it("trusts the upstream's own origin, default ports included", () => {
    expect(trusted('https://harbor.example.com', 'https://harbor.example.com/service/token')).toBe(true);
    expect(trusted('https://harbor.example.com', 'https://harbor.example.com:443/service/token')).toBe(true);
    expect(trusted('https://quay.io', 'https://quay.io/v2/auth')).toBe(true);
  });

  it('refuses another host, another port, or a downgrade to http, unless listed (and never the downgrade)', () => {
    expect(trusted('https://registry-1.docker.io', 'https://auth.docker.io/token')).toBe(false);
    expect(trusted('https://registry-1.docker.io', 'https://auth.docker.io/token', ['auth.docker.io'])).toBe(true);
    expect(trusted('https://registry-1.docker.io', 'https://auth.docker.io/token', ['auth.docker.io:8443'])).toBe(
      false,
    );
    expect(trusted('https://registry-1.docker.io', 'https://auth.docker.io:443/token', ['AUTH.docker.io:443'])).toBe(
      true,
    );
    expect(trusted('https://harbor.example.com', 'https://harbor.example.com:8443/service/token')).toBe(false);
    expect(trusted('https://harbor.example.com', 'http://harbor.example.com/service/token')).toBe(false);
    expect(
      trusted('https://harbor.example.com', 'http://harbor.example.com/service/token', ['harbor.example.com']),
    ).toBe(false);
    expect(trusted('http://10.0.0.5:5000', 'http://10.0.0.6/token', ['10.0.0.6'])).toBe(true);
    expect(trusted('https://harbor.example.com', 'https://evil.example.com.attacker.test/token', ['example.com'])).toBe(
      false,
    );
  });

  it('names the host (never the whole realm) and tells clients it is not trusted', () => {
    const err = untrustedRealm('https://r.example', new URL('https://auth.example:8443/token?x=1'), []);
    expect(err?.realmHost).toBe('auth.example:8443');
    expect(err?.message).not.toContain('/token');
    const answer = upstreamAuthFailureError(err);
    expect([answer.status, answer.statusMessage]).toEqual([502, "Bad Gateway (upstream's token realm is not trusted)"]);
  });
});

describe('parseTokenResponse', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('takes token or access_token; expires_in defaults to 60 s and never counts below 60', () => {
    expect(parseTokenResponse('{"token":"a","expires_in":300}', now)).toEqual({
      header: 'Bearer a',
      until: now + 290_000,
    });
    expect(parseTokenResponse('{"access_token":"b"}', now)).toEqual({ header: 'Bearer b', until: now + 50_000 });
    expect(parseTokenResponse('{"token":"c","access_token":"c","expires_in":5}', now).until).toBe(now + 50_000);
  });

  it('dates the lifetime from a past issued_at, but not from a future or stale one', () => {
    const at = (iso: string) =>
      parseTokenResponse(JSON.stringify({ token: 't', expires_in: 300, issued_at: iso }), now).until;
    expect(at('2025-12-31T23:59:00Z')).toBe(now - 60_000 + 290_000);
    expect(at('2026-01-01T00:05:00Z')).toBe(now + 290_000);
    expect(at('2025-12-31T00:00:00Z')).toBe(now + 290_000);
  });

  it('refuses a body without a token or that is not JSON', () => {
    expect(() => parseTokenResponse('{"expires_in":60}', now)).toThrow('returned no token');
    expect(() => parseTokenResponse('<html>', now)).toThrow('not JSON');
  });
});

describe('upstream headers', () => {
  it("reads Docker Hub's ratelimit-remaining", () => {
    expect(rateLimitRemaining('100;w=21600')).toBe(100);
    expect(rateLimitRemaining('7')).toBe(7);
    expect(rateLimitRemaining(undefined)).toBeUndefined();
    expect(rateLimitRemaining('lots')).toBeUndefined();
  });

  it('tells an insufficient_scope challenge from a refused credential', () => {
    expect(
      insufficientScope(
        'Bearer realm="https://a/token",service="s",scope="repository:x:pull,push",error="insufficient_scope"',
      ),
    ).toBe(true);
    expect(insufficientScope('Bearer realm="https://a/token",service="s",error="invalid_token"')).toBe(false);
    expect(insufficientScope(undefined)).toBe(false);
  });
});

describe('upstream.auth (registry-token) realm and realmHosts', () => {
  const auth = (extra: Record<string, unknown>) => {
    try {
      const upstream = {
        url: 'https://registry-1.docker.io',
        auth: { type: 'registry-token', username: 'robot$p+n', passwordFile: '/pw', ...extra },
      };
      return buildConfig({ upstream }, {}, 'rap.yaml').upstreams[0]!.auth;
    } catch (err) {
      if (err instanceof ConfigError) return `${err.keyPath}: ${err.problem}`;
      throw err;
    }
  };
  it('defaults realmHosts to none and takes a realm URL and hosts', () => {
    expect(auth({})).toMatchObject({ type: 'registry-token', realmHosts: [] });
    expect(
      auth({ realm: 'https://harbor.example.com/service/token', realmHosts: ['auth.docker.io', 'a.example:8443'] }),
    ).toMatchObject({
      realm: 'https://harbor.example.com/service/token',
      realmHosts: ['auth.docker.io', 'a.example:8443'],
    });
  });
  it('refuses a realm that is not an http(s) URL and a realm host that is a URL', () => {
    expect(auth({ realm: 'harbor-core/service/token' })).toMatch(/^upstream\.auth\.realm: .*is not a URL/);
    expect(auth({ realmHosts: ['https://auth.docker.io'] })).toMatch(
      /^upstream\.auth\.realmHosts\[0\]: .*must be a host or host:port/,
    );
    expect(auth({ realmHosts: 'auth.docker.io' })).toMatch(/^upstream\.auth\.realmHosts/);
  });
});
