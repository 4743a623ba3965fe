import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { outcome, requireTool } from '../../support/tools.js';
import { runCli } from '../../helpers/cli.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

let dir: string;
let proxy: TestProxy;
let registry: Registry;

async function sk(args: string[]): Promise<{ ok: boolean; out: string }> {
  return outcome(requireTool('skopeo'), args);
}

/**
 * Token-server mode: a stock Distribution 2.8 registry uses the proxy's /token as its realm and
 * trusts its tokens through `rootcertbundle` (tokens carry x5c). Clients talk to the registry directly.
 */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-tokenserver-'));
  const gen = await runCli(['keys', 'generate', '--cert', '--out', join(dir, 'signing')]);
  expect(gen.code, gen.stderr).toBe(0);
  proxy = await startProxy({
    config: { tokens: { signingKeyFile: join(dir, 'signing.pem'), certificateFile: join(dir, 'signing.crt') } },
  });
  registry = await startRegistry({
    tokenAuth: {
      realm: `${proxy.url}/token`,
      service: 'registry.test',
      issuer: proxy.url,
      rootCertBundle: join(dir, 'signing.crt'),
    },
  });
});
afterAll(async () => {
  await registry?.stop();
  await proxy?.stop();
});

describe('token-server mode with Distribution 2.8 (auth: token, rootcertbundle)', () => {
  it('lets skopeo push and pull directly to the registry with an identity token', async () => {
    const host = new URL(registry.url).host;
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity();
    const push = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${host}/team-a/direct:v1`,
    ]);
    expect(push.ok, `${push.out}\n${registry.logs().slice(-2000)}`).toBe(true);
    const pull = await sk([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${id}`,
      `docker://${host}/team-a/direct:v1`,
      `oci:${join(dir, 'pulled')}:v1`,
    ]);
    expect(pull.ok, pull.out).toBe(true);
    expect(readFileSync(join(dir, 'pulled', 'index.json'), 'utf8')).toContain('manifests');
  });

  it('is refused by the registry where the policy says no', async () => {
    const host = new URL(registry.url).host;
    const image = buildOciImage(join(dir, 'img2'), { layers: 1 });
    const id = await proxy.mintIdentity();
    const push = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${host}/team-b/direct:v1`,
    ]);
    expect(push.ok).toBe(false);
    expect(push.out).toMatch(/denied|unauthorized|insufficient/i);
    expect(await registry.repositories()).not.toContain('team-b/direct');
  });
});
