import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { identity, limitedProxy, tokenRequest } from './support.js';

/**
 * A Docker Hub pull quota per namespace at /v2/ (issue 23): manifest GETs to the `hub` upstream
 * count against the caller's namespace claim; HEADs, blobs and other upstreams do not. (skopeo and
 * podman honour Retry-After, up to 60 s, 5 attempts, before printing the reason: too slow for here.)
 */

const RULE = {
  name: 'hub-pulls',
  at: ['registry'],
  key: 'claims.ns',
  upstreams: ['hub'],
  quota: { limit: 3, window: '1h' },
  costs: { manifest: 1 },
};

describe('hub quota per namespace', () => {
  let upstream: RecordingUpstream;
  let proxy: Awaited<ReturnType<typeof limitedProxy>>;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    const upstreams = [
      { name: 'hub', prefix: 'hub/', url: upstream.url },
      { name: 'local', url: upstream.url },
    ];
    proxy = await limitedProxy({ rules: [RULE] }, { upstream: undefined, upstreams });
  });
  afterAll(async () => {
    proxy?.kill();
    await upstream?.stop();
  });

  async function pull(sub: string, ns: string, path: string, method = 'GET'): Promise<Response> {
    const repo = path.split('/').slice(0, -2).join('/');
    const answer = await tokenRequest(proxy.url, await identity(sub, { ns }), `repository:${repo}:pull`);
    const { token } = JSON.parse(answer.body) as { token: string };
    return fetch(`${proxy.url}/v2/${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  }

  it('one namespace exhausts its share, another still pulls; HEAD, blobs and other upstreams are free', async () => {
    const manifest = 'hub/library/alpine/manifests/latest';
    const a = [];
    for (const sub of ['a1', 'a2', 'a1', 'a2']) a.push((await pull(sub, 'team-a', manifest)).status);
    expect(a).toEqual([200, 200, 200, 429]);
    const refused = await pull('a3', 'team-a', manifest);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3000);
    expect(refused.headers.get('ratelimit-limit')).toBe('3;w=3600');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0;w=3600');
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 'TOOMANYREQUESTS' });
    expect(body.errors[0]!.message).toMatch(/^rate limit "hub-pulls" \(3 per 1h\) reached for team-a: resets in \d+m/);
    expect((await pull('a1', 'team-a', manifest, 'HEAD')).status).toBe(200);
    expect((await pull('a1', 'team-a', `hub/library/alpine/blobs/sha256:${'0'.repeat(64)}`)).status).toBe(200);
    expect((await pull('a1', 'team-a', 'local/app/manifests/latest')).status).toBe(200);
    expect((await pull('b1', 'team-b', manifest)).status).toBe(200);
  });
});
