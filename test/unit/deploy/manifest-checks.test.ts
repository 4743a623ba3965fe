import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { checkManifests, type CheckName } from '../../support/manifest-checks.js';

/**
 * The analysis behind test/integration/deploy/render.test.ts, on hand-made shapes: each broken shape
 * is one that main 5f47390 shipped (issue 17), and the fixed one next to it passes.
 */

type Doc = Record<string, any>;

const NS = 'registry-auth-proxy';
const IMAGE = 'ghcr.io/registry-auth-proxy/registry-auth-proxy:0.1.0';
const CONFIG = { listen: '0.0.0.0:8080', publicURL: 'https://r.example', tokens: { signingKeyFile: '/etc/rap/keys' }, policies: '/etc/rap/policies' };

interface Shape {
  keysMode?: number;
  fsGroup?: number;
  replicas?: number;
  pdb?: Doc;
  sidecar?: boolean;
  serviceLinks?: boolean;
  /** namespace of the ClusterRoleBinding subject ('' = none) */
  subjectNamespace?: string;
  bindingName?: string;
  config?: Doc;
  extraMounts?: Doc[];
  extraVolumes?: Doc[];
  hpaMin?: number;
  capDrop?: string[];
  runAsUser?: number;
}

function render(s: Shape = {}): Doc[] {
  const containers: Doc[] = [
    {
      name: 'proxy',
      image: IMAGE,
      args: ['serve', '--config', '/etc/rap/config.yaml'],
      securityContext: { capabilities: { drop: s.capDrop ?? ['ALL'] } },
      volumeMounts: [
        { name: 'config', mountPath: '/etc/rap/config.yaml', subPath: 'config.yaml', readOnly: true },
        { name: 'policies', mountPath: '/etc/rap/policies', readOnly: true },
        { name: 'keys', mountPath: '/etc/rap/keys', readOnly: true },
        ...(s.extraMounts ?? []),
      ],
    },
  ];
  const volumes: Doc[] = [
    { name: 'config', configMap: { name: 'rap-config' } },
    { name: 'policies', configMap: { name: 'rap-policies' } },
    { name: 'keys', secret: { secretName: 'rap-keys', defaultMode: s.keysMode ?? 0o440 } },
    ...(s.extraVolumes ?? []),
  ];
  if (s.sidecar) {
    containers.push({
      name: 'registry',
      image: 'registry:2',
      env: [{ name: 'REGISTRY_HTTP_ADDR', value: '127.0.0.1:5000' }],
      securityContext: { capabilities: { drop: ['ALL'] } },
      volumeMounts: [{ name: 'data', mountPath: '/var/lib/registry' }],
    });
    volumes.push({ name: 'data', emptyDir: {} });
  }
  const meta = (name: string) => ({ name, namespace: NS });
  const subject: Doc = { kind: 'ServiceAccount', name: 'rap' };
  if (s.subjectNamespace !== '') subject.namespace = s.subjectNamespace ?? NS;
  const docs: Doc[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('rap') },
    { apiVersion: 'v1', kind: 'Service', metadata: meta('registry-auth-proxy'), spec: { selector: { app: 'rap' } } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('rap-config'), data: { 'config.yaml': stringify(s.config ?? CONFIG) } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('rap-policies'), data: { 'default.yaml': 'rules: []\n' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: s.bindingName ?? `rap:${NS}:auth-delegator` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [subject],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta('rap'),
      spec: {
        replicas: s.replicas ?? 2,
        selector: { matchLabels: { app: 'rap' } },
        template: {
          metadata: { labels: { app: 'rap' } },
          spec: {
            serviceAccountName: 'rap',
            ...(s.serviceLinks === false ? { enableServiceLinks: false } : {}),
            securityContext: { runAsNonRoot: true, runAsUser: s.runAsUser ?? 65532, runAsGroup: 65532, ...(s.fsGroup !== undefined ? { fsGroup: s.fsGroup } : {}) },
            containers,
            volumes,
          },
        },
      },
    },
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta('rap'), spec: { ...(s.pdb ?? { maxUnavailable: 1 }), selector: { matchLabels: { app: 'rap' } } } },
  ];
  if (s.hpaMin !== undefined) {
    docs.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta('rap'),
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'rap' }, minReplicas: s.hpaMin, maxReplicas: 6 },
    });
  }
  return docs;
}

const checks = (docs: Doc[]): CheckName[] => [...new Set(checkManifests(docs).map((f) => f.check))].sort();

describe('manifest checks', () => {
  it('the fixed shape passes every check', () => {
    expect(checkManifests(render({ fsGroup: 65532, serviceLinks: false, sidecar: true }))).toEqual([]);
  });

  // [what, shape, the checks that fail]
  const table: [string, Shape, CheckName[]][] = [
    // 5f47390: deploy/base/deployment.yaml, keys Secret 0400, no fsGroup → EACCES on the real kubelet
    ['5f47390: keys Secret 0400 without fsGroup', { keysMode: 0o400 }, ['read']],
    ['keys Secret 0400 with fsGroup (the kubelet adds 0440)', { keysMode: 0o400, fsGroup: 65532 }, []],
    ['keys Secret 0440 without fsGroup (group root, not 65532)', { keysMode: 0o440 }, ['read']],
    ['keys Secret 0444 without fsGroup (world-readable)', { keysMode: 0o444 }, []],
    ['keys 0400 read by root with every capability dropped (root owns it)', { keysMode: 0o400, runAsUser: 0 }, []],
    ['keys 0000 read by root with every capability dropped', { keysMode: 0, runAsUser: 0 }, ['read']],
    ['keys 0000 read by root with CAP_DAC_OVERRIDE', { keysMode: 0, runAsUser: 0, capDrop: [] }, []],
    // 5f47390: sidecar overlay, service links on → REGISTRY_AUTH_PROXY_PORT → Distribution panics
    ['5f47390: sidecar registry with service links', { fsGroup: 65532, sidecar: true }, ['service-links']],
    ['sidecar registry with enableServiceLinks: false', { fsGroup: 65532, sidecar: true, serviceLinks: false }, []],
    // 5f47390: sidecar overlay, replicas 1 + base PDB minAvailable 1 → drains hang
    ['5f47390: replicas 1 with minAvailable 1', { fsGroup: 65532, replicas: 1, pdb: { minAvailable: 1 } }, ['pdb']],
    ['replicas 2 with minAvailable 1', { fsGroup: 65532, replicas: 2, pdb: { minAvailable: 1 } }, []],
    ['replicas 1 with maxUnavailable 1', { fsGroup: 65532, replicas: 1, pdb: { maxUnavailable: 1 } }, []],
    ['replicas 3 with maxUnavailable 0', { fsGroup: 65532, replicas: 3, pdb: { maxUnavailable: 0 } }, ['pdb']],
    ['replicas 1 with minAvailable 50% (rounded up: 1)', { fsGroup: 65532, replicas: 1, pdb: { minAvailable: '50%' } }, ['pdb']],
    ['replicas 4 with maxUnavailable 10% (rounded up: 1)', { fsGroup: 65532, replicas: 4, pdb: { maxUnavailable: '10%' } }, []],
    ['an HPA that may scale to 1 with minAvailable 1', { fsGroup: 65532, replicas: 3, hpaMin: 1, pdb: { minAvailable: 1 } }, ['pdb']],
    // 5f47390: an overlay with namespace team-a moved the ServiceAccount, not the binding's subject
    ['5f47390: binding subject left in another namespace', { fsGroup: 65532, subjectNamespace: 'default' }, ['rbac']],
    ['binding subject without a namespace', { fsGroup: 65532, subjectNamespace: '' }, ['rbac']],
    ['5f47390: binding name without the namespace (two instances collide)', { fsGroup: 65532, bindingName: 'rap-auth-delegator' }, ['rbac']],
    [
      'a config file path that no volume provides',
      { fsGroup: 65532, config: { ...CONFIG, upstream: { url: 'https://u.example', auth: { type: 'basic', username: 'u', passwordFile: '/etc/rap/upstream/password' } } } },
      ['read'],
    ],
    [
      'an upstream password Secret 0400 without fsGroup',
      {
        config: { ...CONFIG, upstream: { url: 'https://u.example', auth: { type: 'basic', username: 'u', passwordFile: '/etc/rap/upstream/password' } } },
        keysMode: 0o444,
        extraMounts: [{ name: 'upstream', mountPath: '/etc/rap/upstream', readOnly: true }],
        extraVolumes: [{ name: 'upstream', secret: { secretName: 'up', defaultMode: 0o400 } }],
      },
      ['read'],
    ],
    [
      'an item mode overrides defaultMode',
      {
        fsGroup: 65532,
        config: { ...CONFIG, upstream: { url: 'https://u.example', auth: { type: 'basic', username: 'u', passwordFile: '/etc/rap/upstream/password' } } },
        extraMounts: [{ name: 'upstream', mountPath: '/etc/rap/upstream', readOnly: true }],
        extraVolumes: [{ name: 'upstream', secret: { secretName: 'up', defaultMode: 0o440, items: [{ key: 'pw', path: 'password', mode: 0o400 }] } }],
      },
      [],
    ],
  ];
  it.each(table)('%s', (_what, shape, failing) => {
    expect(checks(render(shape))).toEqual(failing);
  });

  it('in-cluster mode needs the service-account token mounted', () => {
    const docs = render({ fsGroup: 65532 });
    const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    expect(checkManifests(docs)).toEqual([]);
    pod.automountServiceAccountToken = false;
    expect(checkManifests(docs).map((f) => f.message)).toEqual([
      expect.stringMatching(/^\/var\/run\/secrets\/kubernetes.io\/serviceaccount\/token .*no volume is mounted there/),
      expect.stringMatching(/serviceaccount\/ca.crt .*no volume is mounted there/),
    ]);
  });

  it('a registry whose storage is a root-owned claim without fsGroup cannot write', () => {
    const docs = render({ sidecar: true, serviceLinks: false, keysMode: 0o444 });
    const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    pod.containers[1].securityContext.runAsUser = 65532;
    pod.volumes.find((v: Doc) => v.name === 'data').emptyDir = undefined;
    pod.volumes.find((v: Doc) => v.name === 'data').persistentVolumeClaim = { claimName: 'data' };
    expect(checks(docs)).toEqual(['write']);
    pod.securityContext.fsGroup = 65532;
    expect(checks(docs)).toEqual([]);
  });

  it('an HPA does not scale pods that share a ReadWriteOnce claim', () => {
    const docs = render({ fsGroup: 65532, hpaMin: 2 });
    expect(checkManifests(docs)).toEqual([]);
    const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    pod.volumes.push({ name: 'data', persistentVolumeClaim: { claimName: 'data' } });
    docs.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'] } });
    expect(checks(docs)).toEqual(['hpa']);
    docs.at(-1)!.spec.accessModes = ['ReadWriteMany'];
    expect(checks(docs)).toEqual([]);
  });

  it('every namespaced object has a namespace', () => {
    const docs = render({ fsGroup: 65532 });
    docs.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: {} });
    expect(checkManifests(docs)).toEqual([{ check: 'namespace', where: '-/PersistentVolumeClaim/data', message: expect.stringMatching(/no namespace/) }]);
  });
});
