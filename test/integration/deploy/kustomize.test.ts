import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { parseAllDocuments, parse } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { toolOrSkipReason } from '../../support/tools.js';

/**
 * deploy/ as `kubectl kustomize` renders it. kubectl is no Debian package this project can use
 * (bookworm's kubernetes-client 1.20 embeds kustomize 2, which rejects the base's `labels:`), so
 * `.ci/run` cannot install it: a missing kubectl fails under CI=true and is reported as skipped
 * elsewhere. The checks that need no tool are in test/unit/deploy/manifests.test.ts.
 */
const KUBECTL = 'kubectl 1.24 or later (kustomize 4.5+: replacements, components), e.g. from the Kubernetes apt repository';

const PROXY_KINDS = ['ClusterRoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount'];

/** Each overlay and the kinds it renders. */
const OVERLAYS: Record<string, string[]> = {
  'deploy/base': PROXY_KINDS,
  'deploy/overlays/gateway': PROXY_KINDS,
  'deploy/overlays/sidecar': [...PROXY_KINDS, 'PersistentVolumeClaim'],
  'deploy/overlays/team-a': [...PROXY_KINDS, 'PersistentVolumeClaim'],
  // the proxy's Deployment comes first (kustomize orders by kind, then name): valkey's after it
  'deploy/overlays/redis-limits': [...PROXY_KINDS, 'Deployment', 'Service'],
  'deploy/examples/ecr': [...PROXY_KINDS, 'HorizontalPodAutoscaler', 'Ingress', 'NetworkPolicy'],
};

type Doc = Record<string, any>;

function build(kubectl: string, overlay: string): Doc[] {
  const out = execFileSync(kubectl, ['kustomize', overlay], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Doc);
}

describe('deploy/ through kustomize', () => {
  it('kustomize builds base and overlays with the invariants a cluster needs', (ctx) => {
    const kubectl = toolOrSkipReason('kubectl', KUBECTL);
    if ('skip' in kubectl) return ctx.skip(kubectl.skip);
    for (const [overlay, expected] of Object.entries(OVERLAYS)) {
      const docs = build(kubectl.path, overlay);
      const kinds = docs.map((d) => d.kind).sort();
      expect(kinds, overlay).toEqual([...expected].sort());
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
      const bindings = docs.filter((d) => d.kind === 'ClusterRoleBinding');
      expect(bindings.map((d) => d.roleRef.name).sort()).toEqual(['system:auth-delegator', 'system:service-account-issuer-discovery']);
      // named after, and bound to the ServiceAccount in, the rendered namespace
      const ns = dep.metadata.namespace;
      expect(bindings.map((d) => d.metadata.name).sort()).toEqual([`registry-auth-proxy:${ns}:auth-delegator`, `registry-auth-proxy:${ns}:issuer-discovery`]);
      for (const b of bindings) expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'registry-auth-proxy', namespace: ns }]);
      // the Service and PDB select the Deployment's pods
      const labels = dep.spec.template.metadata.labels;
      for (const sel of [docs.find((d) => d.kind === 'Service')!.spec.selector, docs.find((d) => d.kind === 'PodDisruptionBudget')!.spec.selector.matchLabels]) {
        for (const [k, v] of Object.entries(sel)) expect(labels[k]).toBe(v);
      }
      // the generated config map carries a config the proxy accepts
      const cm = docs.find((d) => d.kind === 'ConfigMap' && d.data['config.yaml'])!;
      expect(() => buildConfig(parse(cm.data['config.yaml']))).not.toThrow();
      if (overlay.endsWith('base')) expect(dep.spec.replicas).toBe(2);
      // with an HPA the Deployment leaves the count to it; the PDB fits any count
      if (kinds.includes('HorizontalPodAutoscaler')) expect(dep.spec.replicas).toBeUndefined();
      expect(docs.find((d) => d.kind === 'PodDisruptionBudget')!.spec).toMatchObject({ maxUnavailable: 1 });
      expect(pod.enableServiceLinks, overlay).toBe(false);
      expect(pod.securityContext.fsGroup, overlay).toBe(65532);
      if (overlay.endsWith('sidecar') || overlay.endsWith('team-a')) {
        expect(dep.spec.replicas).toBe(1);
        expect(dep.spec.strategy).toEqual({ type: 'Recreate' });
        expect(pod.volumes.find((v: Doc) => v.name === 'registry-data').persistentVolumeClaim).toEqual({ claimName: 'registry-data' });
        expect(pod.containers.map((c: Doc) => c.name)).toEqual(['proxy', 'registry']);
        expect(pod.containers[1].env).toContainEqual({ name: 'REGISTRY_HTTP_ADDR', value: '127.0.0.1:5000' });
      }
    }
  });

  it('deploy/controller renders into one namespace with a binding named after it', (ctx) => {
    const kubectl = toolOrSkipReason('kubectl', KUBECTL);
    if ('skip' in kubectl) return ctx.skip(kubectl.skip);
    const docs = build(kubectl.path, 'deploy/controller');
    expect(docs.map((d) => d.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'ServiceAccount']);
    const binding = docs.find((d) => d.kind === 'ClusterRoleBinding')!;
    expect(binding.metadata.name).toBe('registry-auth-proxy:registry-auth-proxy:controller');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'registry-auth-proxy-controller', namespace: 'registry-auth-proxy' }]);
    expect(docs.find((d) => d.kind === 'Deployment')!.spec.template.spec.enableServiceLinks).toBe(false);
  });
});
