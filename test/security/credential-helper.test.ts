import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { base64url } from 'jose';
import { DEFAULT_TOKEN_FILES, kubernetesAPIAudience } from '../../src/clients/token-source.js';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { requireTool } from '../support/tools.js';
import { runCli, runCredentialHelper } from '../helpers/cli.js';

/**
 * Issue 9 item 10: the Docker credential helper handed the identity token to ANY registry when
 * RAP_REGISTRIES was unset (a `credsStore` helper is asked about docker.io and every other host),
 * and its default token path fell back to the pod's API-server token. Now unknown registries get
 * the protocol's "not found", and no client hands out a token whose audience is the Kubernetes API.
 */
const NOT_FOUND = 'credentials not found in native keychain\n';
const now = Math.floor(Date.now() / 1000);
const jwt = (claims: Record<string, unknown>) =>
  `${base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'k' }))}.${base64url.encode(JSON.stringify({ exp: now + 3600, ...claims }))}.c2ln`;
const k8s = {
  'kubernetes.io': { namespace: 'team-a', serviceaccount: { name: 'builder', uid: 'u' } },
  sub: 'system:serviceaccount:team-a:builder',
};

/** A projected token for the registry: the one thing the helpers should hand out. */
const REGISTRY_TOKEN = jwt({
  ...k8s,
  iss: 'https://kubernetes.default.svc.cluster.local',
  aud: ['registry.example.com'],
});
/** Tokens that authenticate to a Kubernetes API server. */
const API_TOKENS: Record<string, string> = {
  'automounted (kubeadm)': jwt({
    ...k8s,
    iss: 'https://kubernetes.default.svc.cluster.local',
    aud: ['https://kubernetes.default.svc.cluster.local'],
  }),
  'EKS (aud kubernetes.default.svc)': jwt({
    ...k8s,
    iss: 'https://oidc.eks.eu-west-1.amazonaws.com/id/ABC',
    aud: ['https://kubernetes.default.svc'],
  }),
  'GKE (aud = own iss)': jwt({
    ...k8s,
    iss: 'https://container.googleapis.com/v1/projects/p/locations/l/clusters/c',
    aud: ['https://container.googleapis.com/v1/projects/p/locations/l/clusters/c'],
  }),
  'kind/k3s (aud = own iss, string)': jwt({
    ...k8s,
    iss: 'https://example.cluster.internal',
    aud: 'https://example.cluster.internal',
  }),
  AKS: jwt({
    ...k8s,
    iss: 'https://westeurope.oic.prod-aks.azure.com/t/g/',
    aud: ['https://myaks-dns-1a2b.hcp.westeurope.azmk8s.io', '"myaks-dns-1a2b.hcp.westeurope.azmk8s.io"'],
  }),
  'legacy secret token': jwt({
    iss: 'kubernetes/serviceaccount',
    'kubernetes.io/serviceaccount/namespace': 'team-a',
    sub: 'system:serviceaccount:team-a:builder',
    exp: undefined,
  }),
};

let dir: string;
let tokenFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rap-helper-sec-'));
  tokenFile = join(dir, 'registry-token');
  writeFileSync(tokenFile, REGISTRY_TOKEN);
});

describe('docker-credential-registry-auth-proxy get: only the registries in RAP_REGISTRIES', () => {
  it('with RAP_REGISTRIES unset answers "not found" for every server (docker.io included) and says why on stderr', async () => {
    for (const server of ['https://index.docker.io/v1/', 'registry.example.com', 'ghcr.io']) {
      const r = await runCredentialHelper(['get'], {
        stdin: server,
        env: { RAP_TOKEN_FILE: tokenFile, RAP_REGISTRIES: '' },
      });
      expect(r.code, server).toBe(1);
      expect(r.stdout).toBe(NOT_FOUND);
      expect(r.stderr).toMatch(/RAP_REGISTRIES is not set: not sending the identity token/);
      expect(r.stdout + r.stderr).not.toContain(REGISTRY_TOKEN);
    }
  });

  it('answers for the configured host only; look-alike hosts get "not found" quietly', async () => {
    const env = { RAP_TOKEN_FILE: tokenFile, RAP_REGISTRIES: 'registry.example.com' };
    const ok = await runCredentialHelper(['get'], { stdin: 'https://registry.example.com\n', env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({
      ServerURL: 'https://registry.example.com',
      Username: 'registry-auth-proxy',
      Secret: REGISTRY_TOKEN,
    });
    for (const server of [
      'https://index.docker.io/v1/',
      'registry.example.com.evil.test',
      'evil.test/registry.example.com',
      'https://registry.example.com@evil.test',
      'registry.example.com:5000',
    ]) {
      const r = await runCredentialHelper(['get'], { stdin: server, env });
      expect(r.code, server).toBe(1);
      expect(r.stdout, server).toBe(NOT_FOUND);
      expect(r.stderr, server).toBe('');
    }
  });

  it('a real client (skopeo) with the helper for a foreign registry and RAP_REGISTRIES unset never sends the token there', async () => {
    const skopeo = requireTool('skopeo');
    const foreign: RecordingUpstream = await startRecordingUpstream();
    try {
      const host = new URL(foreign.url).host;
      // a registry in token mode: /v2/ challenges, /token hands out an anonymous token, nothing exists
      foreign.handle((req, res) => {
        if (req.url?.startsWith('/token')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"token":"anonymous"}');
        }
        if (!req.headers.authorization?.startsWith('Bearer ')) {
          res.writeHead(401, {
            'content-type': 'application/json',
            'www-authenticate': `Bearer realm="${foreign.url}/token",service="foreign"`,
            'docker-distribution-api-version': 'registry/2.0',
          });
          return res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
        }
        res.writeHead(404, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
        res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
      });
      const binDir = join(dir, 'bin');
      mkdirSync(binDir, { recursive: true });
      const entry = fileURLToPath(new URL('../helpers/credential-helper-entry.ts', import.meta.url));
      writeFileSync(
        join(binDir, 'docker-credential-registry-auth-proxy'),
        `#!/bin/sh\nexec "${process.execPath}" --import tsx "${entry}" "$@"\n`,
      );
      chmodSync(join(binDir, 'docker-credential-registry-auth-proxy'), 0o755);
      const authFile = join(dir, 'auth.json');
      writeFileSync(authFile, JSON.stringify({ credHelpers: { [host]: 'registry-auth-proxy' } }));
      const env = {
        ...process.env,
        PATH: `${binDir}:${process.env.PATH}`,
        REGISTRY_AUTH_FILE: authFile,
        RAP_TOKEN_FILE: tokenFile,
        RAP_REGISTRIES: '',
      };
      // fails (the image does not exist); what matters is what the foreign registry saw
      await promisify(execFile)(
        skopeo,
        ['inspect', '--tls-verify=false', '--retry-times', '0', `docker://${host}/team-a/app:latest`],
        {
          env,
          timeout: 60_000,
        },
      ).catch(() => undefined);
      expect(foreign.requests.length).toBeGreaterThan(0);
      expect(foreign.requests.map((r) => r.url)).toContain('/v2/');
      const seen = JSON.stringify(foreign.requests);
      expect(seen).not.toContain(REGISTRY_TOKEN);
      expect(seen).not.toContain(Buffer.from(`registry-auth-proxy:${REGISTRY_TOKEN}`).toString('base64'));
      expect(foreign.requests.filter((r) => r.headers.authorization?.startsWith('Basic'))).toEqual([]);
    } finally {
      await foreign.stop();
    }
  }, 90_000);
});

describe('no client hands out a Kubernetes API-server token', () => {
  it('the automounted API token is no default token path', () => {
    expect(DEFAULT_TOKEN_FILES).toEqual(['/var/run/secrets/tokens/registry-token']);
    expect(DEFAULT_TOKEN_FILES).not.toContain('/var/run/secrets/kubernetes.io/serviceaccount/token');
  });

  it.each(Object.keys(API_TOKENS))(
    'docker helper refuses the %s token (exit 1, the reason — never the token — on stdout, where the protocol reads errors)',
    async (name) => {
      const file = join(dir, `api-${name.replace(/\W+/g, '-')}`);
      writeFileSync(file, API_TOKENS[name]!);
      const r = await runCredentialHelper(['get'], {
        stdin: 'registry.example.com',
        env: { RAP_TOKEN_FILE: file, RAP_REGISTRIES: 'registry.example.com' },
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^refusing to hand out the token from .*Kubernetes API/);
      expect(r.stdout).not.toMatch(/Secret/);
      expect(r.stdout + r.stderr).not.toContain(API_TOKENS[name]);
    },
  );

  it('credential-provider refuses API tokens in node mode (token file) and in service-account mode', async () => {
    const file = join(dir, 'node-token');
    writeFileSync(file, API_TOKENS['automounted (kubeadm)']!);
    const request = {
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderRequest',
      image: 'registry.example.com/team-a/app:1',
    };
    const node = await runCli(['credential-provider'], {
      stdin: JSON.stringify(request),
      env: { RAP_TOKEN_FILE: file },
    });
    expect(node.code).toBe(1);
    expect(node.stdout).toBe('');
    expect(node.stderr).toMatch(
      /credential-provider: refusing to hand out the token from .*node-token.*Kubernetes API/,
    );
    const sa = await runCli(['credential-provider'], {
      stdin: JSON.stringify({ ...request, serviceAccountToken: API_TOKENS['EKS (aud kubernetes.default.svc)'] }),
    });
    expect(sa.code).toBe(1);
    expect(sa.stdout).toBe('');
    expect(sa.stderr).toMatch(/serviceAccountToken.*Kubernetes API/);
    // a token with the registry's audience still works in both modes
    writeFileSync(file, REGISTRY_TOKEN);
    const ok = await runCli(['credential-provider'], { stdin: JSON.stringify(request), env: { RAP_TOKEN_FILE: file } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).auth['registry.example.com'].password).toBe(REGISTRY_TOKEN);
  });

  it('tells API tokens from registry tokens (pure)', () => {
    for (const [name, token] of Object.entries(API_TOKENS)) expect(kubernetesAPIAudience(token), name).toBeDefined();
    expect(kubernetesAPIAudience(REGISTRY_TOKEN)).toBeUndefined();
    // a GitHub Actions token whose audience happens to equal an issuer-like URL is not a Kubernetes token
    expect(
      kubernetesAPIAudience(
        jwt({ iss: 'https://token.actions.githubusercontent.com', aud: 'https://token.actions.githubusercontent.com' }),
      ),
    ).toBeUndefined();
    expect(kubernetesAPIAudience('not-a-jwt')).toBeUndefined();
  });
});
