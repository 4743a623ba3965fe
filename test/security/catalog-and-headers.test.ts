import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_TEST_POLICY } from '../helpers/server.js';
import { parseRaw, rawRequest, startTarget, type Target } from './harness.js';

/**
 * Issue 9, item 4: repository names leaking from the catalog through the upstream's `Link` header
 * or through members after the first `repositories` list; item 7: the upstream's authentication
 * challenges reaching clients; item 11: client headers that rewrite the URL, the method or the
 * forwarding information upstream. Each case checks the status, the body and what the upstream saw.
 */
const POLICY = `${DEFAULT_TEST_POLICY}
  - name: ci-lists-catalog
    actions: ["*"]
    when: identity.issuerName == "ci" && request.type == "registry"
`;

let t: Target;
let catalogToken: string;
let pull: string;

interface OciBody {
  errors: { code: string; message: string }[];
}

beforeAll(async () => {
  t = await startTarget({}, POLICY);
  catalogToken = await t.registryToken(['registry:catalog:*']);
  pull = await t.registryToken(['repository:team-a/app:pull']);
});
afterAll(() => t?.stop());
beforeEach(() => {
  t.upstream.requests.length = 0;
  t.upstream.handle(ok);
});

function ok(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
  res.end('{}');
}

async function get(path: string, token: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${t.proxy.url}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  const text = await r.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: r.status, headers: r.headers, text, body };
}

/** The upstream's catalog: two pages of n=2 in Distribution's form, the first ending on team-b's repository. */
function pagedCatalog(req: IncomingMessage, res: ServerResponse): void {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  if (q.get('last') === 'team-b/secret') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"repositories":["team-a/zz"]}\n');
    return;
  }
  res.writeHead(200, {
    'content-type': 'application/json',
    link: `</v2/_catalog?last=team-b%2Fsecret&n=${q.get('n') ?? 2}>; rel="next"`,
  });
  res.end('{"repositories":["team-a/app","team-b/secret"]}\n');
}

describe('catalog pagination', () => {
  it("seals the upstream's next-page name into an opaque cursor at the public URL, and follows it", async () => {
    t.upstream.handle(pagedCatalog);
    const first = await get('/v2/_catalog?n=2', catalogToken);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ repositories: ['team-a/app'] });
    const link = first.headers.get('link')!;
    expect(link).not.toMatch(/team-b|secret/);
    const m = /^<(http:\/\/127\.0\.0\.1:\d+)\/v2\/_catalog\?last=(~[A-Za-z0-9_-]+)&n=2>; rel="next"$/.exec(link);
    expect(m, link).not.toBeNull();
    expect(m![1]).toBe(t.proxy.config.publicURL);
    const next = await get(`/v2/_catalog?last=${m![2]}&n=2`, catalogToken);
    expect(next.body).toEqual({ repositories: ['team-a/zz'] });
    expect(next.headers.get('link')).toBeNull();
    // the upstream got the real name back, re-serialized
    expect(t.upstream.requests.map((r) => r.url)).toEqual([
      '/v2/_catalog?n=2',
      '/v2/_catalog?n=2&last=team-b%2Fsecret',
    ]);
  });

  it('leaks no name with n=1 either, and drops Links it cannot read', async () => {
    t.upstream.handle(pagedCatalog);
    const page = await get('/v2/_catalog?n=1', catalogToken);
    expect(page.headers.get('link')).toMatch(
      /^<http:\/\/127\.0\.0\.1:\d+\/v2\/_catalog\?last=~[A-Za-z0-9_-]+&n=1>; rel="next"$/,
    );
    for (const link of [
      '<team-b/secret>; rel="next"',
      '</v2/_catalog?last=team-b%2Fsecret>; rel="prev"',
      'team-b/secret',
      '</v2/_catalog?n=1>; rel=next; title="team-b/secret"',
    ]) {
      t.upstream.handle((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', link });
        res.end('{"repositories":[]}');
      });
      const r = await get('/v2/_catalog?n=1', catalogToken);
      expect(r.headers.get('link') ?? '', link).not.toMatch(/team-b|secret/);
    }
    // whatever the status
    t.upstream.handle((_req, res) => {
      res.writeHead(500, {
        'content-type': 'application/json',
        link: '</v2/_catalog?last=team-b%2Fsecret&n=1>; rel="next"',
      });
      res.end('{"errors":[{"code":"UNKNOWN","message":"x"}]}');
    });
    const failed = await get('/v2/_catalog?n=1', catalogToken);
    expect(failed.status).toBe(500);
    expect(failed.headers.get('link') ?? '').not.toMatch(/team-b|secret/);
  });

  it('refuses a cursor it did not seal, before the upstream', async () => {
    t.upstream.handle(pagedCatalog);
    const link = (await get('/v2/_catalog?n=2', catalogToken)).headers.get('link')!;
    const cursor = /last=(~[A-Za-z0-9_-]+)/.exec(link)![1]!;
    t.upstream.requests.length = 0;
    for (const bad of ['~', '~AAAA', `${cursor.slice(0, -4)}AAAA`, `~${'A'.repeat(3000)}`, '~team-b%2Fsecret']) {
      const r = await get(`/v2/_catalog?last=${bad}&n=2`, catalogToken);
      expect(r.status, bad.slice(0, 20)).toBe(400);
      expect((r.body as OciBody).errors[0]).toMatchObject({
        code: 'UNSUPPORTED',
        message: expect.stringMatching(/cursor/),
      });
    }
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('refuses a plain `last` before the upstream: no ordering oracle spells hidden names out', async () => {
    // Issue 18 item 2: with `n=1&last=<guess>~` forwarded, an empty filtered page meant "a hidden
    // name sorts right after the guess"; ~130 guesses spelled one out. Every guess now gets the same 400.
    t.upstream.handle(pagedCatalog);
    const bodies = new Set<string>();
    for (const guess of [
      'team-b%2F',
      'team-b%2Fs~',
      'team-b%2Fsecre~',
      'team-b%2Fsecret',
      'team-a%2Fapp',
      '%7E',
      'a~b',
    ]) {
      const r = await get(`/v2/_catalog?n=1&last=${guess}`, catalogToken);
      expect(r.status, guess).toBe(400);
      bodies.add(r.text);
    }
    expect([...bodies]).toHaveLength(2); // the plain-name answer, and the not-a-cursor answer for `~…`
    expect(JSON.parse([...bodies][0]!)).toEqual({
      errors: [
        {
          code: 'UNSUPPORTED',
          message: expect.stringMatching(/^catalog `last` must be the cursor from the previous page's Link header/),
        },
      ],
    });
    expect(t.upstream.requests).toHaveLength(0);
  });
});

describe('catalog shapes', () => {
  it.each([
    ['a duplicate repositories member', '{"repositories":["team-a/app"],"repositories":["team-b/secret"]}'],
    ['another member', '{"repositories":["team-a/app"],"next":["team-b/secret"]}'],
    ['another array', '{"repositories":["team-a/app"],["team-b/secret"]}'],
    ['a second document', '{"repositories":["team-a/app"]}\n{"repositories":["team-b/secret"]}'],
    ['a member before the list', '{"hidden":"team-b/secret","repositories":["team-a/app"]}'],
  ])('fails closed on %s', async (_what, body) => {
    t.upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    const r = await get('/v2/_catalog', catalogToken);
    expect(r.status).toBe(200);
    expect(r.text).not.toMatch(/team-b|secret|hidden|next/);
    expect(JSON.parse(r.text)).toEqual({ repositories: expect.any(Array) });
    expect(t.upstream.requests.map((x) => x.url)).toEqual(['/v2/_catalog']);
  });
});

describe('upstream authentication challenges', () => {
  it('drops WWW-Authenticate and Proxy-Authenticate from every upstream answer', async () => {
    for (const status of [200, 403, 404, 500]) {
      t.upstream.handle((_req, res) => {
        res.writeHead(status, {
          'content-type': 'application/json',
          'www-authenticate': 'Bearer realm="https://upstream.internal/token",service="internal"',
          'proxy-authenticate': 'Basic realm="corp-proxy"',
          'authentication-info': 'nextnonce="x"',
        });
        res.end('{}');
      });
      const r = await get('/v2/team-a/app/manifests/v1', pull);
      expect(r.status).toBe(status);
      expect(r.headers.get('www-authenticate'), String(status)).toBeNull();
      expect(r.headers.get('proxy-authenticate'), String(status)).toBeNull();
      expect(r.headers.get('authentication-info'), String(status)).toBeNull();
    }
  });

  it("answers an upstream 401 or 407 with a 502 of its own, never the upstream's challenge or body", async () => {
    for (const [status, header] of [
      [401, 'www-authenticate'],
      [407, 'proxy-authenticate'],
    ] as const) {
      t.upstream.handle((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json', [header]: 'Basic realm="upstream-secret-realm"' });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"upstream-secret-realm"}]}');
      });
      const r = await get('/v2/team-a/app/manifests/v1', pull);
      expect(r.status, String(status)).toBe(502);
      expect(r.headers.get('www-authenticate')).toBeNull();
      expect(r.headers.get('proxy-authenticate')).toBeNull();
      expect(r.text).not.toContain('upstream-secret-realm');
      expect((r.body as OciBody).errors[0]).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringMatching(/^upstream registry rejected the proxy's own credentials/),
      });
    }
    // the upstream connection stays usable afterwards
    t.upstream.handle(ok);
    expect((await get('/v2/team-a/app/manifests/v1', pull)).status).toBe(200);
  });
});

describe('client headers that rewrite the request upstream', () => {
  it('strips URL, method and forwarding overrides', async () => {
    const injected = [
      'X-Original-URL: /v2/team-b/secret/manifests/v1',
      'X-Rewrite-URL: /v2/team-b/secret/manifests/v1',
      'X-Original-URI: /v2/team-b/secret/manifests/v1',
      'X-Original-Method: DELETE',
      'X-HTTP-Method-Override: DELETE',
      'X-HTTP-Method: DELETE',
      'X-Method-Override: DELETE',
      'X-Forwarded-Port: 443',
      'X-Forwarded-Prefix: /evil',
      'X-Forwarded-Server: evil.test',
      'X-Forwarded-Host: evil.test',
      'X-Forwarded-Uri: /v2/team-b/secret/manifests/v1',
      'X-Forwarded-Scheme: https',
      'X-Forwarded-Ssl: on',
      'X-Host: evil.test',
      'X-Original-Host: evil.test',
      'X-Real-IP: 10.9.9.9',
      'X-Client-IP: 10.9.9.9',
      'True-Client-IP: 10.9.9.9',
      'Front-End-Https: on',
    ];
    const out = parseRaw(
      await rawRequest(
        t.port,
        `GET /v2/team-a/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pull}\r\n${injected.join('\r\n')}\r\nX-Keep-Me: yes\r\nConnection: close\r\n\r\n`,
      ),
    );
    expect(out.status).toBe(200);
    expect(t.upstream.requests).toHaveLength(1);
    const seen = t.upstream.requests[0]!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/v2/team-a/app/manifests/v1');
    for (const line of injected) {
      const name = line.split(':')[0]!.toLowerCase();
      expect(seen.headers[name], name).toBeUndefined();
    }
    // the proxy's own forwarding headers, and unrelated headers, still pass
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-keep-me']).toBe('yes');
  });
});
