import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeJwt } from 'jose';
import { parse as parseYaml } from 'yaml';
import type { Identity } from '../../src/identity/types.js';
import { parseScope } from '../../src/oci/scope.js';
import { lintTenantPinning, type LintIssuer } from '../../src/policy/lint.js';
import { compilePolicyText, loadPolicies } from '../../src/policy/load.js';
import { runCli } from '../helpers/cli.js';
import { startProxyProcess } from '../helpers/proxy-process.js';
import { freePort } from '../fixtures/registry.js';
import { TestIssuer } from '../support/issuer.js';
import { startTarget, type Target } from './harness.js';

/**
 * Issue 9 item 3: GitHub Actions and gitlab.com sign tokens for every tenant with one issuer. The
 * shipped example policies granted on `repository`/`project_path` alone, so any organisation or
 * group named like an internal prefix pulled and pushed. Now they pin the owner by id, and start-up
 * and `policy test` warn about rules that do not.
 */
const OUR_GITHUB_OWNER = '1234567'; // the placeholder id the shipped examples pin
const OUR_GITLAB_GROUP = '4242';
const GITHUB = 'https://token.actions.githubusercontent.com';
const GITLAB = 'https://gitlab.com';

let t: Target;
let tenant: TestIssuer;
let keyDir: string;

/** A token of `iss` (github or gitlab): both issuer entries trust the one test key. */
function mint(iss: string, claims: Record<string, unknown>): Promise<string> {
  return tenant.mint({ ...claims, iss });
}

const github = (owner: string, ownerId: string, ref = 'refs/heads/main') => ({
  sub: `repo:${owner}/web:ref:${ref}`,
  repository: `${owner}/web`,
  repository_owner: owner,
  repository_owner_id: ownerId,
  repository_id: '99',
  ref,
});
const gitlab = (groupId: string) => ({
  sub: 'project_path:acme/web:ref_type:branch:ref:main',
  project_path: 'acme/web',
  namespace_path: 'acme',
  namespace_id: groupId,
  project_id: '77',
  ref: 'main',
});

beforeAll(async () => {
  tenant = await TestIssuer.create({
    issuer: GITHUB,
    audience: 'registry.test',
    kid: 'ci-tenant',
    claims: { sub: 'job' },
  });
  keyDir = mkdtempSync(join(tmpdir(), 'rap-tenant-'));
  tenant.writeJwks(join(keyDir, 'jwks.json'));
  // The real issuer URLs (keys from a file: no network), the shipped examples as the policy.
  t = await startTarget({
    policies: resolve('policies/examples'),
    issuers: [
      { name: 'github', preset: 'github-actions', audiences: ['registry.test'], jwksFile: join(keyDir, 'jwks.json') },
      { name: 'gitlab', preset: 'gitlab', audiences: ['registry.test'], jwksFile: join(keyDir, 'jwks.json') },
    ],
  });
});
afterAll(() => t?.stop());
beforeEach(() => {
  t.upstream.requests.length = 0;
});

async function v2(path: string, token: string, init: RequestInit = {}) {
  const r = await fetch(`${t.proxy.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  return {
    status: r.status,
    challenge: r.headers.get('www-authenticate') ?? '',
    body: text ? (JSON.parse(text) as { errors: { code: string; message: string }[] }) : undefined,
  };
}

async function grantedFor(identity: string, scope: string): Promise<{ token: string; access: unknown }> {
  const r = await t.tokenFor(identity, [scope]);
  expect(r.status).toBe(200);
  return { token: r.body.token!, access: decodeJwt(r.body.token!).access };
}

describe('shipped example policies against a foreign tenant of the same public issuer', () => {
  it('GitHub: another organisation with the same repository path gets nothing; ours gets pull and push', async () => {
    const foreign = await grantedFor(await mint(GITHUB, github('acme', '999999')), 'repository:acme/web:pull,push');
    expect(foreign.access).toEqual([]);
    for (const [path, method] of [
      ['/v2/acme/web/manifests/latest', 'GET'],
      ['/v2/acme/web/blobs/uploads/', 'POST'],
    ] as const) {
      const r = await v2(path, foreign.token, { method });
      // refused at /token, so refused here with the reason (403: a new token would be the same)
      expect(r.status).toBe(403);
      expect(r.challenge).toBe('');
      expect(r.body?.errors[0]?.code).toBe('DENIED');
      expect(r.body?.errors[0]?.message).toContain('on repository acme/web: no rule grants');
    }
    expect(t.upstream.requests).toEqual([]);

    const ours = await grantedFor(
      await mint(GITHUB, github('acme', OUR_GITHUB_OWNER)),
      'repository:acme/web:pull,push',
    );
    expect(ours.access).toEqual([{ type: 'repository', name: 'acme/web', actions: ['pull', 'push'] }]);
    expect((await v2('/v2/acme/web/manifests/latest', ours.token)).status).toBe(200);
    expect(t.upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v2/acme/web/manifests/latest']);
  });

  it('GitLab: another group with the same project path gets nothing; ours gets pull and push', async () => {
    const foreign = await grantedFor(await mint(GITLAB, gitlab('31337')), 'repository:acme/web:pull,push');
    expect(foreign.access).toEqual([]);
    const r = await v2('/v2/acme/web/blobs/uploads/', foreign.token, { method: 'POST' });
    expect(r.status).toBe(403);
    expect(r.body?.errors[0]?.code).toBe('DENIED');
    expect(t.upstream.requests).toEqual([]);

    const ours = await grantedFor(await mint(GITLAB, gitlab(OUR_GITLAB_GROUP)), 'repository:acme/web:pull,push');
    expect(ours.access).toEqual([{ type: 'repository', name: 'acme/web', actions: ['pull', 'push'] }]);
  });
});

describe('every other shipped GitHub policy pins the owner', () => {
  const ctx = { service: 'registry.test', clientIP: '127.0.0.1' };
  const gh = (claims: Record<string, unknown>): Identity => ({
    issuerName: 'github',
    issuer: GITHUB,
    subject: String(claims.sub),
    preset: 'github-actions',
    claims,
  });
  // the gateway overlay's policy and the Action README's snippet (what users copy)
  const readmeYaml = /```yaml\n(rules:[\s\S]*?)```/.exec(readFileSync('actions/docker-login/README.md', 'utf8'))![1]!;
  const engines = {
    'deploy/overlays/gateway/policies/github-actions.yaml': loadPolicies(
      'deploy/overlays/gateway/policies/github-actions.yaml',
    ),
    'actions/docker-login/README.md': compilePolicyText(readmeYaml, 'actions/docker-login/README.md'),
  };
  it.each(Object.keys(engines))('%s: foreign owner denied, ours granted', (name) => {
    const engine = engines[name as keyof typeof engines];
    expect(
      engine.decide(gh(github('acme', '999999')), parseScope('repository:acme/web:pull,push'), ctx).granted,
    ).toEqual([]);
    expect(
      engine.decide(gh(github('acme', OUR_GITHUB_OWNER)), parseScope('repository:acme/web:pull,push'), ctx).granted,
    ).toEqual(['pull', 'push']);
  });
});

describe('lint: rules for multi-tenant issuers that never pin the owner', () => {
  const issuers: LintIssuer[] = [
    { name: 'cluster', issuer: 'https://kubernetes.default.svc', preset: 'kubernetes' },
    { name: 'github', issuer: GITHUB, preset: 'github-actions' },
    { name: 'gitlab', issuer: GITLAB, preset: 'gitlab' },
    { name: 'google', issuer: 'https://accounts.google.com', preset: 'google' },
  ];
  const lint = (when: string | undefined, effect = 'allow', list = issuers) =>
    lintTenantPinning(
      compilePolicyText(
        `rules: [{name: r, effect: ${effect}, actions: [pull, push]${when ? `, when: ${JSON.stringify(when)}` : ''}}]`,
        'p.yaml',
      ).rules,
      list,
    ).map((w) => `${w.issuer}:${w.pinned}`);

  it('flags the old, tenant-blind examples and names file, rule, issuer and the fix', () => {
    const old =
      'identity.preset == "github-actions" && (request.repository == claims.repository || request.repository.startsWith(claims.repository + "/"))';
    expect(lint(old)).toEqual(['github:none']);
    const [w] = lintTenantPinning(
      compilePolicyText(`rules: [{name: gh-unpinned, actions: [pull], when: ${JSON.stringify(old)}}]`, 'old.yaml')
        .rules,
      issuers,
    );
    expect(w!.message).toMatch(
      /^old\.yaml: rule "gh-unpinned" grants \[pull\] to issuer "github" \(github-actions\) but never pins the owner/,
    );
    expect(w!.message).toContain('claims.repository_owner_id == "<owner id>"');
    expect(lint('identity.preset == "gitlab" && request.repository.startsWith(claims.project_path + "/")')).toEqual([
      'gitlab:none',
    ]);
    expect(lint('identity.issuerName == "google" && request.repository.startsWith("gce-base/")')).toEqual([
      'google:none',
    ]);
  });

  it('does not flag rules pinned by id, on every path the rule can match', () => {
    expect(
      lint(
        'identity.preset == "github-actions" && claims.repository_owner_id == "1" && request.repository == claims.repository',
      ),
    ).toEqual([]);
    expect(lint('identity.issuerName == "github" && claims["repository_owner_id"] in ["1", "2"]')).toEqual([]);
    expect(lint('identity.preset == "gitlab" && claims.namespace_id == "4242"')).toEqual([]);
    expect(lint('identity.preset == "google" && claims.google.compute_engine.project_id == "acme-prod"')).toEqual([]);
    expect(lint('identity.preset == "google" && claims.email.endsWith("@acme-prod.iam.gserviceaccount.com")')).toEqual(
      [],
    );
    // an issuer-specific branch per preset, each pinned
    expect(
      lint(
        '(identity.preset == "github-actions" && claims.repository_owner_id == "1") || (identity.preset == "gitlab" && claims.namespace_id == "2")',
      ),
    ).toEqual([]);
  });

  it('flags a pin that another branch can bypass, and a pin by name only', () => {
    expect(
      lint(
        'identity.preset == "github-actions" && (claims.repository_owner_id == "1" || request.repository.startsWith("public/"))',
      ),
    ).toEqual(['github:none']);
    expect(lint('identity.preset == "github-actions" && !(claims.repository_owner_id == "1")')).toEqual([
      'github:none',
    ]);
    expect(lint('identity.preset == "github-actions" && claims.repository_owner_id != "1"')).toEqual(['github:none']);
    expect(lint('identity.preset == "github-actions" && claims.repository_owner == "acme"')).toEqual(['github:name']);
    expect(lint('identity.preset == "github-actions" && claims.repository.startsWith("acme/")')).toEqual([
      'github:name',
    ]);
    // "acme" without the slash also matches "acme-evil/…": not a pin at all
    expect(lint('identity.preset == "github-actions" && claims.repository.startsWith("acme")')).toEqual([
      'github:none',
    ]);
    // a pin compared with another claim, not a constant, pins nothing
    expect(lint('identity.preset == "github-actions" && claims.repository_owner_id == claims.actor_id')).toEqual([
      'github:none',
    ]);
  });

  it('applies a rule only to the issuers its `when` can match; deny rules never warn', () => {
    expect(lint('identity.preset == "kubernetes" && request.repository.startsWith(identity.namespace + "/")')).toEqual(
      [],
    );
    expect(lint('identity.issuerName == "cluster"')).toEqual([]);
    expect(lint('identity.issuer == "https://gitlab.com"')).toEqual(['gitlab:none']);
    expect(lint('identity.preset in ["gitlab", "google"]')).toEqual(['gitlab:none', 'google:none']);
    expect(lint('identity.preset != "kubernetes"')).toEqual(['github:none', 'gitlab:none', 'google:none']);
    expect(lint(undefined)).toEqual(['github:none', 'gitlab:none', 'google:none']);
    expect(lint('request.repository.startsWith("public/")', 'deny')).toEqual([]);
    // `--issuer https://token.actions.githubusercontent.com` without a preset is still GitHub's shared issuer
    expect(lint('identity.issuerName == "default"', 'allow', [{ name: 'default', issuer: GITHUB }])).toEqual([
      'default:none',
    ]);
  });

  it('finds nothing to warn about in the shipped policies and examples', () => {
    const rules = ['policies', 'policies/examples', 'deploy/base/policies', 'deploy/overlays/gateway/policies'].flatMap(
      (p) => loadPolicies(p).rules,
    );
    expect(lintTenantPinning(rules, issuers)).toEqual([]);
    // the gateway overlay's own config, with its `github` issuer
    const gateway = parseYaml(readFileSync('deploy/overlays/gateway/config.yaml', 'utf8')) as { issuers: LintIssuer[] };
    expect(
      lintTenantPinning(
        rules,
        gateway.issuers.map((i) => ({ ...i, issuer: i.issuer ?? GITHUB })),
      ),
    ).toEqual([]);
  });
});

describe('the warnings reach the operator', () => {
  const unpinned = `rules:
  - name: gh-unpinned
    actions: [pull, push]
    when: identity.preset == "github-actions" && request.repository == claims.repository
`;

  it('policy test prints them on stderr and keeps stdout JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-tenant-cli-'));
    writeFileSync(join(dir, 'unpinned.yaml'), unpinned);
    writeFileSync(join(dir, 'claims.json'), JSON.stringify({ iss: GITHUB, ...github('acme', '999999') }));
    const args = [
      'policy',
      'test',
      '--claims',
      join(dir, 'claims.json'),
      '--scope',
      'repository:acme/web:pull',
      '--preset',
      'github-actions',
      '--issuer-name',
      'github',
    ];
    const r = await runCli([...args, '--policy', join(dir, 'unpinned.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).decisions[0].granted).toEqual(['pull']);
    expect(r.stderr).toMatch(
      /^warning: .*unpinned\.yaml: rule "gh-unpinned" grants \[pull, push\] to issuer "github" \(github-actions\) but never pins the owner.*repository_owner_id/m,
    );

    // with --config, against the configured issuers
    writeFileSync(
      join(dir, 'config.yaml'),
      `service: registry.test\npolicies: ${join(dir, 'unpinned.yaml')}\nissuers:\n  - {name: gh, preset: github-actions, jwksFile: ${join(keyDir, 'jwks.json')}}\n`,
    );
    const c = await runCli([
      'policy',
      'test',
      '--claims',
      join(dir, 'claims.json'),
      '--scope',
      'repository:acme/web:pull',
      '--config',
      join(dir, 'config.yaml'),
    ]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/warning: .*rule "gh-unpinned" .* issuer "gh"/);

    const pinned = await runCli([...args, '--policy', 'policies/examples/github-actions.yaml']);
    // a denial (the foreign owner is pinned out): exit 1, still no warning
    expect(pinned.code, pinned.stderr).toBe(1);
    expect(pinned.stderr).not.toMatch(/warning/);
    expect(JSON.parse(pinned.stdout).decisions[0].granted).toEqual([]);
  });

  it('serve logs one warning per unpinned rule and issuer at start-up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-tenant-serve-'));
    writeFileSync(join(dir, 'unpinned.yaml'), unpinned);
    const port = await freePort();
    writeFileSync(
      join(dir, 'config.yaml'),
      `listen: 127.0.0.1:${port}\nservice: registry.test\npolicies: ${join(dir, 'unpinned.yaml')}\nissuers:\n  - {name: github, preset: github-actions, jwksFile: ${join(keyDir, 'jwks.json')}}\n`,
    );
    const proc = await startProxyProcess(join(dir, 'config.yaml'), `http://127.0.0.1:${port}`);
    try {
      let line: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && !line; i++) {
        line = proc
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.rule === 'gh-unpinned');
        if (!line) await new Promise((r) => setTimeout(r, 100));
      }
      expect(line).toMatchObject({
        level: 40,
        file: join(dir, 'unpinned.yaml'),
        rule: 'gh-unpinned',
        issuer: 'github',
        preset: 'github-actions',
        ownerPinned: 'none',
      });
      expect(line!.msg).toContain('claims.repository_owner_id');
    } finally {
      await proc.stop();
    }
  });
});
