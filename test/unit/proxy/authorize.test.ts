import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/identity/types.js';
import { OciError } from '../../../src/oci/errors.js';
import { classify, isRouteError, type Route } from '../../../src/oci/route.js';
import { parseScope } from '../../../src/oci/scope.js';
import { grant } from '../../../src/policy/grant.js';
import { compilePolicyText } from '../../../src/policy/load.js';
import { judge, type Held } from '../../../src/proxy/authorize.js';

/** The decisions behind /v2/ and /token as values: grant, then judge (route + token → route | error). */
const D = `sha256:${'b'.repeat(64)}`;
const config = { anonymous: false, publicURL: 'https://proxy.test', service: 'registry.test', explainDenials: true };
const who: Identity = { issuerName: 'ci', issuer: 'https://ci.test', subject: 'job-42', claims: {} };
const policy = compilePolicyText(`
rules:
  - name: team-a
    actions: [pull, push]
    when: request.repository.startsWith("team-a/")
  - name: frozen
    effect: deny
    actions: [push]
    when: request.repository.startsWith("team-a/frozen")
`);
const ctx = { service: 'registry.test', clientIP: '127.0.0.1' };

function route(method: string, path: string, query = ''): Route {
  const r = classify(method, path, query);
  if (isRouteError(r)) throw r;
  return r;
}

/** A token as /token would issue it for `scopes`. */
function held(...scopes: string[]): Held {
  const g = grant(policy, who, scopes.map(parseScope), ctx, { ruleNames: true });
  return { access: g.access, refused: g.refused, subject: 'ci:job-42' };
}

describe('grant', () => {
  it('collects access, refusals, matched rules and the audit result in one pass', () => {
    const g = grant(
      policy,
      who,
      ['repository:team-a/app:pull,push', 'repository:team-a/frozen:pull,push', 'repository:team-b/x:pull'].map(
        parseScope,
      ),
      ctx,
      {
        ruleNames: true,
      },
    );
    expect(g.access).toEqual([
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team-a/frozen', actions: ['pull'] },
    ]);
    expect(g.refused).toEqual([
      { type: 'repository', name: 'team-a/frozen', actions: [{ action: 'push', deniedBy: ['frozen'] }] },
      { type: 'repository', name: 'team-b/x', actions: [{ action: 'pull' }] },
    ]);
    expect(g.matched).toEqual(['team-a', 'frozen']);
    expect(g.result).toBe('partial');
    expect(g.decisions).toHaveLength(3);
  });

  it('names no deny rule unless asked to', () => {
    const g = grant(policy, who, [parseScope('repository:team-a/frozen:push')], ctx);
    expect(g.refused).toEqual([{ type: 'repository', name: 'team-a/frozen', actions: [{ action: 'push' }] }]);
  });
});

describe('judge: route + token → route | error, never a write', () => {
  it('authorizes what the token covers', () => {
    const r = route('GET', '/v2/team-a/app/manifests/v1');
    expect(judge(r, held('repository:team-a/app:pull'), config)).toEqual({
      route: r,
      identity: undefined,
      anonymous: false,
    });
  });

  it('challenges for an action the token never asked for, with the challenge in the error', () => {
    const out = judge(route('PUT', '/v2/team-a/app/manifests/v1'), held('repository:team-a/app:pull'), config);
    expect(out).toBeInstanceOf(OciError);
    const err = out as OciError;
    expect(err.status).toBe(401);
    expect(err.code).toBe('DENIED');
    expect(err.headers['WWW-Authenticate']).toBe(
      'Bearer realm="https://proxy.test/token",service="registry.test",scope="repository:team-a/app:pull,push",error="insufficient_scope"',
    );
  });

  it('says why with a 403 when the policy refused the action at issuance', () => {
    const err = judge(
      route('PUT', '/v2/team-a/frozen/manifests/v1'),
      held('repository:team-a/frozen:pull,push'),
      config,
    ) as OciError;
    expect(err.status).toBe(403);
    expect(err.message).toContain('denied by rule frozen');
    expect(err.statusMessage).toMatch(/^Forbidden: issuer ci, subject job-42 was refused push/);
  });

  it('drops a mount whose source may not be pulled, and forwards the plain upload', () => {
    const r = route('POST', '/v2/team-a/app/blobs/uploads/', `mount=${D}&from=team-b/app`);
    const out = judge(r, held('repository:team-a/app:pull,push'), config);
    expect(out).not.toBeInstanceOf(OciError);
    expect(out).toMatchObject({ route: { kind: 'upload-start', query: '', mountFrom: undefined } });
  });
});
