import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { OciError } from '../../../../src/oci/errors.js';
import { classify, isRouteError, type Route } from '../../../../src/oci/route.js';
import type { UpstreamLookup } from '../../../../src/policy/request.js';
import {
  runGuards,
  withinAuthorized,
  type Guard,
  type GuardContext,
  type GuardHold,
  type GuardUpstream,
} from '../../../../src/proxy/guards.js';
import { requestFacts } from '../../../../src/proxy/guards/request-rules.js';
import {
  ARTIFACT_TAG,
  createCoverage,
  manifestFacts,
  signatureStep,
} from '../../../../src/proxy/guards/signature-cover.js';
import { signaturesGuard } from '../../../../src/proxy/guards/signatures.js';
import type { TagLookups } from '../../../../src/proxy/guards/tag-lookup.js';
import type { Verdict } from '../../../../src/trust/types.js';
import type { Trust } from '../../../../src/trust/verify.js';

/** The signatures guard over fake requests, a fake upstream serving manifests and a fake Trust. */

const sha = (b: string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const d = (c: string): string => `sha256:${c.repeat(64)}`;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const image = (config: string, ...layers: string[]) =>
  JSON.stringify({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config },
    layers: layers.map((l) => ({ mediaType: LAYER, digest: l })),
  });
const SIGNED = image(d('c'), d('1'));
const UNSIGNED = image(d('e'), d('2'));
const INDEX = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [{ digest: sha(SIGNED) }],
});
const SIG = JSON.stringify({
  schemaVersion: 2,
  config: { digest: d('f') },
  layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: d('3') }],
});
const MANIFESTS = new Map([SIGNED, UNSIGNED, INDEX, SIG].map((m) => [sha(m), m]));

function route(method: string, path: string): Route {
  const r = classify(method, path, '');
  if (isRouteError(r)) throw r;
  return r;
}

const verdict = (verified: boolean, mode: 'enforce' | 'audit' = 'enforce'): Verdict => ({
  verified,
  signers: verified ? ['prod'] : [],
  policies: [{ policy: 'prod', mode, satisfied: verified, required: ['key prod'] }],
});

function fakeTrust(mode: 'enforce' | 'audit' = 'enforce'): Trust & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    applies: (r) => r.startsWith('prod/'),
    enforces: () => mode === 'enforce',
    verifyImage: async (_r, digest) => (
      asked.push(digest),
      verdict(digest === sha(SIGNED) || digest === sha(INDEX), mode)
    ),
  };
}

const upstream = {
  name: '',
  prefix: '',
  url: 'http://registry.test',
  config: { url: 'http://registry.test', timeout: 1000 },
  request: async (path: string) => {
    const m = MANIFESTS.get(path.split('/').pop()!);
    return m ? { status: 200, headers: {}, text: m } : { status: 404, headers: {}, text: '' };
  },
} as unknown as GuardUpstream;

const lookups = (answer: UpstreamLookup): TagLookups => ({ get: async () => answer, forget: () => undefined });
const logger = { warn: () => undefined } as never;

function guardOf(
  mode: 'enforce' | 'audit' = 'enforce',
  tag: UpstreamLookup = { tagExists: true, digest: sha(SIGNED) },
) {
  const trust = fakeTrust(mode);
  const guard = signaturesGuard(
    { trust, logger, ttlMs: 60_000, lookupTimeoutMs: 1000, tagTtlMs: 0 },
    lookups(tag),
    createCoverage(60_000),
  );
  const run = (method: string, path: string, access: { type: string; name: string; actions: string[] }[] = []) => {
    const ctx: GuardContext = {
      req: {} as IncomingMessage,
      route: route(method, path),
      grant: { anonymous: false, access },
      upstream,
    };
    return guard(ctx).then((answer) => ({ ctx, answer }));
  };
  return { trust, run };
}

describe('signatureStep and manifestFacts (pure)', () => {
  const applies = (r: string) => r.startsWith('prod/');
  it.each<[string, string, string, string]>([
    ['a tag in a protected repository', 'GET', '/v2/prod/app/manifests/v1', 'tag'],
    ['a digest', 'HEAD', `/v2/prod/app/manifests/${d('a')}`, 'digest'],
    ['a blob', 'GET', `/v2/prod/app/blobs/${d('a')}`, 'blob'],
    ['cosign .sig tag', 'GET', `/v2/prod/app/manifests/sha256-${'a'.repeat(64)}.sig`, 'artifact-tag'],
    ['referrers fallback tag', 'GET', `/v2/prod/app/manifests/sha256-${'a'.repeat(64)}`, 'artifact-tag'],
    ['unprotected repository', 'GET', '/v2/dev/app/manifests/v1', 'skip'],
    ['a push', 'PUT', '/v2/prod/app/manifests/v1', 'skip'],
    ['tags list', 'GET', '/v2/prod/app/tags/list', 'skip'],
  ])('%s', (_what, method, path, kind) => expect(signatureStep(route(method, path), applies).kind).toBe(kind));

  it('reads config, layers, children, and tells a signature artifact', () => {
    expect(manifestFacts(JSON.parse(SIGNED))).toEqual({ children: [], blobs: [d('c'), d('1')], artifact: false });
    expect(manifestFacts(JSON.parse(INDEX))).toEqual({ children: [sha(SIGNED)], blobs: [], artifact: false });
    expect(manifestFacts(JSON.parse(SIG)).artifact).toBe(true);
    expect(manifestFacts('junk')).toEqual({ children: [], blobs: [], artifact: false });
    expect(ARTIFACT_TAG.test(`sha256-${'a'.repeat(64)}.att`)).toBe(true);
    expect(ARTIFACT_TAG.test(`sha256-${'a'.repeat(64)}.exe`)).toBe(false);
  });
});

describe('signaturesGuard', () => {
  it('a signed tag: verified, rewritten to its digest (within what was authorized), its blobs then served', async () => {
    const { run } = guardOf();
    const { ctx, answer } = await run('GET', '/v2/prod/app/manifests/v1');
    const hold = answer as GuardHold;
    expect(hold.route?.reference).toBe(sha(SIGNED));
    expect(hold.expectDigest).toBe(sha(SIGNED));
    expect(hold.image).toEqual({ verified: true, signers: ['prod'] });
    expect(withinAuthorized(ctx.route, hold.route!)).toBe(true);
    expect((await run('GET', `/v2/prod/app/blobs/${d('1')}`)).answer).toBeUndefined();
    expect((await run('GET', `/v2/prod/app/blobs/${d('c')}`)).answer).toBeUndefined();
  });

  it('an unsigned tag: 403 DENIED naming image, digest and requirement; its blobs refused', async () => {
    const { run } = guardOf('enforce', { tagExists: true, digest: sha(UNSIGNED) });
    const { answer } = await run('HEAD', '/v2/prod/app/manifests/v1');
    expect(answer).toBeInstanceOf(OciError);
    expect((answer as OciError).status).toBe(403);
    expect((answer as OciError).code).toBe('DENIED');
    expect((answer as OciError).message).toBe(`prod/app@${sha(UNSIGNED)}: no signature by key prod (policy prod)`);
    const blob = (await run('GET', `/v2/prod/app/blobs/${d('2')}`)).answer as OciError;
    expect(blob.message).toMatch(/not referenced by a verified manifest .* pull the image by a signed manifest first/);
  });

  it('an upstream error while looking refuses; an absent tag is answered 404 here', async () => {
    expect(
      ((await guardOf('enforce', { error: 'boom' }).run('GET', '/v2/prod/app/manifests/v1')).answer as OciError).status,
    ).toBe(403);
    expect(
      (
        (await guardOf('enforce', { tagExists: false, digest: '' }).run('GET', '/v2/prod/app/manifests/v1'))
          .answer as OciError
      ).status,
    ).toBe(404);
    const missing = (await guardOf().run('GET', `/v2/prod/app/manifests/${d('9')}`)).answer as OciError;
    expect(missing.message).toMatch(/could not look for signatures: the upstream answered HTTP 404/);
  });

  it("a verified index covers its children, which are not verified again; the child's blobs follow", async () => {
    const { run, trust } = guardOf('enforce', { tagExists: true, digest: sha(INDEX) });
    expect(((await run('GET', '/v2/prod/app/manifests/multi')).answer as GuardHold).expectDigest).toBe(sha(INDEX));
    expect(((await run('GET', `/v2/prod/app/manifests/${sha(SIGNED)}`)).answer as GuardHold).image?.verified).toBe(
      true,
    );
    expect(trust.asked).toEqual([sha(INDEX)]);
    expect((await run('GET', `/v2/prod/app/blobs/${d('1')}`)).answer).toBeUndefined();
  });

  it('a signature artifact by digest passes unverified with its blobs; a pusher checks blobs freely', async () => {
    const { run } = guardOf();
    expect(((await run('GET', `/v2/prod/app/manifests/${sha(SIG)}`)).answer as GuardHold).image?.verified).toBe(false);
    expect((await run('GET', `/v2/prod/app/blobs/${d('3')}`)).answer).toBeUndefined();
    const pusher = [{ type: 'repository', name: 'prod/app', actions: ['pull', 'push'] }];
    expect((await run('HEAD', `/v2/prod/app/blobs/${d('7')}`, pusher)).answer).toBeUndefined();
  });

  it("cosign's .sig tag: served by digest, its blobs remembered; an image under such a tag is served but not its blobs", async () => {
    const SIG_TAG = `/v2/prod/app/manifests/sha256-${'a'.repeat(64)}.sig`;
    const sig = guardOf('enforce', { tagExists: true, digest: sha(SIG) });
    expect(((await sig.run('GET', SIG_TAG)).answer as GuardHold).route?.reference).toBe(sha(SIG));
    expect((await sig.run('GET', `/v2/prod/app/blobs/${d('3')}`)).answer).toBeUndefined();
    const disguised = guardOf('enforce', { tagExists: true, digest: sha(UNSIGNED) });
    expect(((await disguised.run('GET', SIG_TAG)).answer as GuardHold).expectDigest).toBe(sha(UNSIGNED));
    expect((await disguised.run('GET', `/v2/prod/app/blobs/${d('2')}`)).answer).toBeInstanceOf(OciError);
    expect((await disguised.run('GET', `/v2/prod/app/manifests/${sha(UNSIGNED)}`)).answer).toBeInstanceOf(OciError);
  });

  it('audit: an unsigned image and its blobs are served', async () => {
    const { run } = guardOf('audit', { tagExists: true, digest: sha(UNSIGNED) });
    expect(((await run('GET', '/v2/prod/app/manifests/v1')).answer as GuardHold).image?.verified).toBe(false);
    expect((await run('GET', `/v2/prod/app/blobs/${d('8')}`)).answer).toBeUndefined();
  });
});

describe('signatures before request-time rules', () => {
  it('the rules see the tag the client named and the verdict; the upstream gets the digest', async () => {
    const trust = fakeTrust();
    const guard = signaturesGuard(
      { trust, logger, ttlMs: 60_000, lookupTimeoutMs: 1000, tagTtlMs: 0 },
      lookups({ tagExists: true, digest: sha(SIGNED) }),
    );
    let seen: ReturnType<typeof requestFacts>;
    const rules: Guard = async function rules(ctx) {
      seen = requestFacts(ctx, 'registry.test');
      return undefined;
    };
    const req = { headers: {}, socket: { remoteAddress: '10.0.0.1' } } as unknown as IncomingMessage;
    const outcome = await runGuards([guard, rules], {
      req,
      route: route('GET', '/v2/prod/app/manifests/v1'),
      grant: { anonymous: false, access: [] },
      upstream,
    });
    expect('route' in outcome && outcome.route.reference).toBe(sha(SIGNED));
    expect('route' in outcome && outcome.expectDigest).toBe(sha(SIGNED));
    expect(seen!).toMatchObject({ reference: 'v1', image: { verified: true, signers: ['prod'] } });
  });
});
