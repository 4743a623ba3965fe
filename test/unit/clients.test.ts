import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRequest, ProviderError, registryOf, respond } from '../../src/clients/credential-provider.js';
import { runHelper } from '../../src/clients/docker-credential-helper.js';
import { dockerConfigSecret, dockerRefreshLogin, loginToFile, mergeAuth } from '../../src/clients/login.js';
import { readIdentityToken, tokenFreshness, TokenSourceError } from '../../src/clients/token-source.js';
import { needsRenewal, withPullSecret, wantedFor, buildSecret } from '../../src/clients/controller/reconcile.js';

// A fixed JWT (header.payload.signature) whose payload is {"sub":"system:serviceaccount:team-a:builder","exp":2000003600}
const EXP = 2_000_003_600;
const JWT = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:team-a:builder', exp: EXP })).toString('base64url')}.c2ln`;
const NOW = (EXP - 3600) * 1000;

const golden = (name: string) => JSON.parse(readFileSync(join('test/golden', name), 'utf8'));

describe('kubelet credential provider protocol (golden)', () => {
  it('service-account mode: returns the pod token, cache bounded by its exp', () => {
    const req = golden('kubelet/sa-request.json');
    req.serviceAccountToken = JWT;
    const res = respond(parseRequest(JSON.stringify(req)), { env: {}, now: () => NOW });
    const want = golden('kubelet/sa-response.json');
    want.auth['registry.example.com'].password = JWT;
    expect(res).toEqual(want);
  });

  it('node mode: reads the token file afresh on every call', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-kp-'));
    writeFileSync(join(dir, 'token'), `${JWT}\n`);
    const env = { RAP_TOKEN_FILE: join(dir, 'token') };
    const res = respond(parseRequest(readFileSync('test/golden/kubelet/node-request.json', 'utf8')), {
      env,
      now: () => NOW,
    });
    const want = golden('kubelet/node-response.json');
    want.auth['registry.example.com:5000'].password = JWT;
    expect(res).toEqual(want);
    const rotated = JWT.replace('c2ln', 'bmV3');
    writeFileSync(join(dir, 'token'), rotated);
    expect(
      respond(parseRequest(readFileSync('test/golden/kubelet/node-request.json', 'utf8')), { env, now: () => NOW })
        .auth['registry.example.com:5000']!.password,
    ).toBe(rotated);
  });

  it.each([
    ['not json', /not JSON/],
    ['[]', /object/],
    [
      '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","kind":"CredentialProviderRequest","image":"a/b"}',
      /apiVersion/,
    ],
    ['{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Other","image":"a/b"}', /kind/],
    ['{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}', /image/],
    [
      '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"r.io/a","serviceAccountToken":""}',
      /serviceAccountToken/,
    ],
  ])('rejects malformed request %s', (text, message) => {
    expect(() => parseRequest(text)).toThrow(message);
  });

  it('refuses an expired token rather than handing it to kubelet', () => {
    const req = parseRequest(
      JSON.stringify({
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        kind: 'CredentialProviderRequest',
        image: 'registry.example.com/a',
        serviceAccountToken: JWT,
      }),
    );
    expect(() => respond(req, { env: {}, now: () => EXP * 1000 })).toThrow(ProviderError);
    expect(() => respond(req, { env: {}, now: () => (EXP - 30) * 1000 })).toThrow(
      "the request's serviceAccountToken expires at 2033-05-18T04:33:20.000Z, in 30s",
    );
  });

  it('finds the registry of an image reference', () => {
    expect(registryOf('registry.example.com/team/app:1')).toBe('registry.example.com');
    expect(registryOf('localhost:5000/a@sha256:abc')).toBe('localhost:5000');
    expect(registryOf('127.0.0.1:8080/a')).toBe('127.0.0.1:8080');
    expect(registryOf('library/nginx')).toBe('docker.io');
  });
});

describe('Docker credential helper protocol (golden)', () => {
  function io(stdin: string, env: NodeJS.ProcessEnv) {
    const out = { stdout: '', stderr: '' };
    return {
      out,
      io: {
        stdin: async () => stdin,
        stdout: (s: string) => (out.stdout += s),
        stderr: (s: string) => (out.stderr += s),
        env,
      },
    };
  }

  it('get prints ServerURL, Username and the token read afresh', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-dh-'));
    writeFileSync(join(dir, 't'), JWT);
    const { out, io: h } = io('https://registry.example.com\n', {
      RAP_TOKEN_FILE: join(dir, 't'),
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(await runHelper(['get'], h)).toBe(0);
    const want = golden('docker/get-response.json');
    want.Secret = JWT;
    expect(JSON.parse(out.stdout)).toEqual(want);
  });

  it('get answers "credentials not found" for other registries; list names the configured ones', async () => {
    const a = io('other.example.com', { RAP_TOKEN_FILE: '/nonexistent', RAP_REGISTRIES: 'registry.example.com' });
    expect(await runHelper(['get'], a.io)).toBe(1);
    expect(a.out.stdout).toBe('credentials not found in native keychain\n');
    const l = io('', { RAP_REGISTRIES: 'registry.example.com, mirror.example.com:5000' });
    expect(await runHelper(['list'], l.io)).toBe(0);
    expect(JSON.parse(l.out.stdout)).toEqual(golden('docker/list-response.json'));
  });

  it('store and erase succeed without storing; errors go to stdout with exit 1, as the protocol reads them', async () => {
    for (const [cmd, says] of [
      ['store', 'nothing stored'],
      ['erase', 'nothing to erase'],
    ] as const) {
      const s = io('{"ServerURL":"x","Username":"u","Secret":"s"}', {});
      expect(await runHelper([cmd], s.io)).toBe(0);
      expect(s.out.stderr).toContain(says);
      expect(s.out.stdout).toBe('');
    }
    const g = io('registry.example.com', {
      RAP_TOKEN_FILE: '/nonexistent/token',
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(await runHelper(['get'], g.io)).toBe(1);
    expect(g.out.stdout).toMatch(/no identity token file/);
    // and on stderr: Docker 28 drops a failed get's stdout and shows only what the helper wrote there
    expect(g.out.stderr).toBe(`docker-credential-registry-auth-proxy: ${g.out.stdout}`);
    expect(await runHelper(['bogus'], io('', {}).io)).toBe(1);
  });
});

describe('token freshness (issue 25: an expired token file is named, not sent)', () => {
  const jwt = (payload: unknown) =>
    `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;
  const T = 1_800_000_000;
  it.each([
    ['exp in the future', jwt({ exp: T + 600 }), { state: 'ok', exp: T + 600 }],
    ['exp now', jwt({ exp: T }), { state: 'ok', exp: T }],
    ['exp 30s ago: within the proxy default clockSkew', jwt({ exp: T - 30 }), { state: 'ok', exp: T - 30 }],
    ['exp 31s ago', jwt({ exp: T - 31 }), { state: 'expired', exp: T - 31 }],
    ['exp a day ago', jwt({ exp: T - 86_400 }), { state: 'expired', exp: T - 86_400 }],
    ['no exp: left to the proxy', jwt({ sub: 'x' }), { state: 'ok' }],
    ['exp not a number', jwt({ exp: 'soon' }), { state: 'not-jwt', why: 'its exp is not a number ("soon")' }],
    ['a password', 'hunter2', { state: 'not-jwt', why: 'not three dot-separated parts' }],
    ['three parts, no JSON', 'a.b.c', { state: 'not-jwt', why: expect.any(String) }],
  ])('%s', (_name, token, want) => {
    expect(tokenFreshness(token, T)).toEqual(want);
  });

  it('the helper, the provider and the token source name the file, when it expired and how to refresh it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-exp-'));
    const file = join(dir, 'token');
    writeFileSync(file, jwt({ sub: 'job', exp: 1_700_000_000 }));
    const said = new RegExp(
      `^identity token file ${file} expired at 2023-11-14T22:13:20.000Z \\(\\d+d( \\d+h)?( \\d+m)? ago\\): .*kubelet.*fresh token`,
    );
    expect(() => readIdentityToken({ RAP_TOKEN_FILE: file })).toThrow(said);
    const out = { stdout: '', stderr: '' };
    const code = await runHelper(['get'], {
      stdin: async () => 'registry.example.com',
      stdout: (s) => (out.stdout += s),
      stderr: (s) => (out.stderr += s),
      env: { RAP_TOKEN_FILE: file, RAP_REGISTRIES: 'registry.example.com' },
    });
    expect(code).toBe(1);
    expect(out.stdout).toMatch(said);
    expect(out.stderr).toBe(`docker-credential-registry-auth-proxy: ${out.stdout}`);
    const req = parseRequest(readFileSync('test/golden/kubelet/node-request.json', 'utf8'));
    expect(() => respond(req, { env: { RAP_TOKEN_FILE: file } })).toThrow(said);
    writeFileSync(file, 'not-a-jwt');
    expect(() => readIdentityToken({ RAP_TOKEN_FILE: file })).toThrow(
      `identity token file ${file} does not hold a JWT (not three dot-separated parts)`,
    );
  });
});

describe('token source', () => {
  it('falls back through the default files and reports what it looked at', () => {
    expect(() => readIdentityToken({ RAP_TOKEN_FILE: '/nonexistent/x' })).toThrow(TokenSourceError);
    const dir = mkdtempSync(join(tmpdir(), 'rap-ts-'));
    writeFileSync(join(dir, 'empty'), '\n');
    expect(() => readIdentityToken({ RAP_TOKEN_FILE: join(dir, 'empty') })).toThrow(/empty/);
  });
});

describe('login', () => {
  it('merges into an existing config, keeping other entries, atomically with 0600', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-login-'));
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        auths: { 'other.io': { auth: 'b3RoZXI6eA==' } },
        credHelpers: { 'registry.example.com': 'ecr-login', 'x.io': 'y' },
        psFormat: 'table',
      }),
    );
    loginToFile(file, 'registry.example.com', 'registry-auth-proxy', JWT);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc.auths['other.io']).toEqual({ auth: 'b3RoZXI6eA==' });
    expect(Buffer.from(doc.auths['registry.example.com'].auth, 'base64').toString()).toBe(`registry-auth-proxy:${JWT}`);
    expect(doc.credHelpers).toEqual({ 'x.io': 'y' });
    expect(doc.psFormat).toBe('table');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['config.json']);
  });

  it.each([
    ['docker login wrote a refresh token', { auths: { 'r.io': { auth: 'eDo=', identitytoken: 'ey.x.y' } } }, true],
    ['under an https:// key', { auths: { 'https://r.io': { identitytoken: 'ey.x.y' } } }, true],
    ['a password login', { auths: { 'r.io': { auth: 'dTpw' } } }, false],
    ['an empty identitytoken', { auths: { 'r.io': { auth: 'dTpw', identitytoken: '' } } }, false],
    ["another registry's refresh token", { auths: { 'other.io': { identitytoken: 'ey.x.y' } } }, false],
    ['no auths', {}, false],
  ])('podman login would refuse because of Docker config: %s → %s', (_name, doc, want) => {
    expect(dockerRefreshLogin(doc, 'r.io')).toBe(want);
  });

  it('refuses to overwrite a file that is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-login-'));
    writeFileSync(join(dir, 'config.json'), '{broken');
    expect(() => loginToFile(join(dir, 'config.json'), 'r.io', 'u', 't')).toThrow(/not valid JSON/);
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe('{broken');
  });

  it('builds a kubernetes.io/dockerconfigjson Secret', () => {
    const s = dockerConfigSecret('pull', 'team-a', 'registry.example.com', 'u', 't');
    expect(s).toMatchObject({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name: 'pull', namespace: 'team-a' },
    });
    expect(JSON.parse(Buffer.from(s.data['.dockerconfigjson'], 'base64').toString())).toEqual({
      auths: { 'registry.example.com': { auth: Buffer.from('u:t').toString('base64') } },
    });
    expect(mergeAuth({}, 'r', 'u', 't').auths!.r!.auth).toBe(Buffer.from('u:t').toString('base64'));
  });
});

describe('controller decisions', () => {
  const sa = {
    metadata: {
      name: 'b',
      namespace: 'n',
      annotations: { 'registry-auth-proxy.io/registry': 'registry.example.com:443' },
    },
  };
  it('derives the wanted Secret and audience', () => {
    expect(wantedFor(sa)).toEqual({
      namespace: 'n',
      serviceAccount: 'b',
      registry: 'registry.example.com:443',
      audience: 'registry.example.com',
      secretName: 'b-registry-auth-proxy',
    });
    expect(wantedFor({ metadata: { name: 'b', namespace: 'n' } })).toBeUndefined();
  });
  it('renews at 80% of the lifetime or when the registry changes', () => {
    const w = wantedFor(sa)!;
    const s = buildSecret(w, 't', new Date(0), new Date(1000_000));
    expect(needsRenewal(undefined, w, 0)).toBe(true);
    expect(needsRenewal(s, w, 799_999)).toBe(false);
    expect(needsRenewal(s, w, 800_000)).toBe(true);
    expect(needsRenewal(s, { ...w, registry: 'other' }, 0)).toBe(true);
  });
  it('adds and removes the imagePullSecrets reference only when needed', () => {
    expect(withPullSecret({ imagePullSecrets: [{ name: 'x' }] }, 'x', true)).toBeUndefined();
    expect(withPullSecret({ imagePullSecrets: [{ name: 'y' }] }, 'x', true)!.imagePullSecrets).toEqual([
      { name: 'y' },
      { name: 'x' },
    ]);
    expect(withPullSecret({ imagePullSecrets: [{ name: 'x' }, { name: 'y' }] }, 'x', false)!.imagePullSecrets).toEqual([
      { name: 'y' },
    ]);
  });
});
