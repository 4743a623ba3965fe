import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicyText, loadPolicies, PolicyLoadError } from '../../../src/policy/load.js';
import { parseScope } from '../../../src/oci/scope.js';
import type { Identity } from '../../../src/identity/types.js';

const ctx = { service: 'registry.test', clientIP: '127.0.0.1' };

function k8s(namespace: string, issuerName = 'cluster'): Identity {
  return {
    issuerName,
    issuer: 'https://kubernetes.default.svc',
    subject: `system:serviceaccount:${namespace}:builder`,
    preset: 'kubernetes',
    namespace,
    serviceAccount: 'builder',
    podName: 'builder-1',
    claims: { sub: `system:serviceaccount:${namespace}:builder` },
  };
}

function grant(policy: string, identity: Identity, scope: string): string[] {
  return compilePolicyText(policy).decide(identity, parseScope(scope), ctx).granted;
}

describe('policy engine decisions', () => {
  const allowPullPush = `
rules:
  - name: ns
    actions: [pull, push]
    when: identity.issuerName == "cluster" && request.repository.startsWith(identity.namespace + "/")
`;

  it('grants the intersection of requested and allowed actions', () => {
    expect(grant(allowPullPush, k8s('team'), 'repository:team/app:pull,push,delete')).toEqual(['pull', 'push']);
    expect(grant(allowPullPush, k8s('team'), 'repository:team/app:pull')).toEqual(['pull']);
  });

  it('denies by default: no matching rule, no access', () => {
    expect(grant(allowPullPush, k8s('team'), 'repository:other/app:pull')).toEqual([]);
    expect(grant(allowPullPush, k8s('team', 'elsewhere'), 'repository:team/app:pull')).toEqual([]);
    expect(grant('rules: []', k8s('team'), 'repository:team/app:pull')).toEqual([]);
  });

  it('does not let a namespace prefix match a longer namespace name', () => {
    expect(grant(allowPullPush, k8s('team'), 'repository:teamb/app:pull')).toEqual([]);
  });

  it('deny rules win over allow rules and are reported as matched', () => {
    const policy = `${allowPullPush}
  - name: no-push-to-frozen
    effect: deny
    actions: [push]
    when: request.repository.endsWith("/frozen")
`;
    const decision = compilePolicyText(policy).decide(k8s('team'), parseScope('repository:team/frozen:pull,push'), ctx);
    expect(decision.granted).toEqual(['pull']);
    expect(decision.matched.map((m) => `${m.name}:${m.effect}`)).toEqual(['ns:allow', 'no-push-to-frozen:deny']);
  });

  it('unions the actions of several allow rules', () => {
    const policy = `
rules:
  - {name: a, actions: [pull], when: 'true'}
  - {name: b, actions: [delete], when: 'request.repository == "x/y"'}
`;
    expect(grant(policy, k8s('team'), 'repository:x/y:pull,push,delete')).toEqual(['pull', 'delete']);
    expect(grant(policy, k8s('team'), 'repository:x/z:pull,push,delete')).toEqual(['pull']);
  });

  it('treats * in rule actions as every action, and a requested * literally', () => {
    const star = `rules: [{name: all, actions: ["*"]}]`;
    expect(grant(star, k8s('t'), 'repository:a/b:pull,push,delete,*')).toEqual(['pull', 'push', 'delete', '*']);
    const explicit = `rules: [{name: some, actions: [pull, push, delete]}]`;
    expect(grant(explicit, k8s('t'), 'repository:a/b:*')).toEqual([]);
    const denyStar = `rules: [{name: all, actions: ["*"]}, {name: d, effect: deny, actions: ["*"], when: 'request.repository == "a/b"'}]`;
    expect(grant(denyStar, k8s('t'), 'repository:a/b:pull')).toEqual([]);
    expect(grant(denyStar, k8s('t'), 'repository:a/c:pull')).toEqual(['pull']);
    const denyDelete = `rules: [{name: all, actions: ["*"]}, {name: d, effect: deny, actions: [delete]}]`;
    expect(grant(denyDelete, k8s('t'), 'repository:a/b:pull,*')).toEqual(['pull']);
  });

  it('handles the registry catalog scope', () => {
    const policy = `rules: [{name: cat, actions: ["*"], when: 'request.type == "registry" && identity.issuerName == "cluster"'}]`;
    expect(grant(policy, k8s('t'), 'registry:catalog:*')).toEqual(['*']);
    expect(grant(policy, k8s('t', 'other'), 'registry:catalog:*')).toEqual([]);
    // repository is "" for registry scopes, so repository-prefix rules never grant the catalog
    expect(grant(allowPullPush, k8s(''), 'registry:catalog:*')).toEqual([]);
  });

  it('fails closed when `when` errors at run time: no allow, but deny matches', () => {
    const policy = `
rules:
  - {name: by-claim, actions: [pull, push], when: 'claims.team == "a"'}
  - {name: deny-by-claim, effect: deny, actions: [push], when: 'claims.frozen == true'}
`;
    // claims.team is absent → the allow rule errors → not matched
    expect(grant(policy, k8s('t'), 'repository:a/b:pull')).toEqual([]);
    const withTeam = { ...k8s('t'), claims: { team: 'a' } };
    // claims.frozen absent → the deny rule errors → matches → push removed
    expect(grant(policy, withTeam, 'repository:a/b:pull,push')).toEqual(['pull']);
    expect(grant(policy, { ...withTeam, claims: { team: 'a', frozen: false } }, 'repository:a/b:pull,push')).toEqual([
      'pull',
      'push',
    ]);
  });

  it('sees missing identity fields as empty strings', () => {
    const policy = `rules: [{name: x, actions: [pull], when: 'identity.namespace == "" && identity.podName == ""'}]`;
    const gh: Identity = {
      issuerName: 'gh',
      issuer: 'https://token.actions.githubusercontent.com',
      subject: 'repo:a/b:ref:refs/heads/main',
      claims: {},
    };
    expect(grant(policy, gh, 'repository:a/b:pull')).toEqual(['pull']);
    expect(grant(policy, k8s('t'), 'repository:a/b:pull')).toEqual([]);
  });

  it('exposes request.actions, service and clientIP', () => {
    const policy = `rules: [{name: x, actions: [pull], when: '"pull" in request.actions && request.service == "registry.test" && request.clientIP == "127.0.0.1"'}]`;
    expect(grant(policy, k8s('t'), 'repository:a/b:pull')).toEqual(['pull']);
  });

  it('reads nested claims (GCE identity tokens)', () => {
    const policy = `rules: [{name: gce, actions: [pull], when: 'claims.google.compute_engine.project_id == "p1"'}]`;
    const gce: Identity = {
      issuerName: 'google',
      issuer: 'https://accounts.google.com',
      subject: '1',
      preset: 'google',
      claims: { google: { compute_engine: { project_id: 'p1' } } },
    };
    expect(grant(policy, gce, 'repository:a/b:pull')).toEqual(['pull']);
    expect(
      grant(policy, { ...gce, claims: { google: { compute_engine: { project_id: 'p2' } } } }, 'repository:a/b:pull'),
    ).toEqual([]);
  });
});

describe('policy loading', () => {
  function expectLoadError(text: string, pattern: RegExp): void {
    let err: unknown;
    try {
      compilePolicyText(text, 'bad.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyLoadError);
    expect((err as Error).message).toMatch(pattern);
  }

  it('rejects CEL syntax errors, naming file and rule', () => {
    expectLoadError(
      `rules: [{name: broken, actions: [pull], when: 'identity.issuerName =='}]`,
      /bad\.yaml: rule "broken": invalid CEL/,
    );
  });
  it('rejects unknown fields of identity and request at load time', () => {
    expectLoadError(
      `rules: [{name: typo, actions: [pull], when: 'identity.namespce == "a"'}]`,
      /rule "typo".*namespce/,
    );
    expectLoadError(`rules: [{name: unk, actions: [pull], when: 'user == "a"'}]`, /rule "unk": invalid CEL/);
  });
  it('rejects a non-bool `when`', () => {
    expectLoadError(
      `rules: [{name: str, actions: [pull], when: 'request.repository'}]`,
      /rule "str": `when` must evaluate to bool, not string/,
    );
    expectLoadError(`rules: [{name: int, actions: [pull], when: '1 + 2'}]`, /must evaluate to bool/);
  });
  it('rejects a type error', () => {
    expectLoadError(`rules: [{name: t, actions: [pull], when: 'request.actions + 1 == 2'}]`, /rule "t": invalid CEL/);
  });
  it('validates rule shape', () => {
    expectLoadError(`rules: [{name: a, actions: []}]`, /actions/);
    expectLoadError(`rules: [{name: a, actions: [write]}]`, /unknown action "write"/);
    expectLoadError(`rules: [{name: a, actions: [pull], effect: maybe}]`, /effect/);
    expectLoadError(`rules: [{name: a, actions: [pull], whn: 'true'}]`, /unknown key "whn"/);
    expectLoadError(`rules: [{actions: [pull]}]`, /name/);
    expectLoadError(`rulez: []`, /unknown key "rulez"/);
    expectLoadError(`rules: {a: 1}`, /must be a list/);
  });

  it('loads a directory (non-recursive, sorted) and rejects duplicate names across files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-pol-'));
    writeFileSync(join(dir, 'b.yaml'), `rules: [{name: two, actions: [push], when: 'true'}]`);
    writeFileSync(join(dir, 'a.yml'), `rules: [{name: one, actions: [pull], when: 'true'}]`);
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    mkdirSync(join(dir, 'nested'));
    writeFileSync(join(dir, 'nested', 'c.yaml'), `rules: [{name: three, actions: [delete]}]`);
    const engine = loadPolicies(dir);
    expect(engine.rules.map((r) => r.name)).toEqual(['one', 'two']);
    writeFileSync(join(dir, 'c.yaml'), `rules: [{name: one, actions: [pull]}]`);
    expect(() => loadPolicies(dir)).toThrow(/c\.yaml: rule "one": duplicate rule name/);
  });

  it('reports a missing policy path clearly', () => {
    expect(() => loadPolicies('/nonexistent/policies')).toThrow(/policy path does not exist/);
  });
});

describe('shipped policies', () => {
  it('default: a namespace owns its prefix; releases cannot be deleted', () => {
    const engine = loadPolicies('policies');
    const d = (id: Identity, s: string) => engine.decide(id, parseScope(s), ctx).granted;
    expect(d(k8s('team'), 'repository:team/app:pull,push,delete')).toEqual(['pull', 'push']);
    expect(d(k8s('team'), 'repository:other/app:pull')).toEqual([]);
    expect(d({ ...k8s('team'), preset: undefined }, 'repository:team/app:pull')).toEqual([]);
    expect(d(k8s('releases'), 'repository:releases/app:pull,push,delete,*')).toEqual(['pull', 'push']);
  });

  it('every example loads and decides as its comment says', () => {
    const gh: Identity = {
      issuerName: 'github',
      issuer: 'https://token.actions.githubusercontent.com',
      subject: 'repo:acme/web:ref:refs/heads/main',
      preset: 'github-actions',
      claims: {
        repository: 'acme/web',
        repository_owner: 'acme',
        repository_owner_id: '1234567',
        ref: 'refs/heads/main',
      },
    };
    const ghEngine = loadPolicies('policies/examples/github-actions.yaml');
    expect(ghEngine.decide(gh, parseScope('repository:acme/web:pull,push'), ctx).granted).toEqual(['pull', 'push']);
    expect(ghEngine.decide(gh, parseScope('repository:acme/web/cache:push'), ctx).granted).toEqual(['push']);
    expect(ghEngine.decide(gh, parseScope('repository:acme/webx:pull'), ctx).granted).toEqual([]);
    const branch = { ...gh, claims: { ...gh.claims, ref: 'refs/heads/feature' } };
    expect(ghEngine.decide(branch, parseScope('repository:acme/web:pull,push'), ctx).granted).toEqual(['pull']);

    const gce: Identity = {
      issuerName: 'google',
      issuer: 'https://accounts.google.com',
      subject: '1',
      preset: 'google',
      claims: { google: { compute_engine: { project_id: 'acme-prod' } } },
    };
    expect(
      loadPolicies('policies/examples/gce.yaml').decide(gce, parseScope('repository:gce-base/debian:pull,push'), ctx)
        .granted,
    ).toEqual(['pull']);

    const gl: Identity = {
      issuerName: 'gitlab',
      issuer: 'https://gitlab.com',
      subject: 'project_path:g/p:ref_type:branch:ref:main',
      preset: 'gitlab',
      claims: { project_path: 'acme/p', namespace_path: 'acme', namespace_id: '4242' },
    };
    expect(
      loadPolicies('policies/examples/gitlab.yaml').decide(gl, parseScope('repository:acme/p/img:pull,push'), ctx)
        .granted,
    ).toEqual(['pull', 'push']);

    const cat = loadPolicies('policies/examples/readonly-catalog.yaml');
    expect(cat.decide(k8s('t'), parseScope('registry:catalog:*'), ctx).granted).toEqual(['*']);
    expect(cat.decide(k8s('t'), parseScope('repository:public/x:pull,push'), ctx).granted).toEqual(['pull']);

    const dev = loadPolicies('policies/dev');
    expect(
      dev.decide(
        { issuerName: 'dev', issuer: 'x', subject: 'me', claims: {} },
        parseScope('repository:a/b:pull,push,delete'),
        ctx,
      ).granted,
    ).toEqual(['pull', 'push', 'delete']);
    expect(dev.decide(k8s('t'), parseScope('repository:a/b:pull'), ctx).granted).toEqual([]);
  });
});
