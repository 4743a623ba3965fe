import { describe, expect, it } from 'vitest';
import { compilePolicyText, PolicyLoadError } from '../../../src/policy/load.js';
import { grant } from '../../../src/policy/grant.js';
import { parseScope } from '../../../src/oci/scope.js';
import type { Identity } from '../../../src/identity/types.js';

/** A small deterministic generator (mulberry32): the same cases on every run. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE = `
rules:
  - name: team-owns-prefix
    actions: [pull, push]
    when: request.repository.startsWith(identity.namespace + "/")
  - name: all-pull-shared
    actions: [pull]
    when: request.repository.startsWith("shared/")
  - name: admins
    actions: ["*", pull, push, delete]
    when: identity.subject == "admin"
  - name: no-deletes-in-prod
    effect: deny
    actions: [delete]
    when: request.repository.startsWith("prod/")
`;

const AUDIT = `
  - name: audit-everything
    effect: audit
    actions: ["*"]
  - name: audit-push-prod
    effect: audit
    actions: [push]
    when: request.repository.startsWith("prod/")
  - name: audit-broken
    effect: audit
    actions: [pull]
    when: claims.missing.field == "x"
`;

describe('effect: audit rules', () => {
  const plain = compilePolicyText(BASE);
  const audited = compilePolicyText(BASE + AUDIT);

  it('never change a grant, over generated requests; they record what they would deny', () => {
    const rnd = random(24);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const namespaces = ['team', 'prod', 'shared', 'other'];
    const actions = ['pull', 'push', 'delete', '*'];
    let recorded = 0;
    for (let i = 0; i < 2000; i++) {
      const namespace = pick(namespaces);
      const who: Identity = {
        issuerName: 'c',
        issuer: 'https://c',
        subject: rnd() < 0.1 ? 'admin' : `sa-${i}`,
        namespace,
        claims: {},
      };
      const scopes = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => {
        const wanted = [...new Set(Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(actions)))];
        return parseScope(`repository:${pick(namespaces)}/app${Math.floor(rnd() * 3)}:${wanted.join(',')}`);
      });
      const ctx = { service: 's', clientIP: `10.0.0.${i % 255}` };
      const a = grant(plain, who, scopes, ctx);
      const b = grant(audited, who, scopes, ctx);
      expect({ access: b.access, refused: b.refused, result: b.result, matched: b.matched }).toEqual({
        access: a.access,
        refused: a.refused,
        result: a.result,
        matched: a.matched,
      });
      expect(a.wouldDeny).toEqual([]);
      // Each granted action is one a matching audit-everything rule would have denied.
      const granted = b.access.reduce((n, e) => n + e.actions.length, 0);
      const everything = b.wouldDeny
        .filter((w) => w.rule === 'audit-everything')
        .reduce((n, w) => n + w.actions.length, 0);
      expect(everything).toBe(granted);
      recorded += b.wouldDeny.length;
    }
    expect(recorded).toBeGreaterThan(0);
  });

  it('a `when` that fails records (fails closed like deny) without refusing', () => {
    const who: Identity = { issuerName: 'c', issuer: 'https://c', subject: 's', namespace: 'team', claims: {} };
    const g = grant(audited, who, [parseScope('repository:shared/x:pull')], { service: 's', clientIP: '1.1.1.1' });
    expect(g.result).toBe('granted');
    expect(g.wouldDeny.map((w) => w.rule)).toEqual(['audit-everything', 'audit-broken']);
  });

  it('is refused at request time (for now)', () => {
    const load = () =>
      compilePolicyText('rules:\n  - name: a\n    effect: audit\n    phase: request\n    actions: [pull]\n');
    expect(load).toThrow(PolicyLoadError);
    expect(load).toThrow(
      '`effect: audit` with `phase: request`: audit rules are evaluated when the token is issued only',
    );
  });
});
