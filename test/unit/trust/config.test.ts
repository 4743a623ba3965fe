import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';
import { silentLogger } from '../../../src/log.js';
import { globToRegExp } from '../../../src/trust/match.js';
import { createTrust } from '../../../src/trust/verify.js';
import { keyPair } from '../../support/sigstore.js';

/** `trust:` in the config file: the schema's wording, and the files it names read at start-up. */

const dir = mkdtempSync(join(tmpdir(), 'rap-trust-config-'));
const pub = join(dir, 'cosign.pub');
writeFileSync(pub, keyPair('ec').pem);

function problem(trust: unknown, start = false): string {
  try {
    const config = buildConfig({ upstream: { url: 'http://127.0.0.1:1' }, trust }, {}, 'rap.yaml');
    if (start) createTrust(config, [], silentLogger());
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const policy = (require: unknown[], extra: Record<string, unknown> = {}) => ({
  name: 'prod',
  repositories: ['prod/**'],
  require,
  ...extra,
});

describe('trust: schema', () => {
  it.each([
    [{ policies: [policy([])] }, 'rap.yaml: trust.policies[0].require: must list at least one key or keyless identity'],
    [
      { policies: [policy([{ key: { name: 'k' } }])] },
      'rap.yaml: trust.policies[0].require[0]: must be {key: {name, publicKeyFile}} or {keyless: {issuer, subject | subjectPattern}}',
    ],
    [
      { policies: [policy([{ key: { name: 'k', publicKeyFile: pub } }], { mode: 'warn' })] },
      'rap.yaml: trust.policies[0].mode: must be enforce or audit',
    ],
    [
      { policies: [policy([{ keyless: { issuer: 'https://i', subject: 's' } }])] },
      'rap.yaml: trust.policies[0].require[0].keyless: needs trust.trustedRoot (a pinned trusted_root.json)',
    ],
    [
      { trustedRoot: '/x', policies: [policy([{ keyless: { issuer: 'https://i' } }])] },
      'rap.yaml: trust.policies[0].require[0]: must be {key: {name, publicKeyFile}} or {keyless: {issuer, subject | subjectPattern}}',
    ],
    [
      { policies: [{ ...policy([{ key: { name: 'k', publicKeyFile: pub } }]), repositories: ['prod/a**'] }] },
      'rap.yaml: trust.policies[0].repositories[0]: "prod/a**": "**" must be a whole segment and segments must not be empty',
    ],
    [{ cacheTtl: '0s', policies: [] }, 'rap.yaml: trust.cacheTtl: must be between 1s and 24h'],
  ])('%j', (trust, message) => {
    expect(problem(trust)).toBe(message);
  });

  it('defaults: enforce, 10m, no policies', () => {
    const c = buildConfig({ trust: { policies: [policy([{ key: { name: 'k', publicKeyFile: pub } }])] } });
    expect(c.trust).toMatchObject({
      cacheTtl: 600_000,
      cacheSize: 10_000,
      lookupTimeout: 10_000,
      policies: [{ mode: 'enforce' }],
    });
  });
});

describe('trust: files read at start-up', () => {
  it('a missing or unparsable key file is a start-up error naming file and key', () => {
    const bad = join(dir, 'bad.pub');
    writeFileSync(bad, 'not a key');
    expect(
      problem({ policies: [policy([{ key: { name: 'k', publicKeyFile: join(dir, 'nope.pub') } }])] }, true),
    ).toMatch(/^rap\.yaml: trust\.policies\[0\]\.require\[0\]\.key\.publicKeyFile: cannot read .*nope\.pub: ENOENT/);
    expect(problem({ policies: [policy([{ key: { name: 'k', publicKeyFile: bad } }])] }, true)).toMatch(
      /^rap\.yaml: trust\.policies\[0\]\.require\[0\]\.key\.publicKeyFile: .*bad\.pub is not a PEM public key/,
    );
  });

  it('a trusted root that is not one is a start-up error naming it', () => {
    const root = join(dir, 'root.json');
    writeFileSync(root, '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}');
    const trust = { trustedRoot: root, policies: [policy([{ keyless: { issuer: 'https://i', subject: 's' } }])] };
    expect(problem(trust, true)).toMatch(
      /^rap\.yaml: trust\.trustedRoot: .*root\.json is not a usable Sigstore trusted_root\.json: it lists no certificate authority/,
    );
  });

  it('one name means one key', () => {
    const other = join(dir, 'other.pub');
    writeFileSync(other, keyPair('ec').pem);
    const trust = {
      policies: [
        policy([{ key: { name: 'k', publicKeyFile: pub } }]),
        { ...policy([{ key: { name: 'k', publicKeyFile: other } }]), name: 'b' },
      ],
    };
    expect(problem(trust, true)).toBe(
      'rap.yaml: trust.policies[1].require[0]: the name "k" is already used for something else at trust.policies[0].require[0]',
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
