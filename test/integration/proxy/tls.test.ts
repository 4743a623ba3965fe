import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCertificateAuthority } from '../../support/ca.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { requireTool } from '../../support/tools.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

const run = promisify(execFile);
let registry: Registry;
let proxy: TestProxy;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-tls-'));
  const ca = await createCertificateAuthority('rap test CA');
  const leaf = await ca.issue({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(dir, 'tls.key'), leaf.keyPem);
  mkdirSync(join(dir, 'certs'));
  writeFileSync(join(dir, 'certs', 'ca.crt'), ca.certPem);
  registry = await startRegistry();
  proxy = await startProxy({
    upstream: registry.url,
    config: { tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } },
  });
});
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('HTTPS listener', () => {
  it('serves the token endpoint and the registry API over verified TLS to skopeo', async () => {
    expect(proxy.url.startsWith('https://')).toBe(true);
    const image = buildOciImage(join(dir, 'img'), { layers: 1 });
    const id = await proxy.mintIdentity();
    const certDir = join(dir, 'certs');
    const { stderr } = await run(requireTool('skopeo'), [
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/team-a/secure:v1`,
    ]);
    expect(stderr).not.toMatch(/x509|certificate/i);
    expect(await registry.repositories()).toContain('team-a/secure');
    // and without our CA, skopeo refuses the connection: the certificate really is checked
    await expect(
      run(requireTool('skopeo'), ['inspect', '--creds', `x:${id}`, `docker://${proxy.host}/team-a/secure:v1`]),
    ).rejects.toThrow(/x509|certificate/i);
  });
});
