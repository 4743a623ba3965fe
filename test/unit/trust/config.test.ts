import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';
import { silentLogger } from '../../../src/log.js';
import { keyName } from '../../../src/trust/load.js';
import { globToRegExp } from '../../../src/trust/match.js';
import { createTrust } from '../../../src/trust/verify.js';
import { keyPair } from '../../support/sigstore.js';

/** `signatures:` in the config file (CONTRACT.md §7): the schema's wording, and the files it names read at start-up. */

const dir = mkdtempSync(join(tmpdir(), 'rap-trust-config-'));
const pub = join(dir, 'cosign.pub');
writeFileSync(pub, keyPair('ec').pem);

function problem(doc: Record<string, unknown>, start = false): string {
  try {
    const config = buildConfig({ upstream: { url: 'http://127.0.0.1:1' }, ...doc }, {}, 'rap.yaml');
    if (start) createTrust(config, [], silentLogger());
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const entry = (extra: Record<string, unknown> = {}) => ({
  name: 'prod',
  repositories: ['prod/**'],
  keys: [pub],
  ...extra,
});
const GH = 'https://token.actions.githubusercontent.com';

describe('signatures: schema', () => {
  it.each([
    [[entry({ keys: [] })], 'rap.yaml: signatures[0].keys: list at least one key (keys) or keyless identity (keyless)'],
    [[entry({ keys: pub })], 'rap.yaml: signatures[0].keys: must be a list of PEM public key files'],
    [[entry({ mode: 'warn' })], 'rap.yaml: signatures[0].mode: must be enforce or audit'],
    [
      [entry({ keyless: [{ issuer: GH, subject: 's' }] })],
      'rap.yaml: signatures[0].trustedRoot: is required with keyless: a pinned Sigstore trusted_root.json',
    ],
    [
      [entry({ trustedRoot: '/x', keyless: [{ issuer: GH }] })],
      'rap.yaml: signatures[0].keyless[0].subject: give exactly one of subject or subjectRegExp',
    ],
    [
      [entry({ trustedRoot: '/x', keyless: [{ issuer: GH, subjectRegExp: '(' }] })],
      /^rap\.yaml: signatures\[0\]\.keyless\[0\]\.subjectRegExp: is not a valid regular expression/,
    ],
    [
      [entry({ trustedRoot: '/x', keyless: [{ issuer: GH, subjectPattern: 'x' }] })],
      /^rap\.yaml: signatures\[0\]\.keyless\[0\]\.subjectPattern: unknown key \(known: issuer, subject, subjectRegExp\)/,
    ],
    [
      [entry({ repositories: ['prod/a**'] })],
      'rap.yaml: signatures[0].repositories[0]: "prod/a**": "**" must be a whole segment and segments must not be empty',
    ],
    [[entry(), entry()], 'rap.yaml: signatures[1].name: "prod" is used twice'],
  ])('%j', (signatures, message) => {
    expect(problem({ signatures })).toMatch(message);
  });

  it('signatureLookup: its own block, checked', () => {
    expect(problem({ signatureLookup: { cacheTTL: '0s' } })).toBe(
      'rap.yaml: signatureLookup.cacheTTL: must be between 1s and 24h',
    );
  });

  it('the old trust: block is refused, naming what replaces it', () => {
    expect(problem({ trust: { policies: [] } })).toBe(
      'rap.yaml: trust: replaced by signatures: (a list of {name, repositories, mode, keys: [public key files], keyless: [{issuer, subject | subjectRegExp}], trustedRoot}) and signatureLookup: {cacheTTL, cacheSize, timeout}',
    );
  });

  it('defaults: enforce, no keyless; a verdict lives 10m, 10000 of them, 10s per lookup', () => {
    const c = buildConfig({ signatures: [entry()] });
    expect(c.signatures).toEqual([
      { name: 'prod', repositories: ['prod/**'], mode: 'enforce', keys: [pub], keyless: [] },
    ]);
    expect(c.signatureLookup).toEqual({ cacheTTL: 600_000, cacheSize: 10_000, timeout: 10_000 });
    expect(buildConfig({}).signatures).toBeUndefined();
  });
});

describe('signatures: files read at start-up', () => {
  it('a missing or unparsable key file is a start-up error naming file and key', () => {
    const bad = join(dir, 'bad.pub');
    writeFileSync(bad, 'not a key');
    expect(problem({ signatures: [entry({ keys: [pub, join(dir, 'nope.pub')] })] }, true)).toMatch(
      /^rap\.yaml: signatures\[0\]\.keys\[1\]: cannot read .*nope\.pub: ENOENT/,
    );
    expect(problem({ signatures: [entry({ keys: [bad] })] }, true)).toMatch(
      /^rap\.yaml: signatures\[0\]\.keys\[0\]: .*bad\.pub is not a PEM public key/,
    );
  });

  it('a trusted root that is not one is a start-up error naming it', () => {
    const root = join(dir, 'root.json');
    writeFileSync(root, '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}');
    const signatures = [entry({ keys: [], trustedRoot: root, keyless: [{ issuer: GH, subject: 's' }] })];
    expect(problem({ signatures }, true)).toMatch(
      /^rap\.yaml: signatures\[0\]\.trustedRoot: .*root\.json is not a usable Sigstore trusted_root\.json: it lists no certificate authority/,
    );
  });

  it('a key is named by its file name without extension; one name means one key', () => {
    expect(keyName('/keys/cosign.pub')).toBe('cosign');
    expect(keyName('/keys/prod-signing.key.pem')).toBe('prod-signing.key');
    expect(keyName('/keys/release')).toBe('release');
    mkdirSync(join(dir, 'b'), { recursive: true });
    const other = join(dir, 'b', 'cosign.pub');
    writeFileSync(other, keyPair('ec').pem);
    const same = join(dir, 'b', 'copy.pub');
    copyFileSync(pub, same);
    // The same key under two paths is one key; another key under the same name is refused.
    expect(() =>
      createTrust(buildConfig({ signatures: [entry(), entry({ name: 'b', keys: [pub, same] })] }), [], silentLogger()),
    ).not.toThrow();
    expect(problem({ signatures: [entry(), entry({ name: 'b', keys: [other] })] }, true)).toBe(
      `rap.yaml: signatures[1].keys[0]: ${other} and ${pub} (signatures[0].keys[0]) are different keys with the same name "cosign" (a key is named by its file name without extension): rename one file`,
    );
  });
});

describe('repository globs', () => {
  it.each([
    ['prod/**', 'prod/app', true],
    ['prod/**', 'prod/a/b/c', true],
    ['prod/**', 'prod', false],
    ['prod/**', 'production/app', false],
    ['prod/*', 'prod/app', true],
    ['prod/*', 'prod/a/b', false],
    ['*/app', 'team/app', true],
    ['**/app', 'app', true],
    ['**/app', 'a/b/app', true],
    ['hub/library/*', 'hub/library/nginx', true],
    ['team/app-*', 'team/app-api', true],
    ['team/app-*', 'team/api', false],
    ['**', 'anything/at/all', true],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a.b/x', 'aXb/x', false],
  ])('%s ~ %s: %s', (glob, name, want) => {
    expect(globToRegExp(glob).test(name)).toBe(want);
  });
});
