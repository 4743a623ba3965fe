import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { selfSignedCertificateForKey } from '../../../src/pki/certificates.js';
import { generatePrivateKeyPem, signingKeyFromPem } from '../../../src/token/signing-keys.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, freePort, type Registry } from '../../fixtures/registry.js';
import { requireTool } from '../../support/tools.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

const run = promisify(execFile);
let registry: Registry;
let tokenServer: Server;
let proxy: TestProxy;
let dir: string;
let tokenPort: number;
const issued: { account: string | null; scopes: string[] }[] = [];

/**
 * The upstream is a stock Distribution registry in token mode with a token server of the test's
 * own that accepts exactly robot:s3cret. The proxy answers the upstream's challenge itself.
 */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-uptoken-'));
  const keyPem = generatePrivateKeyPem('ES256');
  const certPem = await selfSignedCertificateForKey(keyPem, 'upstream token server');
  writeFileSync(join(dir, 'bundle.crt'), certPem);
  const key = signingKeyFromPem(keyPem, 'upstream', certPem);
  const port = await freePort();
  tokenPort = port;
  tokenServer = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    if (auth !== `Basic ${Buffer.from('robot:s3cret').toString('base64')}`) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"bad credentials"}');
      return;
    }
    const scopes = url.searchParams.getAll('scope');
    issued.push({ account: url.searchParams.get('account'), scopes });
    const access = scopes.map((s) => {
      const [type, rest] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1)];
      return {
        type,
        name: rest.slice(0, rest.lastIndexOf(':')),
        actions: rest.slice(rest.lastIndexOf(':') + 1).split(','),
      };
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: key.kid, x5c: key.x5c! })
      .setIssuer('upstream-token-server')
      .setSubject('robot')
      .setAudience('upstream.test')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 300)
      .setJti(randomUUID())
      .sign(key.privateKey);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: 300 }));
  });
  await new Promise<void>((r) => tokenServer.listen(port, '127.0.0.1', r));
  registry = await startRegistry({
    tokenAuth: {
      realm: `http://127.0.0.1:${port}/token`,
      service: 'upstream.test',
      issuer: 'upstream-token-server',
      rootCertBundle: join(dir, 'bundle.crt'),
    },
  });
  writeFileSync(join(dir, 'pw'), 's3cret\n');
  proxy = await startProxy({
    config: {
      upstream: {
        url: registry.url,
        auth: {
          type: 'registry-token',
          username: 'robot',
          passwordFile: join(dir, 'pw'),
          realmHosts: [`127.0.0.1:${port}`],
        },
      },
    },
  });
});
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await new Promise((r) => tokenServer?.close(r));
});

describe('an upstream in token mode (Harbor, Docker Hub, Distribution auth: token)', () => {
  it('is fronted with upstream.auth.type registry-token: skopeo pushes and pulls with an identity token', async () => {
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity();
    const skopeo = requireTool('skopeo');
    await run(skopeo, [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/team-a/tokened:v1`,
    ]);
    const { stdout } = await run(skopeo, [
      'inspect',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/tokened:v1`,
    ]);
    expect(JSON.parse(stdout).Name).toBe(`${proxy.host}/team-a/tokened`);
    // the upstream saw the proxy's robot account, scoped per request, and tokens were reused
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((i) => i.account === 'robot')).toBe(true);
    expect(issued.some((i) => i.scopes.includes('repository:team-a/tokened:pull,push'))).toBe(true);
    const distinct = new Set(issued.map((i) => i.scopes.join(' ')));
    expect(issued.length).toBe(distinct.size);
  });

  it("/readyz does the token dance with the proxy's own credentials: ready with the right password, not with a wrong one (and clients are told which side failed)", async () => {
    expect(await (await fetch(`${proxy.url}/readyz`)).json()).toEqual({ status: 'ready' });
    writeFileSync(join(dir, 'wrong-pw'), 'nope\n');
    const wrong = await startProxy({
      config: {
        upstream: {
          url: registry.url,
          auth: {
            type: 'registry-token',
            username: 'robot',
            passwordFile: join(dir, 'wrong-pw'),
            realmHosts: [`127.0.0.1:${tokenPort}`],
          },
        },
      },
    });
    try {
      const r = await fetch(`${wrong.url}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.json()).toEqual({ status: 'not ready', reasons: ["upstream rejected the proxy's credentials"] });
      expect(wrong.logs.find((l) => l.includes("readiness: upstream rejected the proxy's credentials"))).toMatch(
        /token server .* answered HTTP 401/,
      );
      const id = await wrong.mintIdentity();
      const out = await run(requireTool('skopeo'), [
        'inspect',
        '--tls-verify=false',
        '--retry-times',
        '0',
        '--creds',
        `x:${id}`,
        `docker://${wrong.host}/team-a/tokened:v1`,
      ]).then(
        () => 'succeeded',
        (e: { stderr?: string }) => e.stderr ?? '',
      );
      // skopeo 1.9 prints: … received unexpected HTTP status: 502 Bad Gateway (upstream rejected the proxy's credentials)
      expect(out).toContain(
        "received unexpected HTTP status: 502 Bad Gateway (upstream rejected the proxy's credentials)",
      );
    } finally {
      await wrong.stop();
    }
  });

  it('still refuses what the policy forbids before the upstream is asked', async () => {
    const before = issued.length;
    const t = await proxy.registryToken(['repository:team-b/x:pull']);
    const r = await fetch(`${proxy.url}/v2/team-b/x/manifests/latest`, { headers: { authorization: `Bearer ${t}` } });
    // refused by policy at /token, so the registry call is a 403 DENIED naming the reason
    expect(r.status).toBe(403);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DENIED');
    expect(issued.length).toBe(before);
  });
});
