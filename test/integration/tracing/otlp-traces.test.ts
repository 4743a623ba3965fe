import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { freePort } from '../../support/net.js';
import { MANIFEST_TYPE, seedManifest } from '../../support/seed.js';
import { basicAuth } from '../../support/token.js';

/**
 * Issue 24, item 3: a pull through the proxy and a real Distribution registry, with the client's W3C
 * `traceparent`, reaches an OTLP/HTTP receiver as one trace: the client's trace id, a server span
 * per request under the client's span, verify/policy under /token, authorize/guards/upstream under
 * each /v2/ request; and the upstream saw a traceparent naming the proxy's upstream span.
 *
 * otelcol is not packaged for Debian, so the collector is a small receiver of what a collector's
 * OTLP/HTTP receiver takes (POST /v1/traces, the exporter's JSON, answered with an empty
 * ExportTraceServiceResponse); the upstream is the registry behind a pass-through that records
 * each request's head (Distribution 2.8 neither logs nor traces it).
 */

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: OtlpValue }[];
  status?: { code?: number };
}
interface OtlpRequest {
  resourceSpans: {
    resource: { attributes: { key: string; value: OtlpValue }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}
interface Span extends OtlpSpan {
  service?: string;
  attrs: Record<string, string | number | boolean | undefined>;
}

const SERVER = 2;
const CLIENT = 3;

/** An OTLP/HTTP JSON receiver: the spans it was sent, flattened with their resource's service.name. */
async function startReceiver(): Promise<{ url: string; spans: Span[]; contentTypes: string[]; server: Server }> {
  const spans: Span[] = [];
  const contentTypes: string[] = [];
  const value = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      contentTypes.push(req.headers['content-type'] ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString()) as OtlpRequest;
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans)
            spans.push({
              ...s,
              service,
              attrs: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, value(a.value)])),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, spans, contentTypes, server };
}

/** A pass-through to the registry that records the head of every request it forwards. */
async function startRecorder(
  upstream: string,
): Promise<{ url: string; seen: { path: string; headers: IncomingHttpHeaders }[]; server: Server }> {
  const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers });
    const up = request(
      { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

let registry: Registry;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let recorder: Awaited<ReturnType<typeof startRecorder>>;
let proxy: TestProxy;

beforeAll(async () => {
  registry = await startRegistry();
  await seedManifest(registry.url, 'team-a/traced');
  receiver = await startReceiver();
  recorder = await startRecorder(registry.url);
  proxy = await startProxy({
    upstream: recorder.url,
    config: { tracing: { otlpEndpoint: receiver.url, serviceName: 'rap-under-test' } },
  });
});
afterAll(async () => {
  await proxy?.stop();
  recorder?.server.close();
  receiver?.server.close();
  await registry?.stop();
});

/** Waits (bounded) until the batch processor has exported spans matching `enough`. */
async function exported(enough: (spans: Span[]) => boolean): Promise<Span[]> {
  for (let i = 0; i < 150 && !enough(receiver.spans); i++) await new Promise((r) => setTimeout(r, 100));
  return receiver.spans;
}

describe('OpenTelemetry traces of a pull', () => {
  it("one trace under the client's span: /token → verify, policy; /v2/ → authorize, upstream (no guard acts on a pull here); the upstream saw the trace", async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const traceparent = `00-${traceId}-${clientSpan}-01`;
    const identity = await proxy.mintIdentity({ team: 'team-a' });
    const q = new URLSearchParams({ service: proxy.config.service, scope: 'repository:team-a/traced:pull' });
    const tokenRes = await fetch(`${proxy.url}/token?${q}`, {
      headers: { authorization: basicAuth(identity), traceparent },
    });
    expect(tokenRes.status).toBe(200);
    const token = ((await tokenRes.json()) as { token: string }).token;
    const auth = { authorization: `Bearer ${token}`, traceparent };
    const manifestRes = await fetch(`${proxy.url}/v2/team-a/traced/manifests/latest`, {
      headers: { ...auth, accept: MANIFEST_TYPE },
    });
    expect(manifestRes.status).toBe(200);
    const manifest = (await manifestRes.json()) as { layers: { digest: string }[] };
    const blobRes = await fetch(`${proxy.url}/v2/team-a/traced/blobs/${manifest.layers[0]!.digest}`, { headers: auth });
    expect(blobRes.status).toBe(200);
    expect((await blobRes.arrayBuffer()).byteLength).toBe(1024);

    const ours = (spans: Span[]) => spans.filter((s) => s.traceId === traceId);
    const spans = ours(await exported((all) => ours(all).filter((s) => s.name === 'upstream').length >= 2));
    expect(receiver.contentTypes[0]).toBe('application/json');
    expect(spans.every((s) => s.service === 'rap-under-test')).toBe(true);

    const servers = spans.filter((s) => s.kind === SERVER);
    expect(servers.map((s) => s.name).sort()).toEqual(['GET /token', 'GET /v2/', 'GET /v2/']);
    for (const s of servers) expect(s.parentSpanId).toBe(clientSpan);
    const children = (parent: Span) =>
      spans
        .filter((s) => s.parentSpanId === parent.spanId)
        .map((s) => s.name)
        .sort();

    const tokenSpan = servers.find((s) => s.name === 'GET /token')!;
    expect(tokenSpan.attrs).toMatchObject({
      'http.response.status_code': 200,
      'url.path': '/token',
      'rap.issuer': 'ci',
    });
    expect(children(tokenSpan)).toEqual(['policy', 'verify']);

    const manifestSpan = servers.find((s) => s.attrs['rap.route'] === 'manifest')!;
    expect(manifestSpan.attrs).toMatchObject({
      'http.response.status_code': 200,
      'rap.repository': 'team-a/traced',
      'rap.reference': 'latest',
    });
    // No guard acts on a pull without signature entries or request-time rules (guardPlan): no guards span.
    expect(children(manifestSpan)).toEqual(['authorize', 'upstream']);
    const blobSpan = servers.find((s) => s.attrs['rap.route'] === 'blob')!;
    expect(children(blobSpan)).toEqual(['authorize', 'upstream']);

    // The upstream continued the trace from the proxy's upstream span, not from the client's.
    for (const [server, path] of [
      [manifestSpan, '/v2/team-a/traced/manifests/latest'],
      [blobSpan, `/v2/team-a/traced/blobs/${manifest.layers[0]!.digest}`],
    ] as const) {
      const upstream = spans.find((s) => s.parentSpanId === server.spanId && s.name === 'upstream')!;
      expect(upstream.kind).toBe(CLIENT);
      expect(upstream.attrs['http.response.status_code']).toBe(200);
      const forwarded = recorder.seen.filter((r) => r.path === path);
      expect(forwarded).toHaveLength(1);
      expect(forwarded[0]!.headers.traceparent).toBe(`00-${traceId}-${upstream.spanId}-01`);
    }
    // No credential in any attribute: neither the identity token, nor the registry token, nor an Authorization value.
    const values = JSON.stringify(spans.map((s) => s.attrs));
    expect(values).not.toContain(identity.split('.')[2]);
    expect(values).not.toContain(token.split('.')[2]);
    expect(values).not.toMatch(/Bearer|Basic /);
  });

  it('a request without traceparent starts its own trace, still handed to the upstream', async () => {
    const token = await proxy.registryToken(['repository:team-a/traced:pull'], { team: 'team-a' });
    const before = recorder.seen.length;
    const res = await fetch(`${proxy.url}/v2/team-a/traced/manifests/latest`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}`, accept: MANIFEST_TYPE },
    });
    expect(res.status).toBe(200);
    const forwarded = recorder.seen.slice(before);
    expect(forwarded).toHaveLength(1);
    const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(
      forwarded[0]!.headers.traceparent as string,
    )!;
    const spans = await exported((all) => all.some((s) => s.spanId === spanId));
    const upstream = spans.find((s) => s.spanId === spanId)!;
    const server = spans.find((s) => s.spanId === upstream.parentSpanId)!;
    expect(server).toMatchObject({ traceId, name: 'HEAD /v2/', kind: SERVER });
    expect(server.parentSpanId ?? '').toBe('');
  });
});
