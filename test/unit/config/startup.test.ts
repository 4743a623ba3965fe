import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { buildConfig, defaultPolicyPath, missingIssuerProblem, SHIPPED_POLICY_PATH } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';
import { loadPolicies } from '../../../src/policy/load.js';

/** Issue 10, "start-up that tells the truth": the pure decisions behind `serve`'s start-up. */
describe('flag-only issuers: --issuer-name and --ca-file', () => {
  it('names a single --issuer "default" unless --issuer-name says otherwise, and gives it the --ca-file', () => {
    expect(buildConfig({}, { issuer: ['https://i.test'] }).issuers[0]).toMatchObject({
      name: 'default',
      issuer: 'https://i.test',
    });
    const c = buildConfig(
      {},
      { issuer: ['https://i.test'], issuerName: ['corp'], caFile: '/etc/ca.pem', audience: ['registry.test'] },
    );
    expect(c.issuers[0]).toMatchObject({
      name: 'corp',
      issuer: 'https://i.test',
      caFile: '/etc/ca.pem',
      audiences: ['registry.test'],
    });
  });

  it('names several --issuer in order; the counts must match', () => {
    const c = buildConfig({}, { issuer: ['https://a.test', 'https://b.test'], issuerName: ['a', 'b'] });
    expect(c.issuers.map((i) => [i.name, i.issuer])).toEqual([
      ['a', 'https://a.test'],
      ['b', 'https://b.test'],
    ]);
    expect(buildConfig({}, { issuer: ['https://a.test', 'https://b.test'] }).issuers.map((i) => i.name)).toEqual([
      'issuer1',
      'issuer2',
    ]);
    const err = (flags: Parameters<typeof buildConfig>[1]) => {
      try {
        buildConfig({}, flags);
      } catch (e) {
        if (e instanceof ConfigError) return `${e.keyPath}: ${e.problem}`;
        throw e;
      }
      return 'no error';
    };
    expect(err({ issuer: ['https://a.test', 'https://b.test'], issuerName: ['a'] })).toMatch(
      /^--issuer-name: .*1 name\(s\) for 2 --issuer/,
    );
    expect(err({ issuerName: ['a'] })).toMatch(/^--issuer-name:/);
    expect(err({ issuer: ['https://a.test'], issuerName: ['bad name'] })).toMatch(/^--issuer-name: "bad name"/);
    expect(err({ issuer: ['https://a.test'], issuerName: ['anonymous'] })).toMatch(/reserved/);
    expect(err({ caFile: '/ca.pem' })).toMatch(/^--ca-file: applies to --issuer issuers/);
    // a config file's issuers keep their own caFile
    expect(
      buildConfig({ issuers: [{ name: 'k', issuer: 'https://k.test', caFile: '/k.pem' }] }).issuers[0]!.caFile,
    ).toBe('/k.pem');
  });
});

describe('missingIssuerProblem', () => {
  const base = { issuers: [], anonymous: false, dev: false, file: undefined };
  it('refuses to start with no issuer unless anonymous or --dev, and names the ways out', () => {
    const problem = missingIssuerProblem(base);
    expect(problem).toMatch(/no identity issuer is configured, so no client could ever get a token/);
    for (const hint of [
      '--issuer <url> --audience <aud>',
      '--issuer-name',
      '--ca-file',
      '--config <file>',
      '--dev',
      'Kubernetes pod',
    ])
      expect(problem).toContain(hint);
    expect(missingIssuerProblem({ ...base, file: '/etc/rap.yaml' })).toContain('an issuers: list in /etc/rap.yaml');
    expect(missingIssuerProblem({ ...base, anonymous: true })).toBeUndefined();
    expect(missingIssuerProblem({ ...base, dev: true })).toBeUndefined();
    expect(
      missingIssuerProblem({ ...base, issuers: buildConfig({}, { issuer: ['https://i.test'] }).issuers }),
    ).toBeUndefined();
  });
});

describe('the default policy path', () => {
  it('is ./policies where it exists, else the shipped policies/default.yaml', () => {
    expect(defaultPolicyPath(() => true)).toBe('./policies');
    expect(defaultPolicyPath(() => false)).toBe(SHIPPED_POLICY_PATH);
    expect(SHIPPED_POLICY_PATH).toMatch(/\/policies\/default\.yaml$/);
    expect(existsSync(SHIPPED_POLICY_PATH)).toBe(true);
    // an explicit path always wins
    expect(buildConfig({ policies: '/p' }).policies).toBe('/p');
    expect(buildConfig({}, { policy: '/q' }).policies).toBe('/q');
  });

  it('the shipped default is deny by default: only namespace-owned pulls and pushes, and a deny rule', () => {
    const engine = loadPolicies(SHIPPED_POLICY_PATH);
    expect(engine.rules.map((r) => [r.name, r.effect, r.actions])).toEqual([
      ['namespace-owns-its-prefix', 'allow', ['pull', 'push']],
      ['nobody-deletes-releases', 'deny', ['delete']],
    ]);
  });
});
