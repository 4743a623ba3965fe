import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/identity/types.js';
import { parseScope } from '../../../src/oci/scope.js';
import {
  denialDetail,
  denialMessage,
  GENERIC_DENIAL,
  grantResult,
  parseRefusals,
  refusalOf,
  refusalsFor,
  requesterOf,
  type Refusal,
} from '../../../src/policy/explain.js';
import { compilePolicyText } from '../../../src/policy/load.js';
import { boundedRefusals } from '../../../src/token/issue.js';
import { buildConfig } from '../../../src/config/load.js';

/** Decision → refusal → the words a refused client prints, table by table, with the real engine. */
const POLICY = compilePolicyText(`
rules:
  - name: team-a-owns-its-prefix
    actions: [pull, push]
    when: request.repository.startsWith("team-a/")
  - name: everyone-pulls-shared
    actions: [pull]
    when: request.repository.startsWith("shared/")
  - name: releases-managed
    actions: ["*", pull, push, delete]
    when: request.repository.startsWith("releases/")
  - name: nobody-deletes-releases
    effect: deny
    actions: [delete]
    when: request.repository.startsWith("releases/")
  - name: frozen-is-frozen
    effect: deny
    actions: ["*"]
    when: request.repository.startsWith("releases/frozen")
`);
const who: Identity = { issuerName: 'ci', issuer: 'https://ci.test', subject: 'job-42', claims: {} };
const ctx = { service: 'registry.test', clientIP: '127.0.0.1' };
const decide = (scope: string) => POLICY.decide(who, parseScope(scope), ctx);

describe('refusalOf: what a decision withheld, and why', () => {
  it.each([
    ['everything granted', 'repository:team-a/app:pull,push', undefined],
    ['push: no rule grants it', 'repository:shared/base:pull,push', [{ action: 'push' }]],
    ['nothing matched at all', 'repository:team-b/app:pull', [{ action: 'pull' }]],
    [
      'delete: removed by a deny rule',
      'repository:releases/app:pull,delete',
      [{ action: 'delete', deniedBy: ['nobody-deletes-releases'] }],
    ],
    [
      '* is withheld by any deny rule that matched',
      'repository:releases/app:*',
      [{ action: '*', deniedBy: ['nobody-deletes-releases'] }],
    ],
    ['* requested, no rule lists *', 'repository:team-a/app:*', [{ action: '*' }]],
    [
      'deny * removes every action, each names the rule',
      'repository:releases/frozen:pull,delete',
      [
        { action: 'pull', deniedBy: ['frozen-is-frozen'] },
        { action: 'delete', deniedBy: ['nobody-deletes-releases', 'frozen-is-frozen'] },
      ],
    ],
    ['the catalog', 'registry:catalog:*', [{ action: '*' }]],
  ])('%s', (_name, scope, actions) => {
    const r = refusalOf(decide(scope), { ruleNames: true });
    const s = parseScope(scope);
    expect(r).toEqual(actions ? { type: s.type, name: s.name, actions } : undefined);
  });

  it('leaves rule names out when the operator hides them', () => {
    expect(refusalOf(decide('repository:releases/app:pull,delete'), { ruleNames: false })).toEqual({
      type: 'repository',
      name: 'releases/app',
      actions: [{ action: 'delete' }],
    });
  });
});

describe('grantResult: the audit line and the metric agree', () => {
  it.each([
    [['repository:team-a/app:pull,push'], 'granted'],
    [[], 'granted'], // docker login asks for no scope
    [['repository:shared/base:pull,push'], 'partial'],
    [['repository:team-a/app:pull', 'repository:team-b/app:pull'], 'partial'],
    [['repository:team-b/app:pull'], 'denied'],
    [['repository:team-b/app:pull,push', 'registry:catalog:*'], 'denied'],
  ])('%j → %s', (scopes, result) => {
    expect(grantResult(scopes.map(decide))).toBe(result);
  });
});

describe('refusalsFor: 403 only when the token recorded a refusal of every missing action', () => {
  const refused: Refusal[] = [
    { type: 'repository', name: 'shared/base', actions: [{ action: 'push' }] },
    { type: 'repository', name: 'releases/app', actions: [{ action: '*', deniedBy: ['nobody-deletes-releases'] }] },
  ];
  it.each([
    [
      'push refused',
      ['repository:shared/base:push'],
      [{ type: 'repository', name: 'shared/base', actions: [{ action: 'push' }] }],
    ],
    ['delete never asked for: challenge', ['repository:shared/base:delete'], undefined],
    ['another repository: challenge', ['repository:team-b/app:pull'], undefined],
    ['one of two missing actions unexplained: challenge', ['repository:shared/base:push,delete'], undefined],
    // skopeo delete asked `*`: its GET (pull) and DELETE are both explained by that refusal
    [
      '* refused explains pull',
      ['repository:releases/app:pull'],
      [{ type: 'repository', name: 'releases/app', actions: [{ action: '*', deniedBy: ['nobody-deletes-releases'] }] }],
    ],
    [
      '* refused explains delete',
      ['repository:releases/app:delete'],
      [{ type: 'repository', name: 'releases/app', actions: [{ action: '*', deniedBy: ['nobody-deletes-releases'] }] }],
    ],
  ])('%s', (_name, missing, expected) => {
    expect(refusalsFor(missing.map(parseScope), refused)).toEqual(expected);
  });
});

describe('denialMessage: who, what, why, and how to check', () => {
  const me = { issuerName: 'ci', subject: 'job-42' };
  const check = (scope: string) =>
    `Check with: registry-auth-proxy policy test --issuer-name ci --scope '${scope}' --claims <identity token>`;
  it.each([
    [
      'no rule grants push',
      { type: 'repository', name: 'shared/base', actions: [{ action: 'push' }] },
      `issuer ci, subject job-42 was refused push on repository shared/base: no rule grants push. ${check('repository:shared/base:push')}`,
    ],
    [
      'denied by rule',
      {
        type: 'repository',
        name: 'releases/app',
        actions: [{ action: 'delete', deniedBy: ['nobody-deletes-releases'] }],
      },
      `issuer ci, subject job-42 was refused delete on repository releases/app: denied by rule nobody-deletes-releases. ${check('repository:releases/app:delete')}`,
    ],
    [
      'both reasons at once',
      {
        type: 'repository',
        name: 'releases/app',
        actions: [{ action: 'push' }, { action: 'delete', deniedBy: ['a', 'b'] }],
      },
      `issuer ci, subject job-42 was refused push, delete on repository releases/app: no rule grants push; delete denied by rules a, b. ${check('repository:releases/app:push,delete')}`,
    ],
    [
      'skopeo delete asks *',
      { type: 'repository', name: 'team-a/app', actions: [{ action: '*' }] },
      `issuer ci, subject job-42 was refused * (every action) on repository team-a/app: no rule grants *. ${check('repository:team-a/app:*')}`,
    ],
    [
      'the catalog',
      { type: 'registry', name: 'catalog', actions: [{ action: '*' }] },
      `issuer ci, subject job-42 was refused * (every action) on registry catalog: no rule grants *. ${check('registry:catalog:*')}`,
    ],
  ] as [string, Refusal, string][])('%s', (_name, refusal, message) => {
    expect(denialMessage(me, [refusal], true)).toBe(message);
  });

  it('names several refused resources of one request (a mount: push here, pull there)', () => {
    const m = denialMessage(
      me,
      [
        { type: 'repository', name: 'team-b/app', actions: [{ action: 'push' }] },
        { type: 'repository', name: 'team-c/base', actions: [{ action: 'pull' }] },
      ],
      true,
    );
    expect(m).toContain(
      'was refused push on repository team-b/app: no rule grants push; and pull on repository team-c/base: no rule grants pull.',
    );
    expect(m).toContain("--scope 'repository:team-b/app:push' --scope 'repository:team-c/base:pull'");
  });

  it("with the detail off: Distribution's generic words and access records, no identity or rule", () => {
    const r: Refusal = {
      type: 'repository',
      name: 'releases/app',
      actions: [{ action: 'delete', deniedBy: ['nobody-deletes-releases'] }],
    };
    expect(denialMessage(me, [r], false)).toBe(GENERIC_DENIAL);
    expect(denialDetail(me, [r], false)).toEqual([{ Type: 'repository', Name: 'releases/app', Action: 'delete' }]);
    expect(JSON.stringify(denialDetail(me, [r], false))).not.toMatch(/job-42|nobody/);
    expect(denialDetail(me, [r], true)).toEqual({
      issuerName: 'ci',
      subject: 'job-42',
      refused: [
        {
          type: 'repository',
          name: 'releases/app',
          actions: ['delete'],
          reason: 'denied by rule nobody-deletes-releases',
        },
      ],
      check: 'registry-auth-proxy policy test',
    });
  });

  it('keeps a hostile subject to one printable, bounded line', () => {
    const m = denialMessage(
      { issuerName: 'ci', subject: `evil\r\n\u001b[31mred\u00e9${'x'.repeat(500)}` },
      [{ type: 'repository', name: 'a/b', actions: [{ action: 'pull' }] }],
      true,
    );
    expect(m).toMatch(/^[\x20-\x7e]+$/);
    expect(m).toContain('subject evil???[31mred?xxx');
    expect(m.length).toBeLessThan(500);
  });
});

describe('token claim helpers', () => {
  it('splits sub at the first colon (issuer names have none; subjects may)', () => {
    expect(requesterOf('cluster:system:serviceaccount:ns:sa')).toEqual({
      issuerName: 'cluster',
      subject: 'system:serviceaccount:ns:sa',
    });
    expect(requesterOf('no-colon')).toBeUndefined();
  });
  it('reads back only well-formed refusal claims', () => {
    expect(
      parseRefusals([{ type: 'repository', name: 'a/b', actions: [{ action: 'pull', deniedBy: ['r'] }] }]),
    ).toHaveLength(1);
    expect(parseRefusals(undefined)).toBeUndefined();
    expect(parseRefusals([{ type: 'repository', name: 'a/b', actions: ['pull'] }])).toBeUndefined();
    expect(
      parseRefusals([{ type: 'repository', name: 'a/b', actions: [{ action: 'pull', deniedBy: [1] }] }]),
    ).toBeUndefined();
  });
  it('bounds the claim: refusals beyond the budget are left out (those requests get the plain challenge)', () => {
    const many: Refusal[] = Array.from({ length: 64 }, (_, i) => ({
      type: 'repository',
      name: `team-${i}/${'x'.repeat(200)}`,
      actions: [{ action: 'pull' }],
    }));
    const kept = boundedRefusals(many);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(64);
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(4096);
    expect(boundedRefusals(many.slice(0, 2))).toEqual(many.slice(0, 2));
  });
});

describe('explainDenials (config)', () => {
  it('is on unless turned off, and must be a boolean', () => {
    expect(buildConfig({}).explainDenials).toBe(true);
    expect(buildConfig({ explainDenials: false }).explainDenials).toBe(false);
    expect(() => buildConfig({ explainDenials: 'no' })).toThrow(/explainDenials/);
  });
});
