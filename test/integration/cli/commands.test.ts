import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { runCli } from '../../helpers/cli.js';
import { startKubeApi, type KubeApi } from '../../fixtures/kube-api.js';
import { TestIssuer } from '../../support/issuer.js';

let dir: string;
let api: KubeApi;
let issuer: TestIssuer;

/** A GitHub-Actions-shaped identity token of the config's `github` issuer. */
function token(claims: Record<string, unknown>): Promise<string> {
  return issuer.mint(claims, { ttl: 300 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-cli-'));
  issuer = await TestIssuer.create({
    issuer: 'https://ci.test',
    audience: 'registry.test',
    kid: 'k',
    claims: { sub: 'repo:acme/web:ref:refs/heads/main' },
  });
  issuer.writeJwks(join(dir, 'jwks.json'));
  writeFileSync(
    join(dir, 'config.yaml'),
    `service: registry.test\npolicies: ${join(process.cwd(), 'policies/examples/github-actions.yaml')}\nissuers:\n  - {name: github, issuer: https://ci.test, preset: github-actions, jwksFile: ${join(dir, 'jwks.json')}}\n`,
  );
  api = await startKubeApi({ requireBearer: 'reader' });
  writeFileSync(join(dir, 'ca.crt'), api.caPem);
  writeFileSync(join(dir, 'bearer'), 'reader');
});
afterAll(async () => {
  await api.stop();
});

describe('verify', () => {
  it('prints the claims and exits 0 for a valid token', async () => {
    const r = await runCli(['verify', await token({ repository: 'acme/web' }), '--config', join(dir, 'config.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      valid: true,
      issuerName: 'github',
      identity: { preset: 'github-actions' },
      claims: { repository: 'acme/web' },
    });
  });

  it('reads the token from stdin and exits 1 with the reason', async () => {
    const r = await runCli(['verify', '-', '--config', join(dir, 'config.yaml')], {
      stdin: await token({ exp: 1000 }),
    });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, reason: 'expired' });
    expect(r.stderr).toMatch(/expired/);
  });

  it('verifies against an HTTPS issuer with --issuer --ca-file --bearer-token-file', async () => {
    const t = await api.mintBound({ namespace: 'team-x', audiences: ['registry.test'] });
    const args = [
      'verify',
      t,
      '--issuer',
      api.issuer,
      '--ca-file',
      join(dir, 'ca.crt'),
      '--bearer-token-file',
      join(dir, 'bearer'),
      '--audience',
      'registry.test',
      '--preset',
      'kubernetes',
    ];
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).identity).toMatchObject({ namespace: 'team-x' });
    const wrongAud = await runCli([...args.slice(0, -4), '--audience', 'other', '--preset', 'kubernetes']);
    expect(wrongAud.code).toBe(1);
    expect(JSON.parse(wrongAud.stdout).reason).toBe('wrong_audience');
  });

  it('exits 2 on usage and config errors', async () => {
    expect((await runCli(['verify', 'x'])).code).toBe(2);
    writeFileSync(join(dir, 'bad.yaml'), 'issuers: [{name: a}]\n');
    const r = await runCli(['verify', 'x', '--config', join(dir, 'bad.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('issuers[0].issuer');
  });
});

describe('policy test', () => {
  it('prints the grant and the matched rules for claims from a JWT; a scope nothing grants is a denial (exit 1, "no rule matched")', async () => {
    const jwt = await token({ repository: 'acme/web', repository_owner_id: '1234567', ref: 'refs/heads/main' });
    const r = await runCli([
      'policy',
      'test',
      '--claims',
      jwt,
      '--scope',
      'repository:acme/web:pull,push',
      '--scope',
      'repository:other/x:pull',
      '--config',
      join(dir, 'config.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.identity).toMatchObject({ issuerName: 'github', preset: 'github-actions' });
    expect(out.decisions[0]).toMatchObject({
      scope: 'repository:acme/web:pull,push',
      result: 'granted',
      granted: ['pull', 'push'],
    });
    expect(out.decisions[0].matched.map((m: { name: string }) => m.name)).toEqual([
      'github-repo-pulls-its-images',
      'github-main-pushes-its-images',
    ]);
    expect(out.decisions[1]).toMatchObject({ result: 'denied', reason: 'no rule matched', granted: [], matched: [] });
    expect(r.stderr).toBe('granted repository:acme/web:pull,push\ndenied  repository:other/x:pull: no rule matched\n');
    // every scope granted: exit 0
    const ok = await runCli([
      'policy',
      'test',
      '--claims',
      jwt,
      '--scope',
      'repository:acme/web:pull',
      '--config',
      join(dir, 'config.yaml'),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('granted repository:acme/web:pull\n');
  });

  it('takes claims from a JSON file with an explicit preset; a partial grant exits 1 and names what no rule grants, or the deny rule', async () => {
    writeFileSync(
      join(dir, 'claims.json'),
      JSON.stringify({
        sub: 'system:serviceaccount:team-a:builder',
        'kubernetes.io': { namespace: 'team-a', serviceaccount: { name: 'builder' } },
      }),
    );
    const r = await runCli([
      'policy',
      'test',
      '--claims',
      join(dir, 'claims.json'),
      '--preset',
      'kubernetes',
      '--scope',
      'repository:team-a/app:pull,push,delete',
      '--policy',
      'policies',
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).decisions[0]).toMatchObject({
      result: 'partial',
      granted: ['pull', 'push'],
      reason: 'no rule grants delete (matched: namespace-owns-its-prefix)',
    });
    expect(r.stderr).toBe(
      'partial repository:team-a/app:pull,push,delete: no rule grants delete (matched: namespace-owns-its-prefix)\n',
    );
    writeFileSync(
      join(dir, 'deny.yaml'),
      'rules:\n  - {name: all, actions: ["*"]}\n  - {name: no-deletes, effect: deny, actions: [delete]}\n',
    );
    const denied = await runCli([
      'policy',
      'test',
      '--claims',
      '{}',
      '--scope',
      'repository:a/b:delete',
      '--policy',
      join(dir, 'deny.yaml'),
    ]);
    expect(denied.code).toBe(1);
    expect(JSON.parse(denied.stdout).decisions[0]).toMatchObject({
      result: 'denied',
      reason: 'delete denied by rule no-deletes',
    });
  });

  it('exits 2 on a bad scope or a broken policy', async () => {
    expect(
      (await runCli(['policy', 'test', '--claims', '{}', '--scope', 'nonsense', '--policy', 'policies'])).code,
    ).toBe(2);
    writeFileSync(join(dir, 'broken.yaml'), 'rules: [{name: r1, actions: [pull], when: "identity.nope"}]');
    const r = await runCli([
      'policy',
      'test',
      '--claims',
      '{}',
      '--scope',
      'repository:a:pull',
      '--policy',
      join(dir, 'broken.yaml'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.yaml: rule "r1"/);
  });
});

describe('keys generate', () => {
  it('prints a PKCS#8 key, and with --cert a matching self-signed certificate', async () => {
    const r = await runCli(['keys', 'generate', '--alg', 'RS256']);
    expect(r.code).toBe(0);
    expect(createPrivateKey(r.stdout).asymmetricKeyType).toBe('rsa');
    const out = join(dir, 'signer');
    const c = await runCli(['keys', 'generate', '--cert', '--out', out]);
    expect(c.code, c.stderr).toBe(0);
    expect(statSync(`${out}.pem`).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(`${out}.crt`));
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(`${out}.pem`)))).toBe(true);
    expect((await runCli(['keys', 'generate', '--alg', 'HS256'])).code).toBe(2);
  });
});

describe('serve', () => {
  it('exits 2 before listening on a config error, naming file and key path', async () => {
    writeFileSync(join(dir, 'serve-bad.yaml'), 'listen: 127.0.0.1:0\ntokens: {ttl: 1s}\n');
    const r = await runCli(['--config', join(dir, 'serve-bad.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(dir, 'serve-bad.yaml')}: tokens.ttl:`);
  });

  it('exits 2 on an invalid policy, naming file, rule and CEL error', async () => {
    writeFileSync(join(dir, 'p.yaml'), 'rules: [{name: typo, actions: [pull], when: "identity.namespce == \\"a\\""}]');
    const r = await runCli([
      '--listen',
      '127.0.0.1:0',
      '--issuer',
      'http://127.0.0.1:9',
      '--audience',
      'registry.test',
      '--policy',
      join(dir, 'p.yaml'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/p\.yaml: rule "typo": invalid CEL/);
  });
});
