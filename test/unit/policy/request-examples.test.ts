import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/identity/types.js';
import { loadPolicies } from '../../../src/policy/load.js';
import { decideRequest, lazyFactsNeeded, type RequestFacts } from '../../../src/policy/request.js';

/** The request-time examples in policies/examples/, each over a table of allowed and refused requests (issue 21). */

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

const github = (
  ref: string,
  workflow = `acme/web/.github/workflows/release.yml@${ref}`,
  owner = '1234567',
): Identity => ({
  issuerName: 'github',
  issuer: 'https://token.actions.githubusercontent.com',
  subject: `repo:acme/web:ref:${ref}`,
  preset: 'github-actions',
  claims: { repository: 'acme/web', repository_owner_id: owner, ref, workflow_ref: workflow },
});
const k8s = (namespace: string, issuerName = 'cluster'): Identity => ({
  issuerName,
  issuer: 'https://kubernetes.default.svc',
  subject: `system:serviceaccount:${namespace}:deployer`,
  preset: 'kubernetes',
  namespace,
  serviceAccount: 'deployer',
  claims: {},
});

const PUSH = ['pull', 'push'];
const request = (
  method: string,
  repository: string,
  reference: string,
  over: Partial<RequestFacts> = {},
): RequestFacts => ({
  method,
  kind: 'manifest',
  repository,
  actions: method === 'PUT' ? PUSH : method === 'DELETE' ? ['delete'] : ['pull'],
  reference,
  mediaType: method === 'PUT' ? 'application/vnd.oci.image.manifest.v1+json' : '',
  upstream: '',
  service: 'registry.test',
  clientIP: '10.0.0.1',
  ...over,
});

type Row = [string, Identity, RequestFacts, string | undefined];

function table(file: string, rows: Row[]): void {
  const engine = loadPolicies(`policies/examples/${file}`);
  it.each(rows)('%s', (_, who, facts, refusedBy) => {
    // as the guard does: ask for the on-demand facts only when a rule reads them
    const needed = lazyFactsNeeded(engine, who, facts);
    const asked = {
      ...facts,
      ...(needed.bodyDigest ? {} : { bodyDigest: undefined }),
      ...(needed.tagExists || needed.digest ? {} : { lookup: undefined }),
    };
    expect(decideRequest(engine, who, asked)?.refused.name).toBe(refusedBy);
  });
}

describe('immutable-release-tags.yaml', () => {
  const who = github('refs/heads/main');
  const put = (tag: string, body: string, upstream?: string) =>
    request('PUT', 'acme/web', tag, {
      bodyDigest: body,
      lookup: upstream ? { tagExists: true, digest: upstream } : { tagExists: false, digest: '' },
    });
  const RULE = 'acme-release-tags-are-immutable';
  table('immutable-release-tags.yaml', [
    ['first push of v1.0.0', who, put('v1.0.0', A), undefined],
    ['the same image again (a CI retry)', who, put('v1.0.0', A, A), undefined],
    ['another image over v1.0.0', who, put('v1.0.0', B, A), RULE],
    ['another image over a pre-release v2.0.0-rc.1', who, put('v2.0.0-rc.1', B, A), RULE],
    ['dev moves freely', who, put('dev', B, A), undefined],
    ['latest moves freely (main-moves-latest.yaml decides who)', who, put('latest', B, A), undefined],
    ['v1 (not semver) moves freely', who, put('v1', B, A), undefined],
    ['push by digest', who, request('PUT', 'acme/web', A, { bodyDigest: A }), undefined],
    ['another tenant is not ours to protect', who, { ...put('v1.0.0', B, A), repository: 'other/web' }, undefined],
    ['DELETE of v1.0.0', who, request('DELETE', 'acme/web', 'v1.0.0'), RULE],
    ['DELETE by digest', who, request('DELETE', 'acme/web', A), undefined],
    ['pull of v1.0.0 asks the upstream nothing', who, request('GET', 'acme/web', 'v1.0.0'), undefined],
    [
      'the upstream cannot say: refused',
      who,
      request('PUT', 'acme/web', 'v1.0.0', { bodyDigest: A, lookup: { error: 'HEAD answered 503' } }),
      RULE,
    ],
  ]);

  it('says why when the upstream cannot answer', () => {
    const engine = loadPolicies('policies/examples/immutable-release-tags.yaml');
    const r = decideRequest(
      engine,
      who,
      request('PUT', 'acme/web', 'v1.0.0', { bodyDigest: A, lookup: { error: 'HEAD answered 503' } }),
    );
    expect(r?.reason).toMatch(
      new RegExp(
        `^rule ${RULE} could not be evaluated, so it refuses: upstream\\.(tagExists|digest) unknown: HEAD answered 503$`,
      ),
    );
  });
});

describe('main-moves-latest.yaml', () => {
  const RULE = 'acme-latest-moves-only-from-main';
  const main = github('refs/heads/main');
  table('main-moves-latest.yaml', [
    ['the release workflow on main moves latest', main, request('PUT', 'acme/web', 'latest'), undefined],
    ['… and latest of acme/web/cli', main, request('PUT', 'acme/web/cli', 'latest'), undefined],
    ['… and deletes it', main, request('DELETE', 'acme/web', 'latest'), undefined],
    ['another branch', github('refs/heads/dev'), request('PUT', 'acme/web', 'latest'), RULE],
    [
      'another workflow on main',
      github('refs/heads/main', 'acme/web/.github/workflows/pr.yml@refs/heads/main'),
      request('PUT', 'acme/web', 'latest'),
      RULE,
    ],
    [
      'the same names under another owner id',
      github('refs/heads/main', undefined, '999999'),
      request('PUT', 'acme/web', 'latest'),
      RULE,
    ],
    [
      'a token without workflow_ref',
      { ...main, claims: { ...main.claims, workflow_ref: undefined } },
      request('PUT', 'acme/web', 'latest'),
      RULE,
    ],
    ['a Kubernetes identity', k8s('ci'), request('PUT', 'acme/web', 'latest'), RULE],
    ['another branch pushes other tags', github('refs/heads/dev'), request('PUT', 'acme/web', 'dev'), undefined],
    ['… and pulls latest', github('refs/heads/dev'), request('GET', 'acme/web', 'latest'), undefined],
    ['… and pushes by digest', github('refs/heads/dev'), request('PUT', 'acme/web', A), undefined],
    [
      'latest of acme/webshop is not acme/web',
      github('refs/heads/dev'),
      request('PUT', 'acme/webshop', 'latest'),
      undefined,
    ],
  ]);
});

describe('digest-only-production.yaml', () => {
  const RULE = 'prod-deploys-pull-by-digest';
  const deployer = k8s('prod-eu');
  table('digest-only-production.yaml', [
    ['a prod deployer GETs a manifest by tag', deployer, request('GET', 'prod/api', 'v1.0.0'), RULE],
    ['… HEADs one by tag', deployer, request('HEAD', 'prod/api/worker', 'latest'), RULE],
    ['… by digest', deployer, request('GET', 'prod/api', A), undefined],
    ['… a blob', deployer, request('GET', 'prod/api', A, { kind: 'blob' }), undefined],
    ['… referrers of a digest', deployer, request('GET', 'prod/api', A, { kind: 'referrers' }), undefined],
    ['… a tag outside prod/', deployer, request('GET', 'staging/api', 'v1.0.0'), undefined],
    ['a staging deployer by tag', k8s('staging'), request('GET', 'prod/api', 'v1.0.0'), undefined],
    [
      'the same namespace under another issuer',
      k8s('prod-eu', 'other-cluster'),
      request('GET', 'prod/api', 'v1.0.0'),
      undefined,
    ],
    [
      'CI resolves the tag to find the digest',
      github('refs/heads/main'),
      request('HEAD', 'prod/api', 'v1.0.0'),
      undefined,
    ],
  ]);
});
