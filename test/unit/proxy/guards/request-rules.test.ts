import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../../src/identity/types.js';
import { OciError } from '../../../../src/oci/errors.js';
import { classify, isRouteError, type Route } from '../../../../src/oci/route.js';
import { compilePolicyText } from '../../../../src/policy/load.js';
import type { UpstreamLookup } from '../../../../src/policy/request.js';
import type { GuardContext, GuardHold, GuardUpstream } from '../../../../src/proxy/guards.js';
import { requestFacts, requestRulesGuard } from '../../../../src/proxy/guards/request-rules.js';
import type { TagLookups } from '../../../../src/proxy/guards/tag-lookup.js';

/** The request-rules guard over fake requests and a fake upstream: what it asks, reads, holds and answers. */

const POLICY = `
rules:
  - name: immutable
    effect: deny
    phase: request
    actions: [push, delete]
    when: >-
      has(request.tag) && request.tag.startsWith("v") &&
      (request.method == "DELETE" || (request.method == "PUT" && upstream.tagExists && request.digest != upstream.digest))
  - name: main-moves-latest
    effect: deny
    phase: request
    actions: [push]
    when: has(request.tag) && request.tag == "latest" && !(has(claims.ref) && claims.ref == "refs/heads/main")
`;
const engine = compilePolicyText(POLICY);
const config = {
  service: 'registry.test',
  explainDenials: true,
  limits: { manifestMaxBytes: 64, tagLookupTTL: 0, tagLockWait: 50 },
} as never;
const who: Identity = { issuerName: 'ci', issuer: 'https://ci', subject: 'job-1', claims: {} };
const BODY = Buffer.from('{"schemaVersion":2}');
const DIGEST = `sha256:${createHash('sha256').update(BODY).digest('hex')}`;
const OTHER = `sha256:${'0'.repeat(64)}`;

function route(method: string, path: string, query = ''): Route {
  const r = classify(method, path, query);
  if (isRouteError(r)) throw r;
  return r;
}

function fakeReq(method: string, body?: Buffer, headers: Record<string, string> = {}): IncomingMessage {
  const req = Readable.from(body ? [body] : []) as unknown as IncomingMessage;
  Object.assign(req, {
    method,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', ...headers },
    socket: { remoteAddress: '10.0.0.1' },
    complete: true,
  });
  return req;
}

function fakeLookups(answer: UpstreamLookup): TagLookups & { asked: string[] } {
  const asked: string[] = [];
  return { asked, get: async (_t, name, tag) => (asked.push(`${name}:${tag}`), answer), forget: () => undefined };
}

const ctxOf = (
  method: string,
  path: string,
  opts: { body?: Buffer; identity?: Identity; query?: string } = {},
): GuardContext => ({
  req: fakeReq(method, opts.body, opts.body ? { 'content-length': String(opts.body.length) } : {}),
  route: route(method, path, opts.query),
  grant: { identity: opts.identity ?? who, anonymous: false, access: [] },
  upstream: {
    name: '',
    prefix: '',
    url: 'http://registry.test',
    config: { url: 'http://registry.test' },
  } as unknown as GuardUpstream,
});

describe('requestFacts', () => {
  it('reads the route, the head and the client; ping has none', () => {
    const c = ctxOf('PUT', '/v2/team/app/manifests/v1', { body: BODY });
    expect(requestFacts(c, 'registry.test')).toEqual({
      method: 'PUT',
      kind: 'manifest',
      repository: 'team/app',
      actions: ['pull', 'push'],
      reference: 'v1',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      contentLength: BODY.length,
      upstream: '',
      service: 'registry.test',
      clientIP: '10.0.0.1',
    });
    expect(requestFacts({ ...c, route: route('GET', '/v2/') }, 'x')).toBeUndefined();
  });
});

describe('requestRulesGuard', () => {
  it.each<[string, string, string, UpstreamLookup, boolean, string]>([
    ['a pull asks nothing', 'GET', '/v2/team/app/manifests/v1', { error: 'unused' }, false, ''],
    ['a new tag: asked, passes', 'PUT', '/v2/team/app/manifests/v1', { tagExists: false, digest: '' }, true, ''],
    [
      'the same manifest again: an idempotent retry',
      'PUT',
      '/v2/team/app/manifests/v1',
      { tagExists: true, digest: DIGEST },
      true,
      '',
    ],
    [
      'another manifest: an overwrite',
      'PUT',
      '/v2/team/app/manifests/v1',
      { tagExists: true, digest: OTHER },
      true,
      'denied by rule immutable',
    ],
    [
      'no answer: fails closed, naming why',
      'PUT',
      '/v2/team/app/manifests/v1',
      { error: 'the upstream answered HTTP 503' },
      true,
      'could not be evaluated, so it refuses: upstream.',
    ],
    ['a dev tag is not asked about', 'PUT', '/v2/team/app/manifests/dev', { error: 'unused' }, false, ''],
    [
      'latest, not from main',
      'PUT',
      '/v2/team/app/manifests/latest',
      { error: 'unused' },
      false,
      'denied by rule main-moves-latest',
    ],
  ])('%s', async (_name, method, path, answer, asks, refusal) => {
    const lookups = fakeLookups(answer);
    const out = await requestRulesGuard(
      engine,
      config,
      lookups,
    )(ctxOf(method, path, method === 'PUT' ? { body: BODY } : {}));
    expect(lookups.asked.length > 0).toBe(asks);
    if (!refusal) return expect(out instanceof OciError).toBe(false);
    expect(out).toBeInstanceOf(OciError);
    expect((out as OciError).status).toBe(403);
    expect((out as OciError).message).toContain(refusal);
  });

  it('a write it asked about holds the lock until released; the body it hashed is handed on', async () => {
    const guard = requestRulesGuard(engine, config, fakeLookups({ tagExists: false, digest: '' }));
    const chunked = ctxOf('PUT', '/v2/team/app/manifests/v2');
    const first = (await guard(chunked)) as GuardHold;
    expect(first.body?.length).toBe(0); // chunked, and empty: read here, handed on
    const second = await guard(ctxOf('PUT', '/v2/team/app/manifests/v2', { body: BODY }));
    expect((second as OciError).status).toBe(503); // waited 50 ms: the first still holds the tag
    first.release!();
    const third = (await guard(ctxOf('PUT', '/v2/team/app/manifests/v2', { body: BODY }))) as GuardHold;
    expect(third.body?.equals(BODY)).toBe(true);
    third.release!();
  });

  it('a body over the manifest limit is 413, read or declared', async () => {
    const guard = requestRulesGuard(engine, config, fakeLookups({ tagExists: false, digest: '' }));
    const big = Buffer.alloc(65, 1);
    expect(((await guard(ctxOf('PUT', '/v2/team/app/manifests/v3', { body: big }))) as OciError).status).toBe(413);
  });

  it('a digest PUT naming tags in its query is refused; explainDenials false hides who and why', async () => {
    const out = await requestRulesGuard(
      engine,
      config,
      fakeLookups({ error: 'x' }),
    )(ctxOf('PUT', `/v2/team/app/manifests/${DIGEST}`, { body: BODY, query: 'tag=v1' }));
    expect((out as OciError).message).toContain('(?tag=) is refused');
    const hidden = requestRulesGuard(
      engine,
      { ...(config as object), explainDenials: false } as never,
      fakeLookups({ tagExists: true, digest: OTHER }),
    );
    const refused = (await hidden(ctxOf('PUT', '/v2/team/app/manifests/v1', { body: BODY }))) as OciError;
    expect(refused.message).toBe('requested access to the resource is denied');
    expect(JSON.stringify(refused.body())).not.toContain('job-1');
  });

  describe('request.digest of a manifest PUT is what the body hashes to', () => {
    // A deny list by digest: the rule reads request.digest, so the guard hashes the manifest.
    const blocked = compilePolicyText(`rules:
  - {name: blocked, effect: deny, phase: request, actions: [push], when: 'has(request.digest) && request.digest == "${DIGEST}"'}
`);
    const guard = () => requestRulesGuard(blocked, config, fakeLookups({ error: 'unused' }));
    it.each([
      ["by tag: the body's digest", `/v2/team/app/manifests/dev`, BODY, 403, 'denied by rule blocked'],
      ['by its own digest', `/v2/team/app/manifests/${DIGEST}`, BODY, 403, 'denied by rule blocked'],
      [
        // the client names another digest than its body's: the rule must not judge the claim
        'under a digest the body does not hash to: 400 before any rule',
        `/v2/team/app/manifests/${OTHER}`,
        BODY,
        400,
        `the manifest's digest is ${DIGEST}, not ${OTHER} as its reference claims`,
      ],
      [
        'a digest algorithm it cannot check',
        `/v2/team/app/manifests/md5:${'0'.repeat(32)}`,
        BODY,
        400,
        'unsupported digest algorithm "md5"',
      ],
    ])('%s', async (_name, path, body, status, message) => {
      const out = (await guard()(ctxOf('PUT', path, { body }))) as OciError;
      expect(out).toBeInstanceOf(OciError);
      expect(out.status).toBe(status);
      expect(out.code).toBe(status === 400 ? 'DIGEST_INVALID' : 'DENIED');
      expect(out.message).toContain(message);
    });

    it('another body passes, and is handed on as read', async () => {
      const other = Buffer.from('{"schemaVersion":2,"x":1}');
      const sha = `sha256:${createHash('sha256').update(other).digest('hex')}`;
      for (const ref of ['dev', sha]) {
        const ctx = ctxOf('PUT', `/v2/team/app/manifests/${ref}`, { body: other });
        const out = (await guard()(ctx)) as GuardHold;
        expect(out).not.toBeInstanceOf(OciError);
        expect(out.body?.equals(other)).toBe(true);
      }
    });

    it('a rule reading request.tag unguarded refuses a digest push, naming the rule and the field', async () => {
      const bare = compilePolicyText(
        `rules:\n  - {name: bare, effect: deny, phase: request, actions: [push], when: 'request.tag == "latest"'}\n`,
      );
      const out = (await requestRulesGuard(
        bare,
        config,
        fakeLookups({ error: 'unused' }),
      )(ctxOf('PUT', `/v2/team/app/manifests/${DIGEST}`, { body: BODY }))) as OciError;
      expect(out.status).toBe(403);
      expect(out.message).toContain(
        'rule bare could not be evaluated, so it refuses: request.tag is absent (the reference is a digest): guard the read with has(request.tag)',
      );
    });
  });

  it('a token without an identity: rules reading claims refuse', async () => {
    const c = ctxOf('PUT', '/v2/team/app/manifests/latest', { body: BODY });
    const out = await requestRulesGuard(
      engine,
      config,
      fakeLookups({ error: 'x' }),
    )({ ...c, grant: { ...c.grant, identity: undefined } });
    expect((out as OciError).message).toContain('this token was refused PUT manifest team/app:latest');
  });
});
