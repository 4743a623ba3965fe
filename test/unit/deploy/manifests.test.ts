import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { findTool } from '../../fixtures/tools.js';

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
  });
}

type Doc = Record<string, any>;
const kubectl = findTool('kubectl');

function build(overlay: string): Doc[] {
  const out = execFileSync(kubectl!, ['kustomize', overlay], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Doc);
}

describe('deploy/ manifests', () => {
  it('every YAML document under deploy/ parses', () => {
    const files = yamlFiles('deploy');
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      for (const doc of parseAllDocuments(readFileSync(f, 'utf8'))) expect(doc.errors, f).toEqual([]);
    }
  });

  it('every shipped proxy config passes the config validator', () => {
    for (const f of ['deploy/base/config.yaml', 'deploy/overlays/gateway/config.yaml', 'deploy/overlays/sidecar/config.yaml']) {
      expect(() => buildConfig(parse(readFileSync(f, 'utf8')), {}, f), f).not.toThrow();
    }
  });

  it('ships the same default policy as policies/', () => {
    expect(readFileSync('deploy/base/policies/default.yaml', 'utf8')).toBe(readFileSync('policies/default.yaml', 'utf8'));
  });

  it.skipIf(!kubectl)('kustomize builds base and overlays with the invariants a cluster needs', () => {
    for (const overlay of ['deploy/base', 'deploy/overlays/gateway', 'deploy/overlays/sidecar']) {
      const docs = build(overlay);
      const kinds = docs.map((d) => d.kind).sort();
      expect(kinds, overlay).toEqual(['ClusterRoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
      const dep = docs.find((d) => d.kind === 'Deployment')!;
      const pod = dep.spec.template.spec;
      const proxy = pod.containers.find((c: Doc) => c.name === 'proxy');
      expect(proxy.readinessProbe.httpGet.path).toBe('/readyz');
      expect(proxy.livenessProbe.httpGet.path).toBe('/healthz');
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(proxy.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(pod.serviceAccountName).toBe('registry-auth-proxy');
      // every mounted volume exists
      const volumes = new Set(pod.volumes.map((v: Doc) => v.name));
      for (const c of pod.containers) for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${overlay}: ${m.name}`).toBe(true);
      // the keys Secret is shared by every replica
      expect(pod.volumes.find((v: Doc) => v.name === 'keys').secret.secretName).toBe('registry-auth-proxy-keys');
      const roles = docs.filter((d) => d.kind === 'ClusterRoleBinding').map((d) => d.roleRef.name).sort();
      expect(roles).toEqual(['system:auth-delegator', 'system:service-account-issuer-discovery']);
      // the Service and PDB select the Deployment's pods
      const labels = dep.spec.template.metadata.labels;
      for (const sel of [docs.find((d) => d.kind === 'Service')!.spec.selector, docs.find((d) => d.kind === 'PodDisruptionBudget')!.spec.selector.matchLabels]) {
        for (const [k, v] of Object.entries(sel)) expect(labels[k]).toBe(v);
      }
      // the generated config map carries a config the proxy accepts
      const cm = docs.find((d) => d.kind === 'ConfigMap' && d.data['config.yaml'])!;
      expect(() => buildConfig(parse(cm.data['config.yaml']))).not.toThrow();
      if (overlay.endsWith('base')) expect(dep.spec.replicas).toBe(2);
      if (overlay.endsWith('sidecar')) {
        expect(pod.containers.map((c: Doc) => c.name)).toEqual(['proxy', 'registry']);
        expect(pod.containers[1].env).toContainEqual({ name: 'REGISTRY_HTTP_ADDR', value: '127.0.0.1:5000' });
      }
    }
  });

  it('the kubelet credential provider sample config is well-formed', () => {
    const file = 'deploy/credential-provider/credential-provider-config.yaml';
    const doc = parse(readFileSync(file, 'utf8')) as Doc;
    expect(doc).toMatchObject({ apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig' });
    const p = doc.providers[0];
    expect(p).toMatchObject({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', name: 'registry-auth-proxy' });
    expect(p.matchImages.length).toBeGreaterThan(0);
    expect(p.tokenAttributes).toMatchObject({ requireServiceAccount: true, cacheType: 'ServiceAccount' });
    expect(typeof p.tokenAttributes.serviceAccountTokenAudience).toBe('string');
  });
});

describe('Dockerfile', () => {
  const text = readFileSync('Dockerfile', 'utf8');
  it('is multi-stage, non-root, production-only, without HEALTHCHECK', () => {
    expect(text.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    // the default base; test/integration/container-image.test.ts builds with a local one
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(text).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(text).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(text).toMatch(/^USER 65532/m);
    expect(text).not.toMatch(/^HEALTHCHECK/m);
    expect(text).toMatch(/COPY --from=build \/src\/dist/);
    // dev dependencies never reach the runtime stage
    const runtime = text.slice(text.lastIndexOf('FROM '));
    expect(runtime).not.toMatch(/COPY --from=build \/src\/node_modules/);
    expect(runtime).not.toMatch(/npm ci --no-audit --no-fund\n/);
  });
});
