import { describe, expect, it } from 'vitest';
import { toDistributionEvent } from '../../../src/audit/distribution.js';
import { registryEvent, type RegistryAction, type RegistryFacts } from '../../../src/audit/events.js';

/** The Distribution envelope's events (distribution/notifications/event.go, bridge.go), table-driven. */
const D = `sha256:${'b'.repeat(64)}`;
const source = { publicURL: 'https://proxy.example:8443/', instanceID: 'i-1' };
const base: RegistryFacts = {
  action: 'manifest.get',
  method: 'GET',
  repository: 'prod/api',
  reference: 'v1',
  tokenSubject: 'ci:repo:acme/api',
  upstreamDigest: D,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 1234,
  bytes: { upload: 0, download: 1234 },
  status: 200,
  ms: 1,
  clientIP: '10.0.0.9',
  host: 'proxy.example:8443',
  userAgent: 'skopeo/1.13',
  requestId: 'r1',
};
const event = (over: Partial<RegistryFacts>) => registryEvent({ ...base, ...over }, [], '2026-12-06T10:00:00.000Z');

describe('Distribution notification events', () => {
  it('a manifest pull by tag: the whole record, field for field', () => {
    expect(toDistributionEvent(event({}), source, 'id-1')).toEqual({
      id: 'id-1',
      timestamp: '2026-12-06T10:00:00.000Z',
      action: 'pull',
      target: {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: 1234,
        digest: D,
        length: 1234,
        repository: 'prod/api',
        url: `https://proxy.example:8443/v2/prod/api/manifests/${D}`,
        tag: 'v1',
      },
      request: { id: 'r1', addr: '10.0.0.9', host: 'proxy.example:8443', method: 'GET', useragent: 'skopeo/1.13' },
      actor: { name: 'repo:acme/api' },
      source: { addr: 'proxy.example:8443', instanceID: 'i-1' },
    });
  });

  const cases: [string, Partial<RegistryFacts>, Record<string, unknown> | undefined][] = [
    [
      'manifest HEAD by digest: a pull, no tag',
      { action: 'manifest.head', method: 'HEAD', reference: D, bytes: { upload: 0, download: 0 } },
      { action: 'pull', target: expect.not.objectContaining({ tag: expect.anything() }) },
    ],
    [
      'blob GET: octet-stream when the upstream names none, the blobs URL',
      { action: 'blob.get', reference: D, mediaType: undefined, upstreamDigest: undefined },
      {
        action: 'pull',
        target: expect.objectContaining({
          mediaType: 'application/octet-stream',
          url: `https://proxy.example:8443/v2/prod/api/blobs/${D}`,
          size: 1234,
        }),
      },
    ],
    [
      'manifest PUT: a push sized by the body sent, with its tag',
      { action: 'manifest.put', method: 'PUT', size: undefined, bytes: { upload: 77, download: 0 } },
      { action: 'push', target: expect.objectContaining({ size: 77, length: 77, tag: 'v1' }) },
    ],
    [
      'blob upload: a push without a size (the closing PUT may hold only the last chunk)',
      {
        action: 'blob.upload',
        method: 'PUT',
        reference: 'uuid',
        mediaType: undefined,
        size: undefined,
        bytes: { upload: 5, download: 0 },
      },
      { action: 'push', target: expect.not.objectContaining({ size: expect.anything() }) },
    ],
    [
      'manifest DELETE: a delete naming the digest only',
      { action: 'manifest.delete', method: 'DELETE', reference: D, size: undefined, status: 202 },
      { action: 'delete', target: { repository: 'prod/api', digest: D } },
    ],
    ['a refusal: nothing (Distribution notifies only what it served)', { status: 403 }, undefined],
    ['a challenge: nothing', { status: 401, tokenSubject: undefined }, undefined],
    ['an upstream error: nothing', { status: 404 }, undefined],
    ['a cut connection: nothing', { status: 'aborted' }, undefined],
  ];
  it.each(cases)('%s', (_what, over, expected) => {
    const e = toDistributionEvent(event(over), source, 'id');
    if (expected === undefined) expect(e).toBeUndefined();
    else expect(e).toMatchObject(expected);
  });

  it('a token decision is no registry event', () => {
    const token = {
      schema: 'rap.audit/v1',
      audit: 'token',
      time: 'T',
      result: 'granted',
      clientIP: 'x',
      requested: [],
    };
    expect(toDistributionEvent(token as never, source)).toBeUndefined();
  });

  it('every registry action maps to pull, push or delete', () => {
    const actions: RegistryAction[] = [
      'manifest.get',
      'manifest.head',
      'manifest.put',
      'manifest.delete',
      'blob.get',
      'blob.upload',
    ];
    for (const action of actions)
      expect(['pull', 'push', 'delete']).toContain(toDistributionEvent(event({ action }), source)?.action);
  });
});
