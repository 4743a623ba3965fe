import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DECISION_SCHEMA, parseDecisionLine, type DecisionRecord } from '../../../src/policy/decision-log.js';
import { decisionRecord, type TokenGranted } from '../../../src/token/respond.js';
import { grant } from '../../../src/policy/grant.js';
import { compilePolicyText, loadPolicies } from '../../../src/policy/load.js';
import { policyDigest } from '../../../src/policy/digest.js';
import { parseScope } from '../../../src/oci/scope.js';
import type { Identity } from '../../../src/identity/types.js';
import { createReplayer, formatChange } from '../../../src/cli/commands/policy-replay.js';

const who: Identity = {
  issuerName: 'cluster',
  issuer: 'https://kubernetes.default.svc',
  subject: 'system:serviceaccount:prod:api',
  preset: 'kubernetes',
  namespace: 'prod',
  serviceAccount: 'api',
  claims: {
    iss: 'https://kubernetes.default.svc',
    sub: 'system:serviceaccount:prod:api',
    team: 'a',
    secret: 'no',
    exp: 1,
  },
};

const POLICY = `
rules:
  - name: ns-pull
    actions: [pull, push]
    when: 'request.repository.startsWith(identity.namespace + "/") && claims.team == "a"'
  - name: hub-pull
    actions: [pull]
    when: 'request.upstream == "hub"'
`;

function granted(text: string, scopes: string[]): TokenGranted {
  const parsed = scopes.map((s) => parseScope(s));
  const upstreamOf = (r: string) => (r.startsWith('hub/') ? 'hub' : '');
  const engine = loadPolicies(policyFile(text), upstreamOf);
  return {
    kind: 'granted',
    request: { grantType: 'password' } as never,
    scopes: parsed,
    who,
    grant: grant(engine, who, parsed, { service: 'reg', clientIP: '10.0.0.1' }),
    body: { token: 'SECRET.TOKEN.VALUE', access_token: 'SECRET.TOKEN.VALUE', expires_in: 1, issued_at: 'x' },
  };
}

let n = 0;
const dir = mkdtempSync(join(tmpdir(), 'rap-decisions-'));
function policyFile(text: string): string {
  const file = join(dir, `p${n++}.yaml`);
  writeFileSync(file, text);
  return file;
}

const at = {
  clientIP: '10.0.0.1',
  time: 'T',
  requestId: 'r1',
  claims: ['team'],
  service: 'reg',
  policy: 'sha256:x',
  upstreamOf: (r: string) => (r.startsWith('hub/') ? 'hub' : ''),
};

describe('decision records', () => {
  const outcome = granted(POLICY, ['repository:prod/api:pull,push', 'repository:hub/library/nginx:pull']);
  const record = decisionRecord(outcome, at);

  it('hold the inputs (identity, iss, sub and the listed claims, scopes, request) and the outcome; never the token', () => {
    expect(record).toEqual({
      schema: DECISION_SCHEMA,
      time: 'T',
      requestId: 'r1',
      policy: 'sha256:x',
      identity: {
        issuerName: 'cluster',
        issuer: 'https://kubernetes.default.svc',
        subject: 'system:serviceaccount:prod:api',
        preset: 'kubernetes',
        namespace: 'prod',
        serviceAccount: 'api',
      },
      claims: { iss: 'https://kubernetes.default.svc', sub: 'system:serviceaccount:prod:api', team: 'a' },
      request: { service: 'reg', clientIP: '10.0.0.1' },
      decisions: [
        {
          scope: { type: 'repository', name: 'prod/api', actions: ['pull', 'push'] },
          granted: ['pull', 'push'],
          rules: ['ns-pull'],
        },
        {
          scope: { type: 'repository', name: 'hub/library/nginx', actions: ['pull'] },
          upstream: 'hub',
          granted: ['pull'],
          rules: ['hub-pull'],
        },
      ],
    });
    expect(JSON.stringify(record)).not.toContain('SECRET');
  });

  it('parse back from their line; a damaged line says what is wrong', () => {
    expect(parseDecisionLine(JSON.stringify(record))).toEqual({ record });
    expect(parseDecisionLine('{"schema":')).toMatchObject({ problem: expect.stringMatching(/^not JSON: /) });
    expect(parseDecisionLine(JSON.stringify({ ...record, schema: 'rap.decision/v2' }))).toEqual({
      problem: 'not a rap.decision/v1 record: schema: schema must be "rap.decision/v1"',
    });
    expect(parseDecisionLine(JSON.stringify({ ...record, identity: { issuer: 'x' } }))).toMatchObject({
      problem: expect.stringMatching(/^not a rap\.decision\/v1 record: identity\.issuerName: /),
    });
    // fields added later under v1 are read past
    expect(parseDecisionLine(JSON.stringify({ ...record, later: 1 }))).toEqual({ record });
  });
});

describe('replaying decisions', () => {
  const record: DecisionRecord = decisionRecord(
    granted(POLICY, ['repository:prod/api:pull,push', 'repository:hub/library/nginx:pull']),
    at,
  );
  const replay = (text: string) =>
    createReplayer((upstreamOf) => loadPolicies(policyFile(text), upstreamOf)).replay(record, 7);

  it('the same policies change nothing, request.upstream included (taken from the record, not a config)', () => {
    expect(replay(POLICY)).toEqual([]);
  });

  it('a flipped rule names the scope, before → after, and why now', () => {
    const stricter = `${POLICY}
  - name: no-prod-push
    effect: deny
    actions: [push]
    when: 'request.repository.startsWith("prod/")'
`;
    const changes = replay(stricter);
    expect(changes).toEqual([
      {
        line: 7,
        time: 'T',
        requestId: 'r1',
        who: 'cluster:system:serviceaccount:prod:api',
        scope: 'repository:prod/api:pull,push',
        before: ['pull', 'push'],
        after: ['pull'],
        reason: 'push denied by rule no-prod-push',
        rulesBefore: ['ns-pull'],
      },
    ]);
    expect(formatChange(changes[0]!)).toBe(
      'line 7 (T r1) cluster:system:serviceaccount:prod:api repository:prod/api:pull,push: pull,push → pull: push denied by rule no-prod-push (was: ns-pull)',
    );
  });

  it('a widened grant is a change too; a claim the log did not record reads as absent', () => {
    const wider = POLICY.replace('[pull]', '[pull, push]');
    const widened = createReplayer((u) => loadPolicies(policyFile(wider), u)).replay(
      {
        ...record,
        decisions: [{ ...record.decisions[1]!, scope: { ...record.decisions[1]!.scope, actions: ['pull', 'push'] } }],
      },
      1,
    );
    expect(widened.map((c) => [c.before, c.after])).toEqual([[['pull'], ['pull', 'push']]]);
    const readsSecret = POLICY.replace('claims.team == "a"', 'claims.secret == "no"');
    expect(replay(readsSecret).map((c) => `${c.scope}: ${c.reason}`)).toEqual([
      'repository:prod/api:pull,push: no rule matched',
    ]);
  });
});

describe('policy digests', () => {
  const digest = (text: string) => policyDigest(compilePolicyText(text).rules);
  it('depend on the rules as evaluated, not on their files or layout', () => {
    const a = digest(POLICY);
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digest(`# a comment\n${POLICY}\n`)).toBe(a);
    expect(policyDigest(loadPolicies(policyFile(POLICY)).rules)).toBe(a);
    expect(digest(POLICY.replace('[pull]', '[pull, push]'))).not.toBe(a);
  });
});
