import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildProxy, type ChildProxy } from '../../helpers/child-proxy.js';
import { runBuiltBin } from '../../helpers/cli.js';
import { ciIssuer } from '../../support/issuer.js';
import { requestToken } from '../../support/token.js';

/**
 * The decision log and `policy replay` (issue 24, CONTRACT §9): the built proxy issues tokens with
 * `audit.decisionLog` on; replaying the log under the same policies changes nothing (exit 0), under
 * a stricter policy it names exactly the decisions that flip (exit 1), and a damaged log is exit 2
 * naming the line.
 */
let proxy: ChildProxy;
let dir: string;
let log: string;

const CURRENT = `rules:
  - name: team-pull
    actions: [pull]
    when: 'identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")'
  - name: team-push
    actions: [push]
    when: 'identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")'
`;
const STRICTER = `${CURRENT}  - name: no-prod-push
    effect: deny
    actions: [push]
    when: 'request.repository.endsWith("/prod")'
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-replay-'));
  for (const [name, text] of [
    ['current', CURRENT],
    ['stricter', STRICTER],
  ] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'policy.yaml'), text);
  }
  log = join(dir, 'decisions.jsonl');
  proxy = await startChildProxy('http://127.0.0.1:9', {
    policies: join(dir, 'current'),
    audit: { claims: ['team'], decisionLog: { path: log } },
  });
});
afterAll(async () => {
  await proxy?.stop();
});

const replay = (policies: string, file = log) =>
  runBuiltBin('registry-auth-proxy', ['policy', 'replay', '--log', file, '--policies', join(dir, policies)]);

describe('decision log and policy replay', () => {
  it('logs each /token decision (identity, listed claims, scopes, outcome; never a token)', async () => {
    const issuer = await ciIssuer();
    const id = await issuer.mint({ sub: 'job-7' });
    const scopes = [
      ['repository:team-a/app:pull,push'],
      ['repository:team-a/prod:pull,push'],
      ['repository:team-b/x:pull'],
    ];
    for (const s of scopes)
      expect((await requestToken(proxy.url, id, s, { service: 'registry.test' })).status).toBe(200);
    expect(await proxy.stop()).toBe(0); // SIGTERM: the log's queue is flushed
    const text = readFileSync(log, 'utf8');
    expect(text).not.toContain(id);
    expect(text).not.toMatch(/eyJ/); // no JWT of any kind
    const records = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(3);
    expect(records[1]).toMatchObject({
      schema: 'rap.decision/v1',
      policy: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      identity: { issuerName: 'ci', issuer: 'https://ci.test', subject: 'job-7' },
      claims: { iss: 'https://ci.test', sub: 'job-7', team: 'team-a' },
      request: { service: 'registry.test', clientIP: '127.0.0.1' },
      decisions: [
        {
          scope: { type: 'repository', name: 'team-a/prod', actions: ['pull', 'push'] },
          granted: ['pull', 'push'],
          rules: ['team-pull', 'team-push'],
        },
      ],
    });
    expect(Object.keys(records[1]!.claims as object).sort()).toEqual(['iss', 'sub', 'team']);
    expect(records[2]).toMatchObject({ decisions: [{ granted: [], rules: [] }] });
  });

  it('the same policies: nothing changes, exit 0', async () => {
    const r = await replay('current');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^replayed 3 decisions under policies sha256:\w+ \(the policies they were logged under\): 0 changed\n$/,
    );
    expect(r.code).toBe(0);
  });

  it('a stricter policy: exactly the decisions it flips, with the rule that decides now; exit 1', async () => {
    const r = await replay('stricter');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^line 2 \(\S+ \S+\) ci:job-7 repository:team-a\/prod:pull,push: pull,push → pull: push denied by rule no-prod-push \(was: team-pull, team-push\)$/,
    );
    expect(r.stderr).toContain('replayed 3 decisions');
    expect(r.stderr).toContain(': 1 changed');
    expect(r.code).toBe(1);
  });

  it('a damaged log or a missing one is exit 2, naming the line', async () => {
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    const broken = join(dir, 'broken.jsonl');
    writeFileSync(broken, [lines[0], lines[1]!.slice(0, 40), lines[2]].join('\n'));
    const r = await replay('current', broken);
    expect(r.stderr).toContain(`${broken}:2: not JSON`);
    expect(r.code).toBe(2);

    const wrong = join(dir, 'wrong.jsonl');
    writeFileSync(wrong, `${lines[0]}\n${JSON.stringify({ ...JSON.parse(lines[1]!), decisions: 'all' })}\n`);
    const w = await replay('current', wrong);
    expect(w.stderr).toContain(`${wrong}:2: not a rap.decision/v1 record: decisions:`);
    expect(w.code).toBe(2);

    const missing = await replay('current', join(dir, 'nope.jsonl'));
    expect(missing.stderr).toContain('--log: cannot read');
    expect(missing.code).toBe(2);
  });
});
