import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';
import { parseDuration, formatGoDuration } from '../../../src/config/duration.js';

function configError(raw: Record<string, unknown>, flags = {}): ConfigError {
  try {
    buildConfig(raw, flags, 'rap.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('has sane defaults', () => {
    const c = buildConfig({});
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.publicURL).toBe('http://127.0.0.1:8080');
    expect(c.service).toBe('127.0.0.1:8080');
    expect(c.tokens).toMatchObject({ algorithm: 'ES256', ttl: 300 });
    expect(c.policies).toBe('./policies');
    expect(c.anonymous).toBe(false);
  });

  it('derives service from publicURL and audiences from service', () => {
    const c = buildConfig({
      publicURL: 'https://registry.example.com/',
      issuers: [{ name: 'k', issuer: 'https://k8s.test' }],
    });
    expect(c.publicURL).toBe('https://registry.example.com');
    expect(c.service).toBe('registry.example.com');
    expect(c.issuers[0]).toMatchObject({ audiences: ['registry.example.com'], clockSkew: 30, tokenReview: false });
  });

  it('lets flags override the file', () => {
    const c = buildConfig(
      { upstream: { url: 'http://a:5000' }, listen: '127.0.0.1:1' },
      {
        upstream: 'http://b:5000',
        listen: '127.0.0.1:2',
        tokenTtl: '10m',
        issuer: ['https://i.test'],
        audience: ['aud1'],
      },
    );
    expect(c.upstreams[0]?.url).toBe('http://b:5000');
    expect(c.listen.port).toBe(2);
    expect(c.tokens.ttl).toBe(600);
    expect(c.issuers[0]).toMatchObject({ name: 'default', issuer: 'https://i.test', audiences: ['aud1'] });
  });

  it('fills well-known issuers from presets', () => {
    const c = buildConfig({ issuers: [{ name: 'gh', preset: 'github-actions', audiences: ['r'] }] });
    expect(c.issuers[0]!.issuer).toBe('https://token.actions.githubusercontent.com');
    expect(configError({ issuers: [{ name: 'k', preset: 'kubernetes' }] }).keyPath).toBe('issuers[0].issuer');
  });

  it.each([
    [{ listen: 'nope' }, 'listen', /host:port/],
    [{ listen: '1.2.3.4:99999' }, 'listen', /out of range/],
    [{ publicURL: 'ftp://x' }, 'publicURL', /http or https/],
    [
      { upstream: { url: 'http://u', auth: { type: 'magic' } } },
      'upstream.auth.type',
      /none, basic, bearer, registry-token/,
    ],
    [
      { upstream: { url: 'http://u', auth: { type: 'basic', username: 'u', password: 'p' } } },
      'upstream.auth.password',
      /passwordFile/,
    ],
    [
      { upstream: { url: 'http://u', auth: { type: 'basic', username: 'u' } } },
      'upstream.auth.passwordFile',
      /required/,
    ],
    [{ upstream: {} }, 'upstream.url', /required/],
    [{ issuers: {} }, 'issuers', /list/],
    [{ issuers: [{ name: 'a' }] }, 'issuers[0].issuer', /required/],
    [{ issuers: [{ name: 'a', issuer: 'https://a', audiences: [] }] }, 'issuers[0].audiences', /non-empty/],
    [{ issuers: [{ name: 'a', issuer: 'https://a', preset: 'azure' }] }, 'issuers[0].preset', /one of/],
    [{ issuers: [{ name: 'a', issuer: 'https://a', clockSkew: 'soon' }] }, 'issuers[0].clockSkew', /duration/],
    [
      { issuers: [{ name: 'a', issuer: 'https://a', legacyTokens: true }] },
      'issuers[0].legacyTokens',
      /requires tokenReview/,
    ],
    [{ issuers: [{ name: 'a', issuer: 'kubernetes/serviceaccount' }] }, 'issuers[0].issuer', /legacyTokens/],
    [{ issuers: [{ name: 'a', issuer: 'https://a', audience: ['x'] }] }, 'issuers[0].audience', /unknown key/],
    [
      {
        issuers: [
          { name: 'a', issuer: 'https://a' },
          { name: 'a', issuer: 'https://b' },
        ],
      },
      'issuers[1].name',
      /duplicate/,
    ],
    [{ issuers: [{ name: 'anonymous', issuer: 'https://a' }] }, 'issuers[0].name', /reserved/],
    [{ tokens: { algorithm: 'HS256' } }, 'tokens.algorithm', /ES256, RS256, EdDSA/],
    [{ tokens: { ttl: '5s' } }, 'tokens.ttl', /between 1m and 24h/],
    [{ anonymous: 'yes' }, 'anonymous', /true or false/],
    [{ tls: { certFile: 'c' } }, 'tls.keyFile', /required/],
    [{ upstreem: {} }, 'upstreem', /unknown key/],
  ])('rejects %j at %s', (raw, keyPath, problem) => {
    const err = configError(raw as Record<string, unknown>);
    expect(err.keyPath).toBe(keyPath);
    expect(err.message).toMatch(problem as RegExp);
    expect(err.message.startsWith('rap.yaml: ')).toBe(true);
  });

  it('names the file for unreadable or invalid YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-cfg-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'listen: [unclosed');
    expect(() => loadConfig({ config: bad })).toThrow(new RegExp(`${bad}: \\(file\\): not valid YAML`));
    expect(() => loadConfig({ config: join(dir, 'missing.yaml') })).toThrow(/cannot read/);
    writeFileSync(join(dir, 'ok.yaml'), 'service: s.test\n');
    expect(loadConfig({}, { RAP_CONFIG: join(dir, 'ok.yaml') }).service).toBe('s.test');
  });

  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(45)).toBe(45_000);
    for (const bad of ['', '5', '5x', 'm5', '1h junk', '-1s'])
      if (bad !== '5') expect(() => parseDuration(bad)).toThrow();
    expect(formatGoDuration(3_723_000)).toBe('1h2m3s');
    expect(formatGoDuration(59_000)).toBe('59s');
  });
});
