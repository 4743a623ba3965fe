import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { buildConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createForwarder, type Forwarder } from '../../src/proxy/forward.js';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { parseRaw, rawRequest, startTarget, type Target } from './harness.js';

/**
 * Request framing (issue 9, item 1): every framing header the proxy's parser used is one the proxy
 * forwards or refuses. Node keeps only `maxHeadersCount` header lines in `req.headers` while llhttp
 * frames the body by a later Content-Length; a GET then left for the upstream without framing and
 * its body was parsed upstream as the next request on a pooled keep-alive connection. Each case
 * checks the status, the OCI error body, that exactly one response came back, and what the
 * recording upstream saw.
 */
const D = `sha256:${'b'.repeat(64)}`;

interface OciBody {
  errors: { code: string; message: string }[];
}

/** `n` empty header lines `x0:` … — the padding that pushed framing headers past Node's limit. */
const padding = (n: number) => Array.from({ length: n }, (_, i) => `x${i}:\r\n`).join('');

/** A request head with `lines` and the body, as raw text. */
function raw(method: string, path: string, lines: string, body = ''): string {
  return `${method} ${path} HTTP/1.1\r\nHost: x\r\n${lines}\r\n${body}`;
}

/** A complete smuggled DELETE of another team's manifest. */
const SMUGGLED_DELETE = `DELETE /v2/team-b/secret/manifests/${D} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`;
/** An unfinished smuggled request: the next request head on that upstream socket would become its header. */
const SMUGGLED_PREFIX = `DELETE /v2/team-b/secret/manifests/${D} HTTP/1.1\r\nHost: x\r\nX-Absorb: `;

function responses(out: string): number {
  return out.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0;
}

/** Nothing the upstream saw names team-b, is a DELETE, or carries an absorbed request head. */
function expectNoSmuggling(upstream: RecordingUpstream): void {
  for (const r of upstream.requests) {
    expect(r.method).not.toBe('DELETE');
    expect(r.url).not.toContain('team-b');
    for (const v of Object.values(r.headers))
      expect(String(v)).not.toMatch(/HTTP\/1\.1|^(GET|HEAD|DELETE|POST|PUT|PATCH) /);
  }
}

/** One keep-alive connection: sends `first`, then `second` after the first answer arrives; returns both answers. */
function twoOnOneConnection(port: number, first: string, second: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(first));
    let out = '';
    let sentSecond = false;
    s.on('data', (d) => {
      out += d.toString('latin1');
      if (!sentSecond && /\r\n\r\n/.test(out)) {
        sentSecond = true;
        if (s.writable) s.write(second);
      }
    });
    s.on('close', () => resolve(out));
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve(out) : reject(e),
    );
    s.setTimeout(3000, () => s.destroy());
  });
}

describe('header-count smuggling (pull-only token)', () => {
  let t: Target;
  let pull: string;
  beforeAll(async () => {
    t = await startTarget();
    pull = await t.registryToken(['repository:team-a/app:pull']);
  });
  afterAll(() => t.stop());
  beforeEach(() => {
    t.upstream.requests.length = 0;
  });

  it('refuses ~1100 padding header lines before a Content-Length with 431: nothing reaches the upstream', async () => {
    for (const body of [SMUGGLED_DELETE, SMUGGLED_PREFIX]) {
      const text = raw(
        'GET',
        '/v2/team-a/app/manifests/v1',
        `Authorization: Bearer ${pull}\r\n${padding(1100)}Content-Length: ${Buffer.byteLength(body)}\r\n`,
        body,
      );
      const out = await rawRequest(t.port, text);
      const first = parseRaw(out);
      expect(first.status).toBe(431);
      expect(first.headers).toMatch(/connection: close/i);
      expect((first.body as OciBody).errors[0]!.code).toBe('UNSUPPORTED');
      expect((first.body as OciBody).errors[0]!.message).toMatch(/header/i);
      expect(responses(out)).toBe(1);
    }
    // the pooled upstream connection is clean: the next request is exactly what it should be
    const r = await fetch(`${t.proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${pull}` },
    });
    expect(r.status).toBe(200);
    expect(t.upstream.requests.map((x) => `${x.method} ${x.url}`)).toEqual(['GET /v2/team-a/app/manifests/v1']);
    expectNoSmuggling(t.upstream);
  });

  it('answers a second request on the same client connection only if the first was refused cleanly', async () => {
    const body = SMUGGLED_PREFIX;
    const first = raw(
      'GET',
      '/v2/team-a/app/manifests/v1',
      `Authorization: Bearer ${pull}\r\n${padding(1100)}Content-Length: ${Buffer.byteLength(body)}\r\n`,
      body,
    );
    const second = raw('GET', '/v2/team-a/app/manifests/v2', `Authorization: Bearer ${pull}\r\n`);
    const out = await twoOnOneConnection(t.port, first, second);
    expect(parseRaw(out).status).toBe(431);
    // the refusal closes the connection: the second request is never read on it
    expect(responses(out)).toBe(1);
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('accepts up to limits.maxHeaderCount header lines and refuses one more', async () => {
    // Host + Authorization + (n - 2) padding lines = n lines
    const lines = (n: number) => `Authorization: Bearer ${pull}\r\n${padding(n - 2)}Connection: close\r\n`;
    const ok = parseRaw(await rawRequest(t.port, raw('GET', '/v2/team-a/app/manifests/v1', lines(99))));
    expect(ok.status).toBe(200);
    const over = parseRaw(await rawRequest(t.port, raw('GET', '/v2/team-a/app/manifests/v1', lines(100))));
    expect(over.status).toBe(431);
    expect((over.body as OciBody).errors[0]!.message).toMatch(/more than 100 header lines/);
    expect(t.upstream.requests.map((x) => x.url)).toEqual(['/v2/team-a/app/manifests/v1']);
  });
});

describe('header-count smuggling with anonymous: true (no identity at all)', () => {
  const POLICY = `rules:\n  - name: anyone-pulls-public\n    actions: [pull]\n    when: request.repository.startsWith("public/")\n`;
  let t: Target;
  let raised: Target;
  beforeAll(async () => {
    t = await startTarget({ anonymous: true }, POLICY);
    // the header-count limit raised above the padding: every line is still kept (Node's own
    // limit is off), so the Content-Length is seen and the body check refuses
    raised = await startTarget(
      { anonymous: true, limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 }, maxHeaderCount: 2000 } },
      POLICY,
    );
  });
  afterAll(async () => {
    await t.stop();
    await raised.stop();
  });
  beforeEach(() => {
    t.upstream.requests.length = 0;
    raised.upstream.requests.length = 0;
  });

  for (const [which, status, message] of [
    ['default limits', 431, /more than 100 header lines/],
    ['maxHeaderCount: 2000', 400, /GET requests carry no body/],
  ] as const) {
    it(`refuses the smuggling GET (${which}: ${status}) and the upstream sees nothing of it`, async () => {
      const target = which === 'default limits' ? t : raised;
      for (const body of [SMUGGLED_DELETE, SMUGGLED_PREFIX]) {
        const text = raw(
          'GET',
          '/v2/public/app/manifests/v1',
          `${padding(1100)}Content-Length: ${Buffer.byteLength(body)}\r\n`,
          body,
        );
        const out = await rawRequest(target.port, text);
        const first = parseRaw(out);
        expect(first.status).toBe(status);
        expect(first.headers).toMatch(/connection: close/i);
        expect((first.body as OciBody).errors[0]!.code).toBe('UNSUPPORTED');
        expect((first.body as OciBody).errors[0]!.message).toMatch(message);
        expect(responses(out)).toBe(1);
      }
      const r = await fetch(`${target.proxy.url}/v2/public/app/manifests/v1`);
      expect(r.status).toBe(200);
      expect(target.upstream.requests.map((x) => `${x.method} ${x.url}`)).toEqual(['GET /v2/public/app/manifests/v1']);
      expectNoSmuggling(target.upstream);
    });
  }
});

describe('bodies on routes that take none, and framing the parser allows but the upstream might read otherwise', () => {
  let t: Target;
  let pull: string;
  let push: string;
  let del: string;
  beforeAll(async () => {
    t = await startTarget();
    pull = await t.registryToken(['repository:team-a/app:pull', 'registry:catalog:*']);
    push = await t.registryToken(['repository:team-a/app:pull,push']);
    del = await t.registryToken(['repository:team-a/scratch:delete']);
  });
  afterAll(() => t.stop());
  beforeEach(() => {
    t.upstream.requests.length = 0;
  });

  const chunked = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n0\r\n\r\n`;

  it('refuses a body on GET, HEAD, DELETE and OPTIONS, on ping, catalog, tags, manifests and blobs, with 400', async () => {
    const bearer = (tok: string) => `Authorization: Bearer ${tok}\r\n`;
    // method, path, credentials, and the reason the refusal names (a HEAD answer has no body to read it from)
    const cases: [string, string, string, string?][] = [
      ['GET', '/v2/', bearer(pull), 'GET requests carry no body'],
      ['GET', '/v2/_catalog', bearer(pull), 'GET requests carry no body'],
      ['GET', '/v2/team-a/app/tags/list', bearer(pull), 'GET requests carry no body'],
      ['GET', '/v2/team-a/app/manifests/v1', bearer(pull), 'GET requests carry no body'],
      ['HEAD', `/v2/team-a/app/blobs/${D}`, bearer(pull)],
      ['DELETE', `/v2/team-a/scratch/manifests/${D}`, bearer(del), 'DELETE requests carry no body'],
      ['OPTIONS', '/v2/', bearer(pull), 'OPTIONS requests carry no body'],
      ['GET', '/token?service=registry.test', '', 'GET requests carry no body'],
      ['POST', '/healthz', '', '/healthz takes no body'],
    ];
    for (const [method, path, auth, reason] of cases) {
      for (const framing of ['cl', 'te'] as const) {
        const text =
          framing === 'cl'
            ? raw(method, path, `${auth}Content-Length: ${Buffer.byteLength(SMUGGLED_DELETE)}\r\n`, SMUGGLED_DELETE)
            : raw(method, path, `${auth}Transfer-Encoding: chunked\r\n`, chunked(SMUGGLED_DELETE));
        const out = await rawRequest(t.port, text);
        const first = parseRaw(out);
        const label = `${method} ${path} (${framing})`;
        expect(first.status, label).toBe(400);
        expect(responses(out), label).toBe(1);
        if (reason !== undefined) {
          expect((first.body as OciBody).errors[0]!.code, label).toBe('UNSUPPORTED');
          expect((first.body as OciBody).errors[0]!.message, label).toBe(`${reason}: request refused`);
        }
      }
    }
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('still forwards GET and DELETE with an explicit Content-Length: 0', async () => {
    let out = parseRaw(
      await rawRequest(
        t.port,
        raw(
          'GET',
          '/v2/team-a/app/manifests/v1',
          `Authorization: Bearer ${pull}\r\nContent-Length: 0\r\nConnection: close\r\n`,
        ),
      ),
    );
    expect(out.status).toBe(200);
    out = parseRaw(
      await rawRequest(
        t.port,
        raw(
          'DELETE',
          `/v2/team-a/scratch/manifests/${D}`,
          `Authorization: Bearer ${del}\r\nContent-Length: 0\r\nConnection: close\r\n`,
        ),
      ),
    );
    expect(out.status).toBe(200);
    expect(t.upstream.requests.map((r) => `${r.method} ${r.url} ${r.bodyBytes}`)).toEqual([
      'GET /v2/team-a/app/manifests/v1 0',
      `DELETE /v2/team-a/scratch/manifests/${D} 0`,
    ]);
  });

  it('refuses Transfer-Encoding other than plain chunked, conflicting lengths, obs-fold and header names with spaces', async () => {
    const upload = '/v2/team-a/app/blobs/uploads/';
    const auth = `Authorization: Bearer ${push}\r\n`;
    const cases: [string, string][] = [
      ['gzip, chunked', raw('POST', upload, `${auth}Transfer-Encoding: gzip, chunked\r\n`, chunked(SMUGGLED_DELETE))],
      [',chunked', raw('POST', upload, `${auth}Transfer-Encoding: ,chunked\r\n`, chunked(SMUGGLED_DELETE))],
      [
        'chunked twice',
        raw(
          'POST',
          upload,
          `${auth}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n`,
          chunked(SMUGGLED_DELETE),
        ),
      ],
      ['identity', raw('POST', upload, `${auth}Transfer-Encoding: identity\r\n`, SMUGGLED_DELETE)],
      [
        'CL twice, same value',
        raw('POST', upload, `${auth}Content-Length: 5\r\nContent-Length: 5\r\n`, `hello${SMUGGLED_DELETE}`),
      ],
      [
        'CL + TE',
        raw('POST', upload, `${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n`, chunked(SMUGGLED_DELETE)),
      ],
      ['obs-fold', raw('POST', upload, `${auth}X-A: a\r\n b\r\nContent-Length: 5\r\n`, `hello${SMUGGLED_DELETE}`)],
      [
        'obs-fold of TE',
        raw('POST', upload, `${auth}Transfer-Encoding: identity\r\n chunked\r\n`, chunked(SMUGGLED_DELETE)),
      ],
      ['name with space', raw('POST', upload, `${auth}Content-Length : 5\r\n`, `hello${SMUGGLED_DELETE}`)],
      [
        'HTTP/1.0 + TE',
        raw('POST', upload, `${auth}Transfer-Encoding: gzip, chunked\r\n`, chunked(SMUGGLED_DELETE)).replace(
          'HTTP/1.1',
          'HTTP/1.0',
        ),
      ],
    ];
    for (const [label, text] of cases) {
      const out = await rawRequest(t.port, text);
      const first = parseRaw(out);
      expect(first.status, label).toBe(400);
      expect(responses(out), label).toBe(1);
      expect((first.body as OciBody).errors[0]!.message, label).toBeTruthy();
    }
    expect(t.upstream.requests).toHaveLength(0);
    // plain chunked still works, and is what the upstream sees
    const ok = parseRaw(
      await rawRequest(
        t.port,
        raw('POST', upload, `${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n`, chunked('hello')),
      ),
    );
    expect(ok.status).toBe(200);
    expect(
      t.upstream.requests.map((r) => `${r.method} ${r.url} ${r.headers['transfer-encoding']} ${r.bodyBytes}`),
    ).toEqual([`POST ${upload} chunked 5`]);
  });
});

describe('the forwarder never sends a body without explicit framing (defence in depth)', () => {
  let upstream: RecordingUpstream;
  let server: Server;
  let forwarder: Forwarder;
  let port: number;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    const config = buildConfig({ listen: '127.0.0.1:0', upstream: { url: upstream.url, timeout: '2s' } });
    forwarder = createForwarder({ ...config, upstream: config.upstreams[0]! }, createLogger('silent'));
    // A front server that forwards whatever it parsed, after dropping the framing headers: what the
    // proxy did when Node's header-count limit hid them (and what any future header bug would do).
    server = createServer((req, res) => {
      if (req.headers['x-drop-cl'] !== undefined) delete req.headers['content-length'];
      if (req.headers['x-drop-te'] !== undefined) delete req.headers['transfer-encoding'];
      forwarder.forward(req, res, { path: req.url!, route: 'test' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    forwarder.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await upstream.stop();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  it('cuts the exchange instead of writing an unframed body upstream (GET, DELETE, POST; CL or TE hidden)', async () => {
    const chunked = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n0\r\n\r\n`;
    const cases = [
      raw(
        'GET',
        '/v2/team-a/app/manifests/v1',
        `X-Drop-CL: 1\r\nContent-Length: ${Buffer.byteLength(SMUGGLED_DELETE)}\r\n`,
        SMUGGLED_DELETE,
      ),
      raw(
        'DELETE',
        '/v2/team-a/app/manifests/v1',
        `X-Drop-CL: 1\r\nContent-Length: ${Buffer.byteLength(SMUGGLED_DELETE)}\r\n`,
        SMUGGLED_DELETE,
      ),
      raw(
        'POST',
        '/v2/team-a/app/blobs/uploads/',
        `X-Drop-CL: 1\r\nContent-Length: ${Buffer.byteLength(SMUGGLED_DELETE)}\r\n`,
        SMUGGLED_DELETE,
      ),
      raw(
        'GET',
        '/v2/team-a/app/manifests/v1',
        'X-Drop-TE: 1\r\nTransfer-Encoding: chunked\r\n',
        chunked(SMUGGLED_DELETE),
      ),
      // http-proxy rewrites a DELETE without Content-Length to `Content-Length: 0` and drops
      // Transfer-Encoding, then would pipe the decoded body after it
      raw('DELETE', '/v2/team-a/app/manifests/v1', 'Transfer-Encoding: chunked\r\n', chunked(SMUGGLED_DELETE)),
    ];
    for (const text of cases) {
      const out = await rawRequest(port, text);
      // cut on the body's first byte, which arrives with the head: before any upstream answer, so no status line at all
      expect(parseRaw(out).status, text.split('\r\n')[0]).toBe(0);
    }
    // whatever reached the upstream carried no body, and nothing was parsed there as a request of its own
    const seen = upstream.requests.map((r) => ({ method: r.method, url: r.url, bytes: r.bodyBytes }));
    for (const r of seen) expect(r.bytes).toBe(0);
    expectNoSmuggling(upstream);
    // and the pooled upstream connection still carries the next request cleanly
    upstream.requests.length = 0;
    const r = await fetch(`http://127.0.0.1:${port}/v2/team-a/app/manifests/v9`);
    expect(r.status).toBe(200);
    expect(upstream.requests.map((x) => `${x.method} ${x.url}`)).toEqual(['GET /v2/team-a/app/manifests/v9']);
  });

  it('forwards framed bodies unchanged', async () => {
    let r = await fetch(`http://127.0.0.1:${port}/v2/team-a/app/blobs/uploads/`, { method: 'POST', body: 'hello' });
    expect(r.status).toBe(200);
    const chunkedBody = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('hello!'));
        c.close();
      },
    });
    r = await fetch(`http://127.0.0.1:${port}/v2/team-a/app/blobs/uploads/`, {
      method: 'POST',
      body: chunkedBody,
      duplex: 'half',
    } as RequestInit);
    expect(r.status).toBe(200);
    expect(
      upstream.requests.map(
        (x) => `${x.method} ${x.headers['content-length'] ?? x.headers['transfer-encoding']} ${x.bodyBytes}`,
      ),
    ).toEqual(['POST 5 5', 'POST chunked 6']);
  });
});
