import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { CONFIG_SCHEMA_PATH, configJsonSchema } from '../../../scripts/config-schema.js';
import { buildConfig, extendConfig } from '../../../src/config/load.js';
import { issuerConfig } from '../../../src/config/issuer-schema.js';
import { configProblem } from '../../support/config.js';

const problem = configProblem;

/** Every object node of a JSON Schema, with where it is. */
function objectNodes(node: unknown, at = '#'): [string, Record<string, unknown>][] {
  if (typeof node !== 'object' || node === null) return [];
  const found: [string, Record<string, unknown>][] = [];
  const n = node as Record<string, unknown>;
  if (n.type === 'object') found.push([at, n]);
  for (const [k, v] of Object.entries(n)) found.push(...objectNodes(v, `${at}/${k}`));
  return found;
}

describe('the config schema', () => {
  it('config.schema.json is what `npm run schema` generates', () => {
    expect(readFileSync(CONFIG_SCHEMA_PATH, 'utf8')).toBe(configJsonSchema());
  });

  it('publishes every mapping as closed (unknown keys are errors) and the file keys at the top', () => {
    const schema = JSON.parse(configJsonSchema()) as { properties: Record<string, unknown> };
    const nodes = objectNodes(schema);
    expect(nodes.length).toBeGreaterThan(8);
    for (const [at, node] of nodes) expect(node.additionalProperties, at).toBe(false);
    expect(Object.keys(schema.properties)).toEqual([
      'listen',
      'publicURL',
      'service',
      'tls',
      'upstream',
      'upstreams',
      'issuers',
      'tokens',
      'policies',
      'anonymous',
      'explainDenials',
      'limits',
      'signatures',
      'signatureLookup',
      'trust',
      'audit',
      'tracing',
      'trustedProxies',
      'shutdownGrace',
      'workers',
      'logLevel',
    ]);
  });

  it('refuses unknown keys in every section, naming the key and the known ones', () => {
    expect(problem({ upstream: { url: 'http://u', caFle: '/ca' } })).toBe(
      'upstream.caFle: unknown key (known: url, caFile, auth, timeout, followRedirects, registry)',
    );
    expect(
      problem({
        upstream: { url: 'http://u', auth: { type: 'basic', username: 'u', passwordFile: 'p', pasword: 'x' } },
      }),
    ).toBe('upstream.auth.pasword: unknown key (known: type, username, passwordFile)');
    expect(problem({ tls: { certFile: 'c', keyFile: 'k', caFile: 'x' } })).toBe(
      'tls.caFile: unknown key (known: certFile, keyFile)',
    );
    expect(
      problem({ issuers: [{ name: 'a', issuer: 'https://a', tokenReview: { url: 'https://k', ttl: '1m' } }] }),
    ).toMatch(/^issuers\[0\]\.tokenReview\.ttl: unknown key/);
    expect(problem({ limits: { tokenGlobal: { rate: 1, brust: 2 } } })).toBe(
      'limits.tokenGlobal.brust: unknown key (known: rate, burst)',
    );
  });

  it('names a misspelt key before the key it left missing', () => {
    expect(problem({ tls: { certFile: 'c', keyFlie: 'k' } })).toMatch(/^tls\.keyFlie: unknown key/);
  });

  it('reports the problem inside a mapping given where a union allows one', () => {
    expect(problem({ issuers: [{ name: 'a', issuer: 'https://a', tokenReview: { url: 'ftp://k' } }] })).toBe(
      'issuers[0].tokenReview.url: "ftp://k" must be http or https',
    );
    expect(problem({ issuers: [{ name: 'a', issuer: 'https://a', tokenReview: 'yes' }] })).toBe(
      'issuers[0].tokenReview: must be false, true or a mapping {url, caFile, bearerTokenFile, cacheTTL}',
    );
  });

  it('treats an empty YAML value of a string key as absent, as before', () => {
    expect(buildConfig({ service: null, logLevel: null }).service).toBe('127.0.0.1:8080');
  });
});

describe('a loaded Config', () => {
  it('is frozen all the way down', () => {
    const c = buildConfig({ issuers: [{ name: 'k', issuer: 'https://k.test' }] });
    expect(
      Object.isFrozen(c) &&
        Object.isFrozen(c.issuers) &&
        Object.isFrozen(c.issuers[0]) &&
        Object.isFrozen(c.issuers[0]!.audiences) &&
        Object.isFrozen(c.limits.tokenGlobal),
    ).toBe(true);
    expect(() => (c.issuers as unknown[]).push({})).toThrow(TypeError);
  });

  it('is extended into a new Config (the dev and in-cluster issuers), never changed in place', () => {
    const c = buildConfig({ tokens: { signingKeyFile: '/mine.pem' } });
    const extra = issuerConfig(
      { name: 'cluster', issuer: 'https://k.test', audiences: ['svc'] },
      { keyPath: 'issuers' },
    );
    const d = extendConfig(c, { issuers: [extra], signingKeyFile: '/dev.pem' });
    expect(c.issuers).toEqual([]);
    expect(d.issuers).toEqual([extra]);
    // a configured key wins over the one --dev would add
    expect(d.tokens.signingKeyFile).toBe('/mine.pem');
    expect(Object.isFrozen(d)).toBe(true);
  });

  it('gives issuers built outside the file the same defaults as file entries', () => {
    const fromFile = buildConfig({ issuers: [{ name: 'a', issuer: 'https://a.test', audiences: ['x'] }] }).issuers[0];
    expect(issuerConfig({ name: 'a', issuer: 'https://a.test', audiences: ['x'] }, { keyPath: 'issuers' })).toEqual(
      fromFile,
    );
    expect(fromFile).toMatchObject({ tokenReview: false, legacyTokens: false, clockSkew: 30, timeout: 5000 });
  });
});
