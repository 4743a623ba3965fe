import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { selfSignedCertificateForKey } from '../../../src/pki/certificates.js';
import { generatePrivateKeyPem, signingKeyFromPem } from '../../../src/token/signing-keys.js';
import { silentLogger } from '../../../src/log.js';
import { acrAuth } from '../../../src/upstream/kinds/acr.js';
import { acrScopeOf } from '../../../src/upstream/kinds/acr-refresh.js';
import { outboundAgent, outboundJson } from '../../../src/http/outbound.js';
import type { UpstreamConfig } from '../../../src/config/types.js';
import { ACR_AUDIENCE, startFakeAcr, startFakeEntra, type FakeAcr, type FakeEntra } from '../../fixtures/fake-azure.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startChildProxy, type ChildProxy } from '../../helpers/child-proxy.js';
import { createCertificateAuthority } from '../../support/ca.js';
import { ciIssuer } from '../../support/issuer.js';
import { requireTool } from '../../support/tools.js';
import { configProblem } from '../../support/config.js';

/**
 * Issue 12, Azure Container Registry (`upstream.auth: {type: acr}`): the proxy — the built one, as a
 * child process, so that NODE_EXTRA_CA_CERTS makes it trust the fake Entra ID's HTTPS (MSAL takes
 * only an https authority) — gets a Microsoft Entra token with @azure/identity's
 * DefaultAzureCredential through workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST
 * pointing at the fake, as the AKS webhook sets them), exchanges it at ACR's `/oauth2/exchange` for
 * a refresh token, and uses that in the token dance against ACR's token service (fake) in front of
 * a real Distribution registry in token mode.
 */
const run = promisify(execFile);
const NULL_GUID = '00000000-0000-0000-0000-000000000000';
/** The first refresh token lasts 10 s (renewed at ~80 % of what is left when it arrives), later ones 3 h as ACR's. */
const FIRST_REFRESH_TTL = 10;

let dir: string;
let entra: FakeEntra;
let acr: FakeAcr;
let registry: Registry;
let proxy: ChildProxy;
let modulesLog: string;
const children: ChildProxy[] = [];

async function skopeo(args: string[]): Promise<string> {
  return (await run(requireTool('skopeo'), args, { timeout: 60_000 })).stdout;
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * A child proxy in front of the fake ACR, with the environment the AKS workload identity webhook
 * gives a pod; NODE_OPTIONS adds a resolve hook recording every @azure/identity module it loads.
 */
async function acrProxy(): Promise<ChildProxy> {
  const env: Record<string, string> = {
    AZURE_CLIENT_ID: entra.clientId,
    AZURE_TENANT_ID: entra.tenant,
    AZURE_FEDERATED_TOKEN_FILE: join(dir, 'azure-identity-token'),
    AZURE_AUTHORITY_HOST: entra.authorityHost,
    NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
    NODE_OPTIONS: `--import ${join(dir, 'record-modules.mjs')}`,
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const child = await startChildProxy(acr.url, { upstream: { url: acr.url, auth: { type: 'acr' } } });
    children.push(child);
    return child;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A resolve hook (module.register) appending every resolved @azure/identity URL to `file`. */
function writeModuleRecorder(file: string): void {
  const hook = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.includes('/node_modules/@azure/identity/')) appendFileSync(${JSON.stringify(file)}, r.url + '\\n');
  return r;
}`;
  writeFileSync(
    join(dir, 'record-modules.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});\n`,
  );
}

const identityModules = () =>
  existsSync(modulesLog) ? readFileSync(modulesLog, 'utf8').split('\n').filter(Boolean) : [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-acr-'));
  modulesLog = join(dir, 'modules.log');
  writeModuleRecorder(modulesLog);
  const ca = await createCertificateAuthority();
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  // The projected service-account token the workload identity credential presents as client_assertion.
  const subjectToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"sub":"system:serviceaccount:registry:proxy"}').toString('base64url')}.sig`;
  writeFileSync(join(dir, 'azure-identity-token'), subjectToken);
  entra = await startFakeEntra({
    tls: await ca.issue({ commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'] }),
    subjectToken,
  });
  const keyPem = generatePrivateKeyPem('ES256');
  const certPem = await selfSignedCertificateForKey(keyPem, 'azure container registry');
  writeFileSync(join(dir, 'bundle.crt'), certPem);
  const issuer = 'Azure Container Registry';
  acr = await startFakeAcr({
    entra,
    key: signingKeyFromPem(keyPem, 'acr', certPem),
    issuer,
    refreshTtl: (n) => (n === 1 ? FIRST_REFRESH_TTL : 3 * 3600),
  });
  registry = await startRegistry({
    tokenAuth: { realm: `${acr.url}/oauth2/token`, service: acr.host, issuer, rootCertBundle: join(dir, 'bundle.crt') },
  });
  acr.setRegistry(registry.url);
  proxy = await acrProxy();
});

afterAll(async () => {
  for (const c of children) await c.stop();
  await registry?.stop();
  await acr?.stop();
  await entra?.stop();
});

describe('ACR upstream auth (@azure/identity workload identity, /oauth2/exchange, refresh token in the token dance)', () => {
  it('loads @azure/identity at the first request; concurrent first requests share one Entra token and one exchange', async () => {
    // Start-up loaded none of it: only a request needing a credential does.
    expect(identityModules()).toEqual([]);
    // Ten scope sets at once: ten registry tokens, from the one refresh token of one exchange.
    const names = Array.from({ length: 10 }, (_, i) => `team/concurrent-${i}`);
    const answers = await Promise.all(
      names.map(async (name) => {
        const token = await proxy.registryToken([`repository:${name}:pull`]);
        const res = await fetch(`${proxy.url}/v2/${name}/tags/list`, { headers: { authorization: `Bearer ${token}` } });
        await res.body?.cancel();
        return res.status;
      }),
    );
    expect(answers).toEqual(names.map(() => 404)); // authenticated upstream: the repositories do not exist
    expect(identityModules().length).toBeGreaterThan(0);
    expect(entra.issued).toEqual([
      { token: expect.any(String), scope: `${ACR_AUDIENCE}/.default`, at: expect.any(Number) },
    ]);
    expect(acr.exchanges).toEqual([
      {
        status: 200,
        at: expect.any(Number),
        grantType: 'access_token',
        service: acr.host,
        tenant: entra.tenant,
        accessToken: entra.issued[0]!.token,
        refreshToken: expect.any(String),
        answeredAt: expect.any(Number),
      },
    ]);
    const granted = acr.tokenRequests.filter((t) => names.some((n) => t.scopes.includes(`repository:${n}:pull`)));
    expect(granted).toHaveLength(10);
    expect(
      granted.every(
        (t) =>
          t.status === 200 && t.method === 'GET' && t.user === NULL_GUID && t.service === acr.host && t.refresh === 1,
      ),
    ).toBe(true);
  });

  it('renews the refresh token in the background before it expires; skopeo pushes and pulls with the new one', async () => {
    await waitUntil(() => acr.exchanges.length >= 2, 'a second exchange');
    const [first, second] = acr.exchanges as [FakeAcr['exchanges'][0], FakeAcr['exchanges'][0]];
    expect(second.status).toBe(200);
    const firstClaims = JSON.parse(Buffer.from(first.refreshToken!.split('.')[1]!, 'base64url').toString()) as {
      exp: number;
    };
    // Renewed before the first expired, and not long before 80 % of its lifetime: the proxy renews at
    // 80 % of what is left when the answer arrives, less a 10 % margin, and the first exchange here
    // takes 1-2 s (loading @azure/identity and the modules it reaches under vitest's transform), so at
    // least half the lifetime (a renewal storm would come at once).
    expect(second.at).toBeLessThan(firstClaims.exp * 1000);
    expect(second.at - first.answeredAt!).toBeGreaterThanOrEqual(0.5 * (firstClaims.exp * 1000 - first.answeredAt!));
    // The Entra token is still good (MSAL's cache): the same one is exchanged again.
    expect(second.accessToken).toBe(first.accessToken);
    expect(entra.issued).toHaveLength(1);
    // Past the first refresh token's expiry (the fake then refuses it), push and pull through the proxy.
    await new Promise((r) => setTimeout(r, Math.max(0, firstClaims.exp * 1000 - Date.now() + 200)));
    const before = acr.tokenRequests.length;
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await (await ciIssuer()).mint({ sub: 'skopeo' });
    const host = proxy.url.replace(/^http:\/\//, '');
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${host}/team/app:v1`,
    ]);
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${id}`,
      `docker://${host}/team/app:v1`,
      `oci:${join(dir, 'pulled')}:v1`,
    ]);
    const inspect = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${host}/team/app:v1`]),
    ) as { Name: string };
    expect(inspect.Name).toBe(`${host}/team/app`);
    expect(await registry.repositories()).toContain('team/app');
    const used = acr.tokenRequests.slice(before);
    expect(used.length).toBeGreaterThan(0);
    expect(used.every((t) => t.status === 200 && t.refresh === 2)).toBe(true);
    expect(used.some((t) => t.scopes.includes('repository:team/app:pull,push'))).toBe(true);
    expect(acr.exchanges).toHaveLength(2); // 3 h now: no further exchange
  });

  it('a refresh token the token service refuses is dropped: a new exchange, and the same request goes through', async () => {
    acr.revokeRefreshTokens();
    const before = acr.tokenRequests.length;
    const token = await proxy.registryToken(['repository:team/fresh:pull']);
    const res = await fetch(`${proxy.url}/v2/team/fresh/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
    expect(acr.tokenRequests.slice(before).map((t) => [t.status, t.refresh])).toEqual([
      [401, 0],
      [200, 3],
    ]);
    expect(acr.exchanges.map((e) => e.status)).toEqual([200, 200, 200]);
    expect(entra.issued).toHaveLength(1);
  });

  it('the Entra token goes only to /oauth2/exchange, the refresh token only to /oauth2/token; neither is logged', () => {
    const aad = entra.issued.map((i) => i.token);
    const refresh = acr.exchanges.flatMap((e) => (e.refreshToken ? [e.refreshToken] : []));
    const exposed = (s: FakeAcr['seen'][0]) => {
      const basic = /"authorization":"Basic ([^"]+)"/.exec(s.headers)?.[1];
      return [s.url, s.headers, s.body, basic ? Buffer.from(basic, 'base64').toString() : ''].join('\n');
    };
    for (const s of acr.seen) {
      const text = exposed(s);
      const path = s.url.split('?')[0];
      for (const t of aad)
        expect(text.includes(t), `${s.method} ${path} carries the Entra token`).toBe(path === '/oauth2/exchange');
      if (path !== '/oauth2/token')
        for (const t of refresh) expect(text.includes(t), `${s.method} ${path} carries a refresh token`).toBe(false);
    }
    expect(acr.seen.filter((s) => s.url === '/oauth2/exchange')).toHaveLength(3);
    for (const t of [...aad, ...refresh]) expect(proxy.output()).not.toContain(t);
  });

  it("/readyz probes the registry with a registry token for no scope, from the forwarder's credential (issue 20: no second one)", async () => {
    const issued = entra.issued.length;
    const exchanges = acr.exchanges.length;
    expect(await (await fetch(`${proxy.url}/readyz`)).json()).toEqual({ status: 'ready' });
    expect(entra.issued).toHaveLength(issued);
    expect(acr.exchanges).toHaveLength(exchanges);
    expect(acr.tokenRequests.at(-1)).toMatchObject({ status: 200, scopes: [], refresh: exchanges });
  });

  it('a refused exchange answers 502 naming the proxy-side failure; the log says why; the next request recovers', async () => {
    acr.refuseExchange({
      status: 401,
      code: 'UNAUTHORIZED',
      message: 'the identity has no access to registry acrtest',
    });
    const other = await acrProxy();
    const issuedBefore = entra.issued.length;
    const exchangesBefore = acr.exchanges.length;
    const token = await other.registryToken(['repository:team/app:pull']);
    const get = () => fetch(`${other.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    const refused = await get();
    expect(refused.status).toBe(502);
    expect(await refused.json()).toMatchObject({
      errors: [{ code: 'UNAVAILABLE', message: expect.stringContaining("rejected the proxy's own credentials") }],
    });
    expect(refused.statusText).toBe("Bad Gateway (upstream rejected the proxy's credentials)");
    await waitUntil(() => other.output().includes('could not obtain an ACR registry token'), 'the error in the log');
    expect(other.output()).toContain(
      `ACR token exchange ${acr.url}/oauth2/exchange answered HTTP 401 (UNAUTHORIZED: the identity has no access to registry acrtest)`,
    );
    acr.refuseExchange(undefined);
    const ok = await get();
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ name: 'team/app', tags: ['v1'] });
    // After a refusal the credential starts afresh: a new Entra token for the second exchange.
    expect(entra.issued.length - issuedBefore).toBe(2);
    expect(acr.exchanges.slice(exchangesBefore).map((e) => e.status)).toEqual([401, 200]);
  });

  it('a token realm on another origin is refused before any Entra token is asked for', async () => {
    // The registry's own challenge names the ACR front as realm: another origin than the registry.
    const upstream = {
      url: registry.url,
      timeout: 5000,
      followRedirects: false,
      auth: { type: 'acr' },
    } as UpstreamConfig;
    let asked = 0;
    const auth = acrAuth(upstream, silentLogger(), {
      get: () => {
        asked++;
        return Promise.reject(new Error('must not be asked'));
      },
      forget: () => {},
    });
    await expect(auth.authorization([])).rejects.toMatchObject({ untrustedRealm: true });
    expect(asked).toBe(0);
    await auth.close();
  });

  it("asks for ACR's audience in the registry's cloud, told by its host", () => {
    expect(acrScopeOf('https://myregistry.azurecr.io')).toBe('https://containerregistry.azure.net/.default');
    expect(acrScopeOf('https://MyRegistry.azurecr.cn')).toBe('https://containerregistry.azure.cn/.default');
    expect(acrScopeOf('https://myregistry.azurecr.us')).toBe('https://containerregistry.azure.us/.default');
    expect(acrScopeOf('https://registry.example.com')).toBe('https://containerregistry.azure.net/.default'); // a custom domain
  });

  it('is configured as {type: acr} with an optional tenant, nothing else', () => {
    const url = 'https://myregistry.azurecr.io';
    expect(configProblem({ upstream: { url, auth: { type: 'acr' } } })).toBe('no error');
    expect(configProblem({ upstream: { url, auth: { type: 'acr', tenant: 'contoso.onmicrosoft.com' } } })).toBe(
      'no error',
    );
    expect(
      configProblem({ upstream: { url, auth: { type: 'acr', tenant: 'https://login.microsoftonline.com/x' } } }),
    ).toBe('upstream.auth.tenant: "https://login.microsoftonline.com/x" is not a Microsoft Entra tenant ID or domain');
    expect(configProblem({ upstream: { url, auth: { type: 'acr', passwordFile: '/k' } } })).toBe(
      'upstream.auth.passwordFile: unknown key (known: type, tenant)',
    );
    // docs/upstreams.md's snippet, as users copy it
    const doc = readFileSync(new URL('../../../docs/upstreams.md', import.meta.url), 'utf8');
    const snippet = doc.slice(doc.indexOf('## Azure Container Registry')).split('```yaml')[1]!.split('```')[0]!;
    expect(configProblem(parse(snippet) as Record<string, unknown>)).toBe('no error');
  });
});

/**
 * Issue 18 item 4, ACR's side: an Entra token that @azure/identity reports as already expired (a
 * clock far off) bounded the refresh token's lifetime to the past, and renewal re-ran at 0 ms after
 * every exchange. The Entra token here is a real one from the fake Entra ID (its wire format, over
 * HTTPS); only its expiry as the SDK would report it is the test's. Exchanges are counted at the fake ACR.
 */
describe('ACR refresh-token renewal when the answer is already expired', () => {
  it('exchanges a bounded number of times in a window, with or without traffic; reports the short lifetime', async () => {
    const dispatcher = outboundAgent({ caFile: join(dir, 'ca.pem'), timeoutMs: 5000 });
    const form = new URLSearchParams({
      client_id: entra.clientId,
      scope: `${ACR_AUDIENCE}/.default`,
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: readFileSync(join(dir, 'azure-identity-token'), 'utf8'),
    });
    const answer = await outboundJson(`${entra.authorityHost}/${entra.tenant}/oauth2/v2.0/token`, {
      dispatcher,
      timeoutMs: 5000,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    await dispatcher.close();
    const aad = (answer.body as { access_token: string }).access_token;
    const outcomes: string[] = [];
    const upstream = { url: acr.url, timeout: 5000, followRedirects: false, auth: { type: 'acr' } } as UpstreamConfig;
    const auth = acrAuth(
      upstream,
      silentLogger(),
      { get: async () => ({ token: aad, expiresOnTimestamp: Date.now() - 1000 }), forget: () => {} },
      (outcome) => outcomes.push(outcome),
    );
    try {
      const before = acr.exchanges.length;
      await auth.authorization([]);
      expect(acr.exchanges.length - before).toBe(1);
      // Quiet for a second, then traffic (new scope sets: each asks the token service with the refresh token).
      await new Promise((r) => setTimeout(r, 1000));
      for (let i = 0; i < 10; i++)
        await auth.authorization([{ type: 'repository', name: `team-a/app${i}`, actions: ['pull'] }]);
      expect(acr.exchanges.length - before).toBeLessThanOrEqual(2);
      expect(outcomes[0]).toBe('short-lifetime');
    } finally {
      await auth.close();
    }
  });
});
