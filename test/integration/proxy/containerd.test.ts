import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';

const run = promisify(execFile);
let stack: RegistryAndProxy;
let proxy: TestProxy;
let containerd: Containerd;

beforeAll(async () => {
  stack = await startRegistryAndProxy();
  proxy = stack.proxy;
  containerd = await startContainerd();
  const image = buildOciImage(join(mkdtempSync(join(tmpdir(), 'rap-ctr-')), 'img'), { layers: 2 });
  const id = await proxy.mintIdentity();
  await run(requireTool('skopeo'), [
    'copy',
    '--dest-tls-verify=false',
    '--dest-creds',
    `x:${id}`,
    image.ref,
    `docker://${proxy.host}/team-a/app:v1`,
  ]);
});
afterAll(async () => {
  await containerd?.stop();
  await stack?.stop();
});

describe("containerd (the resolver kubelet's CRI plugin uses)", () => {
  it('pulls through the proxy with an identity token, using POST /token', async () => {
    const id = await proxy.mintIdentity();
    const out = await containerd.pull(`${proxy.host}/team-a/app:v1`, { user: `anything:${id}` });
    expect(out).toMatch(/done|unpacking|elapsed/);
    expect(await containerd.images()).toContain(`${proxy.host}/team-a/app:v1`);
    const tokenLines = proxy.logs.filter((l) => l.includes('"audit":"token"') && l.includes('containerd-client'));
    expect(tokenLines.length).toBeGreaterThan(0);
    expect(JSON.parse(tokenLines[0]!)).toMatchObject({ result: 'granted', granted: ['repository:team-a/app:pull'] });
  });

  it('is refused for a repository the policy forbids', async () => {
    const id = await proxy.mintIdentity({ team: 'team-z' });
    // containerd prints the status line, whose reason phrase carries the reason (clients/denials.test.ts)
    await expect(containerd.pull(`${proxy.host}/team-a/app:v1`, { user: `anything:${id}` })).rejects.toThrow(
      '403 Forbidden: issuer ci, subject job-42 was refused pull on repository team-a/app: no rule grants pull',
    );
  });
});
