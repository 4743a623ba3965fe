import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { identity, limitedProxy, tokenRequest } from './support.js';

/**
 * A Docker Hub pull quota per namespace at /v2/ (issue 23, CONTRACT §8's example): manifest GETs
 * to the `hub` upstream count against the caller's namespace claim; HEADs, blobs and other
 * upstreams do not. Admitted answers carry Docker Hub's RateLimit headers. (What real clients print
 * for the 429: clients.test.ts.)
 */

const RULE = {
  name: 'hub-pulls',
  key: 'claims.ns',
  match: 'request.upstream == "hub" && request.kind == "manifest"',
  rate: { per: '1h', count: 3 },
};

describe('hub quota per namespace', () => {
  let upstream: RecordingUpstream;
  let proxy: Awaited<ReturnType<typeof limitedProxy>>;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    // Docker Hub reports the pull limit of the proxy's own account (PROTOCOLS.md)
    upstream.handle((_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
        'ratelimit-limit': '100;w=21600',
        'ratelimit-remaining': '76;w=21600',
      });
      res.end('{}');
    });
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
    const remaining = [];
    for (const sub of ['a1', 'a2', 'a1', 'a2']) {
      const answer = await pull(sub, 'team-a', manifest);
      a.push(answer.status);
      remaining.push(answer.headers.get('ratelimit-remaining'));
      if (answer.status === 200) expect(answer.headers.get('ratelimit-limit')).toBe('3;w=3600');
    }
    expect(a).toEqual([200, 200, 200, 429]);
    // Docker Hub's convention on every admitted pull, ours over the upstream's
    expect(remaining).toEqual(['2;w=3600', '1;w=3600', '0;w=3600', '0;w=3600']);
    const refused = await pull('a3', 'team-a', manifest);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3000);
    expect(refused.headers.get('ratelimit-limit')).toBe('3;w=3600');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0;w=3600');
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 'TOOMANYREQUESTS' });
    expect(body.errors[0]!.message).toMatch(
      /^rate limit "hub-pulls" of 3 per 1h \(counted per claims\.ns\) reached: resets in \d+m \(\d{4}-\d\d-\d\dT[\d:]+Z\)$/,
    );
    expect(JSON.stringify(body)).not.toContain('team-a');
    const head = await pull('a1', 'team-a', manifest, 'HEAD');
    expect(head.status).toBe(200);
    // not counted: no limit of ours to report, the upstream's headers pass as they are
    expect(head.headers.get('ratelimit-limit')).toBe('100;w=21600');
    expect((await pull('a1', 'team-a', `hub/library/alpine/blobs/sha256:${'0'.repeat(64)}`)).status).toBe(200);
    expect((await pull('a1', 'team-a', 'local/app/manifests/latest')).status).toBe(200);
    expect((await pull('b1', 'team-b', manifest)).status).toBe(200);
  });
});
