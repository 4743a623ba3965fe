import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MANIFEST_MEDIA_TYPES } from '../../../../src/config/schema.js';
import { OciError } from '../../../../src/oci/errors.js';
import { classify, isRouteError, type Route } from '../../../../src/oci/route.js';
import { runGuards, type Guard, type GuardContext, type GuardUpstream } from '../../../../src/proxy/guards.js';
import { createKeyedLock } from '../../../../src/proxy/guards/keyed-lock.js';
import { manifestHeadRefusal, mediaTypeOf } from '../../../../src/proxy/guards/manifest-limits.js';
import { createTagLookups, type headTag } from '../../../../src/proxy/guards/tag-lookup.js';

/** Issue 21, the pure parts of the proxy side: manifest limits, the guard outcome's hold, the keyed lock, the lookup cache. */

const LIMITS = { manifestMaxBytes: 4 << 20, manifestMediaTypes: DEFAULT_MANIFEST_MEDIA_TYPES };
const OCI = 'application/vnd.oci.image.manifest.v1+json';

describe('manifestHeadRefusal', () => {
  it.each<[string, string[], number | undefined, number | undefined, string]>([
    ['an OCI manifest within the limit', [OCI], 1000, undefined, ''],
    ['chunked (no length): judged while read', [OCI], undefined, undefined, ''],
    [
      'parameters and case do not matter',
      ['Application/VND.docker.distribution.manifest.v2+json; charset=utf-8'],
      10,
      undefined,
      '',
    ],
    ['exactly the limit', [OCI], 4 << 20, undefined, ''],
    [
      'one byte over',
      [OCI],
      (4 << 20) + 1,
      413,
      'manifest of 4194305 bytes is larger than this registry accepts: limits.manifestMaxBytes is 4194304 bytes',
    ],
    [
      'an unlisted type',
      ['application/vnd.oci.artifact.manifest.v1+json'],
      10,
      415,
      'manifest media type "application/vnd.oci.artifact.manifest.v1+json" is not accepted here',
    ],
    ['no Content-Type (the registry would guess from the body)', [], 10, 415, 'it sent no Content-Type'],
    ['two Content-Types', [OCI, 'text/plain'], 10, 415, 'it sent several Content-Type headers'],
  ])('%s', (_name, contentTypes, contentLength, status, message) => {
    const refused = manifestHeadRefusal(
      { contentTypes, ...(contentLength === undefined ? {} : { contentLength }) },
      LIMITS,
    );
    if (!status) return expect(refused).toBeUndefined();
    expect(refused?.status).toBe(status);
    expect(refused?.code).toBe('MANIFEST_INVALID');
    expect(refused?.message).toContain(message);
    expect(refused?.headers).toEqual({ Connection: 'close' });
  });

  it('names the accepted list; mediaTypeOf drops parameters', () => {
    expect(manifestHeadRefusal({ contentTypes: ['x/y'] }, LIMITS)?.message).toContain(
      `accepted (limits.manifestMediaTypes): ${DEFAULT_MANIFEST_MEDIA_TYPES.join(', ')}`,
    );
    expect(mediaTypeOf(' A/B ; q=1')).toBe('a/b');
    expect(mediaTypeOf(undefined)).toBe('');
  });
});

function route(method: string, path: string): Route {
  const r = classify(method, path);
  if (isRouteError(r)) throw r;
  return r;
}
const ctx: GuardContext = {
  req: {} as IncomingMessage,
  route: route('PUT', '/v2/team-a/app/manifests/v1'),
  grant: { identity: undefined, anonymous: false, access: [] },
  upstream: { name: '', prefix: '' } as GuardUpstream,
};

describe('runGuards: a hold hands the body on and releases once', () => {
  it('the body a guard read reaches later guards and the forwarder; releases run when asked', async () => {
    const released: string[] = [];
    const reads: Guard = async () => ({ hold: true, body: Buffer.from('{}'), release: () => released.push('reads') });
    let seen: Buffer | undefined;
    const sees: Guard = async (c) => ((seen = c.body), { hold: true, release: () => released.push('sees') });
    const out = await runGuards([reads, sees], ctx);
    expect(seen?.toString()).toBe('{}');
    expect('route' in out && out.body?.toString()).toBe('{}');
    expect(released).toEqual([]);
    if ('route' in out) out.release?.();
    if ('route' in out) out.release?.();
    expect(released).toEqual(['reads', 'sees']);
  });

  it('a later refusal releases what earlier guards hold; so does a throw', async () => {
    const released: string[] = [];
    const locks: Guard = async () => ({ hold: true, release: () => released.push('lock') });
    const refuses: Guard = async () => new OciError(403, 'DENIED', 'no');
    expect(await runGuards([locks, refuses], ctx)).toMatchObject({ refused: { code: 'DENIED' }, guard: 'refuses' });
    expect(released).toEqual(['lock']);
    const throws: Guard = async () => {
      throw new Error('boom');
    };
    await expect(runGuards([locks, throws], ctx)).rejects.toThrow('boom');
    expect(released).toEqual(['lock', 'lock']);
  });
});

describe('createKeyedLock', () => {
  it('one holder per key, waiters in order, other keys free; bounded wait', async () => {
    const lock = createKeyedLock(50);
    const first = await lock.acquire('a');
    expect(await lock.acquire('b')).toBeTypeOf('function');
    const order: string[] = [];
    const second = lock.acquire('a').then((r) => (order.push('second'), r));
    const third = lock.acquire('a').then((r) => (order.push('third'), r));
    first!();
    first!(); // idempotent: does not let the third in early
    (await second)!();
    (await third)!();
    expect(order).toEqual(['second', 'third']);
    const held = await lock.acquire('c');
    expect(await lock.acquire('c')).toBeUndefined(); // waited 50 ms in vain
    held!();
    expect(await lock.acquire('c')).toBeTypeOf('function');
  });

  it('a full queue is refused at once', async () => {
    const lock = createKeyedLock(10_000, 1);
    await lock.acquire('k');
    void lock.acquire('k');
    expect(await lock.acquire('k')).toBeUndefined();
  });
});

describe('createTagLookups', () => {
  it('caches answers (not failures) per upstream, repository and tag; forget drops one', async () => {
    const asked: string[] = [];
    let answer: Awaited<ReturnType<typeof headTag>> = { tagExists: false, digest: '' };
    const head: typeof headTag = async (t, name, tag) => (asked.push(`${t.name}/${name}:${tag}`), answer);
    const lookups = createTagLookups(60_000, head);
    const up = { name: 'u' } as GuardUpstream;
    await lookups.get(up, 'app', 'v1');
    await lookups.get(up, 'app', 'v1');
    await lookups.get({ name: 'other' } as GuardUpstream, 'app', 'v1');
    expect(asked).toEqual(['u/app:v1', 'other/app:v1']);
    lookups.forget(up, 'app', 'v1');
    answer = { error: 'down' };
    expect(await lookups.get(up, 'app', 'v1')).toEqual({ error: 'down' });
    answer = { tagExists: true, digest: 'sha256:x' };
    expect(await lookups.get(up, 'app', 'v1')).toEqual(answer);
    expect(asked).toHaveLength(4);
    await lookups.get(up, 'app', 'v1', true); // fresh: asked whatever is cached
    expect(asked).toHaveLength(5);
    await lookups.get(up, 'app', 'v1');
    expect(asked).toHaveLength(5);
    const uncached = createTagLookups(0, head);
    await uncached.get(up, 'app', 'v1');
    await uncached.get(up, 'app', 'v1');
    expect(asked).toHaveLength(7);
  });
});
