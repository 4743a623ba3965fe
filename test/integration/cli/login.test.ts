import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url } from 'jose';
import { checkLoginToken, formatSpan } from '../../../src/clients/login.js';
import { tokenSource } from '../../../src/cli/commands/login.js';
import { ROOT, runBuiltBin, type CliResult } from '../../helpers/cli.js';

/**
 * `registry-auth-proxy login` (issue 10): reads RAP_TOKEN_FILE when --token-file is absent and `-`
 * as stdin, refuses what the proxy would refuse anyway (not a JWT, expired, no exp) and Kubernetes
 * API-server tokens, and says on stderr what it wrote, where, and until when. Spawns the built CLI.
 */

function login(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<CliResult> {
  // HOME points into the test directory: a default Docker config must never be the tester's own.
  return runBuiltBin('registry-auth-proxy', ['login', ...args], {
    cwd: dir,
    cleanEnv: true,
    timeoutMs: 20_000,
    stdin: opts.stdin,
    env: { HOME: dir, ...opts.env },
  });
}

const now = Math.floor(Date.now() / 1000);
const jwt = (claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'ES256', kid: 'k' }) =>
  `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}.c2ln`;
const GOOD = jwt({ iss: 'https://ci.test', sub: 'job-7', aud: 'registry.test', exp: now + 2 * 3600 + 30 });
const EXPIRED = jwt({ iss: 'https://ci.test', sub: 'job-7', aud: 'registry.test', exp: now - 90 });
const NO_EXP = jwt({ iss: 'https://ci.test', sub: 'job-7', aud: 'registry.test' });
const API = jwt({
  iss: 'https://kubernetes.default.svc.cluster.local',
  aud: ['https://kubernetes.default.svc.cluster.local'],
  sub: 'system:serviceaccount:a:b',
  'kubernetes.io': { namespace: 'a' },
  exp: now + 3600,
});

let dir: string;
const file = (name: string, content: string) => {
  const f = join(dir, name);
  writeFileSync(f, content);
  return f;
};
const authOf = (doc: string, registry: string) =>
  Buffer.from(JSON.parse(doc).auths[registry].auth, 'base64').toString();

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'rap-login-cli-'));
});

describe('where the token comes from', () => {
  it('reads RAP_TOKEN_FILE when --token-file is absent, and says what it wrote, where and until when', async () => {
    const docker = join(dir, 'env-docker');
    const r = await login(['registry.example.com'], {
      env: { RAP_TOKEN_FILE: file('env-token', `${GOOD}\n`), DOCKER_CONFIG: docker },
    });
    expect(r.code, r.stderr).toBe(0);
    const written = join(docker, 'config.json');
    expect(authOf(readFileSync(written, 'utf8'), 'registry.example.com')).toBe(`registry-auth-proxy:${GOOD}`);
    expect(statSync(written).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(
      new RegExp(
        `^login: wrote registry\\.example\\.com \\(username registry-auth-proxy, job-7 \\(https://ci\\.test\\)\\) to ${written.replace(/[.]/g, '\\.')}; the token expires ${new Date((now + 2 * 3600 + 30) * 1000).toISOString().replace(/[.]/g, '\\.')}, in [12]h( \\d+m)?: log in again after that\\n$`,
      ),
    );
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toContain(GOOD);
  });

  it('reads the token from stdin with --token-file -, into a containers auth.json', async () => {
    const authFile = join(dir, 'stdin-auth.json');
    const r = await login(['127.0.0.1:8080', '--token-file', '-', '--auth-file', authFile], { stdin: `${GOOD}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(authOf(readFileSync(authFile, 'utf8'), '127.0.0.1:8080')).toBe(`registry-auth-proxy:${GOOD}`);
    expect(r.stderr).toContain(`to ${authFile}; the token expires`);
  });

  it('--token-file wins over RAP_TOKEN_FILE; with neither (and no projected token) it is a usage error', async () => {
    const docker = join(dir, 'flag-docker');
    const r = await login(['registry.example.com', '--token-file', file('flag-token', GOOD)], {
      env: { RAP_TOKEN_FILE: join(dir, 'missing'), DOCKER_CONFIG: docker },
    });
    expect(r.code, r.stderr).toBe(0);
    const none = await login(['registry.example.com'], { env: { DOCKER_CONFIG: join(dir, 'none-docker') } });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /no identity token: give --token-file <file> \(or --token-file - to read stdin\), or set RAP_TOKEN_FILE/,
    );
    expect(existsSync(join(dir, 'none-docker'))).toBe(false);
    // (pure) the precedence, including the projected-token default
    expect(tokenSource(undefined, {}, (f) => f === '/var/run/secrets/tokens/registry-token')).toBe(
      '/var/run/secrets/tokens/registry-token',
    );
    expect(tokenSource(undefined, { RAP_TOKEN_FILE: '/t' }, () => true)).toBe('/t');
    expect(tokenSource('-', { RAP_TOKEN_FILE: '/t' }, () => true)).toBe('-');
    expect(tokenSource(undefined, {}, () => false)).toBeUndefined();
  });

  it('prints a dockerconfigjson Secret and names it on stderr', async () => {
    const r = await login(
      ['registry.example.com', '--token-file', '-', '--k8s-secret', 'pull', '--namespace', 'team-a', '-o', 'json'],
      { stdin: GOOD },
    );
    expect(r.code, r.stderr).toBe(0);
    const secret = JSON.parse(r.stdout);
    expect(secret).toMatchObject({
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name: 'pull', namespace: 'team-a' },
    });
    expect(r.stderr).toMatch(
      /^login: printed Secret team-a\/pull \(kubernetes\.io\/dockerconfigjson\) for registry\.example\.com on stdout: job-7 \(https:\/\/ci\.test\); the token expires /,
    );
  });
});

describe('what it refuses to write (exit 1, nothing written, the reason on stderr)', () => {
  const cases: [string, string, RegExp][] = [
    [
      'an expired token',
      EXPIRED,
      /nothing written: the token expired at .* \(\d+m ago\): get a fresh identity token \(token from .*\)/,
    ],
    ['a token without exp', NO_EXP, /nothing written: the token has no exp \(expiry\) claim/],
    ['something that is not a JWT', 'hunter2', /nothing written: the token is not a JWT/],
    ['a JWT-shaped string whose parts are not JSON', 'abc.def.ghi', /nothing written: the token is not a JWT/],
    [
      'a Kubernetes API-server token',
      API,
      /nothing written: refusing a Kubernetes API-server credential: its audience "https:\/\/kubernetes\.default\.svc\.cluster\.local" is the Kubernetes API server/,
    ],
  ];
  it.each(cases)('%s', async (_name, token, message) => {
    const docker = join(dir, `refused-${Math.random().toString(36).slice(2)}`);
    const r = await login(['registry.example.com', '--token-file', '-'], {
      stdin: token,
      env: { DOCKER_CONFIG: docker },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain(token);
    expect(r.stdout).toBe('');
    expect(existsSync(docker)).toBe(false);
  });

  it('an empty or unreadable token file', async () => {
    const empty = await login(['registry.example.com', '--token-file', file('empty', '\n')]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/login: .*empty is empty/);
    const missing = await login(['registry.example.com', '--token-file', join(dir, 'no-such-file')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/login: cannot read .*no-such-file/);
  });
});

describe('checkLoginToken (pure)', () => {
  it('decodes without verifying and reports expiry, issuer and subject', () => {
    const c = checkLoginToken(GOOD, now);
    expect(c).toEqual({
      ok: true,
      expiresAt: new Date((now + 2 * 3600 + 30) * 1000),
      issuer: 'https://ci.test',
      subject: 'job-7',
      warnings: [],
    });
    expect(checkLoginToken(GOOD, now + 3 * 3600)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/expired/),
    });
    expect(checkLoginToken(jwt({ exp: 'soon' }), now)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/exp is not a number/),
    });
    expect(checkLoginToken(jwt({ exp: now + 60, nbf: now + 3600 }), now)).toMatchObject({
      ok: true,
      warnings: [expect.stringMatching(/not valid before/)],
    });
    expect(checkLoginToken('a.b', now)).toMatchObject({ ok: false });
  });

  it('formats spans for people', () => {
    expect(formatSpan(42)).toBe('42s');
    expect(formatSpan(3 * 3600 + 5 * 60)).toBe('3h 5m');
    expect(formatSpan(86_400 + 60)).toBe('1d 1m');
  });
});
