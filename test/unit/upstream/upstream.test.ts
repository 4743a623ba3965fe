import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/log.js';
import { createUpstreams, type Upstream } from '../../../src/upstream/upstream.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';

/** The Upstream a guard asks: `request()` goes with the proxy's own credentials and reads a bounded body. */
let recorder: RecordingUpstream;
let upstream: Upstream;

beforeAll(async () => {
  recorder = await startRecordingUpstream();
  const passwordFile = join(mkdtempSync(join(tmpdir(), 'rap-upstream-')), 'password');
  writeFileSync(passwordFile, 'secret\n');
  const config = buildConfig({
    upstream: { url: recorder.url, auth: { type: 'basic', username: 'proxy', passwordFile } },
  });
  [upstream] = createUpstreams(config, silentLogger()) as [Upstream];
});

afterAll(async () => {
  await upstream?.close();
  await recorder?.stop();
});

describe('Upstream.request', () => {
  it("sends the proxy's credentials, never anything else of a client's, with the method asked", async () => {
    const answer = await upstream.request('/v2/team/app/manifests/v1', {
      method: 'HEAD',
      scopes: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
    });
    expect(answer.status).toBe(200);
    const seen = recorder.requests.at(-1)!;
    expect(seen).toMatchObject({ method: 'HEAD', url: '/v2/team/app/manifests/v1' });
    expect(seen.headers.authorization).toBe(`Basic ${Buffer.from('proxy:secret').toString('base64')}`);
  });

  it('reads the body through the bounded reader: an oversized answer fails the call', async () => {
    recorder.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('x'.repeat(2048));
    });
    await expect(upstream.request('/v2/', { maxBytes: 1024 })).rejects.toMatchObject({ outbound: 'too-large' });
    recorder.handle((_req, res) => res.end('{}'));
    expect((await upstream.request('/v2/')).text).toBe('{}');
  });

  it('one Upstream per configured upstream, with name, prefix and the registry it stands for', () => {
    const config = buildConfig({
      upstreams: [
        { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' },
        { name: 'local', prefix: 'local/', url: recorder.url },
      ],
    });
    const list = createUpstreams(config, silentLogger());
    expect(list.map((u) => [u.name, u.prefix, u.registry])).toEqual([
      ['hub', 'hub/', 'docker.io'],
      ['local', 'local/', new URL(recorder.url).host],
    ]);
    return Promise.all(list.map((u) => u.close()));
  });
});
