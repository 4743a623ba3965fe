import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';

/** Issue 21: `policy test --method …` decides a /v2/ request through the request-time rules; bad rules stop it (exit 2). */
let dir: string;
const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rap-policy-request-'));
  const ref = 'refs/heads/main';
  writeFileSync(
    join(dir, 'claims.json'),
    JSON.stringify({
      sub: `repo:acme/web:ref:${ref}`,
      repository: 'acme/web',
      repository_owner_id: '1234567',
      ref,
      workflow_ref: `acme/web/.github/workflows/release.yml@${ref}`,
    }),
  );
  writeFileSync(
    join(dir, 'old-key.yaml'),
    'rules:\n  - {name: old, effect: deny, at: request, actions: [push], when: \'request.method == "PUT"\'}\n',
  );
  writeFileSync(
    join(dir, 'unguarded.yaml'),
    'rules:\n  - {name: bare, effect: deny, phase: request, actions: [push], when: \'request.tag == "latest"\'}\n',
  );
  writeFileSync(
    join(dir, 'never.yaml'),
    'rules:\n  - {name: put-only, effect: deny, actions: [push], when: \'request.method == "PUT"\'}\n',
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

// the shipped examples: github-actions.yaml grants acme/web, immutable-release-tags.yaml protects v* tags
const policyTest = (...args: string[]) =>
  runCli([
    'policy',
    'test',
    '--claims',
    join(dir, 'claims.json'),
    '--preset',
    'github-actions',
    '--policy',
    'policies/examples',
    '--scope',
    'repository:acme/web:pull,push',
    ...args,
  ]);

describe('policy test --method', () => {
  it('shows the request-time rule that refuses an overwrite of a release tag (exit 1), in JSON and in words', async () => {
    const r = await policyTest('--method', 'PUT', '--reference', 'v1.0.0', '--upstream-digest', A, '--digest', B);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(
      'granted repository:acme/web:pull,push\nrefused PUT manifest acme/web:v1.0.0: denied by rule acme-release-tags-are-immutable\n',
    );
    expect(JSON.parse(r.stdout).decisions[0]).toMatchObject({
      result: 'granted',
      request: { request: 'PUT manifest acme/web:v1.0.0', refused: true, rule: 'acme-release-tags-are-immutable' },
    });
  });

  it('passes the same image again, a new tag and a push by digest (exit 0)', async () => {
    for (const args of [
      ['--reference', 'v1.0.0', '--upstream-digest', A, '--digest', A],
      ['--reference', 'v1.0.1', '--digest', B],
      ['--reference', A, '--digest', A],
    ]) {
      const r = await policyTest('--method', 'PUT', ...args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(
        `passes  PUT manifest acme/web${args[1] === A ? '@' : ':'}${args[1]}: no request-time rule refuses\n`,
      );
    }
  });

  it('refuses when the upstream cannot say, naming why', async () => {
    const r = await policyTest(
      '--method',
      'PUT',
      '--reference',
      'v1.0.0',
      '--upstream-error',
      'HEAD answered 503',
      '--digest',
      A,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /refused PUT manifest acme\/web:v1\.0\.0: rule acme-release-tags-are-immutable could not be evaluated, so it refuses: upstream\.\w+ unknown: HEAD answered 503/,
    );
  });

  it('rejects a token-time rule that reads a request-time variable, and bad request flags (exit 2)', async () => {
    const bad = await policyTest('--policy', join(dir, 'never.yaml'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('policy error: ');
    expect(bad.stderr).toContain(
      'never.yaml: rule "put-only": `when` reads request.method, which only a /v2/ request has',
    );
    expect(bad.stderr).toContain('say `phase: request`');
    const kind = await policyTest('--method', 'GET', '--kind', 'image');
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('--kind must be one of manifest, blob, upload, tags, referrers, catalog');
  });

  it('rejects the old `at:` key naming the fix, and --digest where the reference decides it (exit 2)', async () => {
    const old = await policyTest('--policy', join(dir, 'old-key.yaml'));
    expect(old.code).toBe(2);
    expect(old.stderr).toContain(
      'old-key.yaml: rule "old": `at` is now `phase`: write `phase: request` (token, the default, request or both)',
    );
    const digest = await policyTest('--method', 'GET', '--reference', A, '--digest', A);
    expect(digest.code).toBe(2);
    expect(digest.stderr).toContain("--digest is the pushed manifest's digest (--method PUT --kind manifest)");
    const claimed = await policyTest('--method', 'PUT', '--reference', A, '--digest', B);
    expect(claimed.code).toBe(2);
    expect(claimed.stderr).toContain(`--digest differs from --reference ${A}`);
  });

  it('warns when a request-time rule reads request.tag without has(), and shows it refusing a digest push', async () => {
    const r = await policyTest('--policy', join(dir, 'unguarded.yaml'), '--method', 'PUT', '--reference', A);
    expect(r.stderr).toContain(
      'warning: ' +
        join(dir, 'unguarded.yaml') +
        ': rule "bare" reads request.tag without has(): on a request that has no tag the read is an error and the rule refuses it (fail closed). Fix: start `when` with has(request.tag) && …',
    );
    expect(r.stderr).toContain(
      `refused PUT manifest acme/web@${A}: rule bare could not be evaluated, so it refuses: request.tag is absent (the reference is a digest): guard the read with has(request.tag)`,
    );
  });
});
