import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { checkManifests, type CheckName } from '../../support/manifest-checks.js';
import { toolOrSkipReason } from '../../support/tools.js';

/**
 * The render-and-read check (issue 17): every kustomization under deploy/ rendered with
 * `kubectl kustomize`, and every optional component on top of an overlay, must pass
 * test/support/manifest-checks.ts — each container can read (and write) what it is configured to,
 * PDBs can be satisfied, RBAC subjects are the rendered ServiceAccounts, no env-prefix-configured
 * container gets service links, nothing is left without a namespace. The same check fails on the
 * deploy/ of main 5f47390, rendered from git.
 */
const KUBECTL = 'kubectl 1.24 or later (kustomize 4.5+: replacements, components), e.g. from the Kubernetes apt repository';

type Doc = Record<string, any>;

function render(kubectl: string, dir: string): Doc[] {
  const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out).map((d) => d.toJS() as Doc);
}

/** Every directory under `root` with a kustomization.yaml, components apart. */
function kustomizations(root: string): { overlays: string[]; components: string[] } {
  const overlays: string[] = [];
  const components: string[] = [];
  const walk = (dir: string) => {
    const file = join(dir, 'kustomization.yaml');
    if (existsSync(file)) (/^kind:\s*Component\s*$/m.test(readFileSync(file, 'utf8')) ? components : overlays).push(dir);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  walk(root);
  return { overlays: overlays.sort(), components: components.sort() };
}

/** Every proxy config in the render passes the validator, and an Ingress serves publicURL's host. */
function configAndIngress(docs: Doc[], where: string): void {
  const configs = docs.filter((d) => d.kind === 'ConfigMap' && typeof d.data?.['config.yaml'] === 'string');
  for (const cm of configs) expect(() => buildConfig(parse(cm.data['config.yaml'])), `${where}: ${cm.metadata.name}`).not.toThrow();
  for (const ing of docs.filter((d) => d.kind === 'Ingress')) {
    const hosts = (ing.spec.rules ?? []).map((r: Doc) => r.host);
    const tlsHosts = (ing.spec.tls ?? []).flatMap((t: Doc) => t.hosts ?? []);
    for (const cm of configs) {
      const publicHost = new URL(String((parse(cm.data['config.yaml']) as Doc).publicURL)).hostname;
      expect(hosts, `${where}: Ingress hosts vs publicURL`).toContain(publicHost);
      expect(tlsHosts, `${where}: Ingress TLS hosts vs publicURL`).toContain(publicHost);
    }
    const service = docs.find((d) => d.kind === 'Service' && d.metadata.namespace === ing.metadata.namespace);
    for (const r of ing.spec.rules ?? []) for (const p of r.http.paths) expect(p.backend.service.name, where).toBe(service?.metadata.name);
  }
}

const report = (findings: ReturnType<typeof checkManifests>) => findings.map((f) => `${f.check} ${f.where}: ${f.message}`).join('\n');

describe('deploy/ rendered: can every container read what it is configured to read', () => {
  it('every kustomization and every component on the gateway overlay passes the manifest checks', (ctx) => {
    const kubectl = toolOrSkipReason('kubectl', KUBECTL);
    if ('skip' in kubectl) return ctx.skip(kubectl.skip);
    const { overlays, components } = kustomizations('deploy');
    expect(overlays).toEqual(
      expect.arrayContaining(['deploy/base', 'deploy/overlays/gateway', 'deploy/overlays/sidecar', 'deploy/overlays/team-a', 'deploy/controller', 'deploy/examples/ecr']),
    );
    expect(components).toEqual(['deploy/components/hpa', 'deploy/components/ingress', 'deploy/components/network-policy', 'deploy/components/service-monitor']);
    for (const dir of overlays) {
      const docs = render(kubectl.path, dir);
      expect(docs.length, dir).toBeGreaterThan(0);
      expect(report(checkManifests(docs)), dir).toBe('');
      configAndIngress(docs, dir);
    }
    // each optional component on top of an overlay, as an operator would include it
    const tmp = mkdtempSync(join(tmpdir(), 'rap-render-'));
    try {
      cpSync('deploy', join(tmp, 'deploy'), { recursive: true });
      for (const c of components) {
        const dir = join(tmp, 'deploy', 'try', c.split('/').pop()!);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'kustomization.yaml'), `resources: [../../overlays/gateway]\ncomponents: [../../../${c}]\n`);
        const docs = render(kubectl.path, dir);
        expect(report(checkManifests(docs)), c).toBe('');
        configAndIngress(docs, c);
      }
      // the HPA is not for the sidecar: one registry per ReadWriteOnce volume
      const dir = join(tmp, 'deploy', 'try', 'sidecar-hpa');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'kustomization.yaml'), 'resources: [../../overlays/sidecar]\ncomponents: [../../components/hpa]\n');
      expect(checkManifests(render(kubectl.path, dir)).map((f) => f.check)).toEqual(['hpa']);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('two instances (deploy/base and deploy/overlays/team-a) share no cluster-wide name', (ctx) => {
    const kubectl = toolOrSkipReason('kubectl', KUBECTL);
    if ('skip' in kubectl) return ctx.skip(kubectl.skip);
    const clusterWide = (dir: string) => render(kubectl.path, dir).filter((d) => !d.metadata.namespace && d.kind !== 'Namespace');
    const a = clusterWide('deploy/base').map((d) => `${d.kind}/${d.metadata.name}`);
    const b = clusterWide('deploy/overlays/team-a').map((d) => `${d.kind}/${d.metadata.name}`);
    expect(a.length).toBeGreaterThan(0);
    expect(a.filter((n) => b.includes(n))).toEqual([]);
    const teamA = render(kubectl.path, 'deploy/overlays/team-a');
    for (const d of teamA.filter((x) => x.kind === 'ClusterRoleBinding')) expect(d.subjects).toEqual([{ kind: 'ServiceAccount', name: 'registry-auth-proxy', namespace: 'team-a' }]);
  });

  it("fails on main 5f47390's deploy/ (unreadable keys, service links, a PDB that blocks drains, RBAC left behind)", (ctx) => {
    const kubectl = toolOrSkipReason('kubectl', KUBECTL);
    if ('skip' in kubectl) return ctx.skip(kubectl.skip);
    const commit = '5f47390';
    try {
      execFileSync('git', ['cat-file', '-e', `${commit}^{commit}`], { stdio: 'ignore' });
    } catch {
      return ctx.skip(`commit ${commit} is not in this clone (shallow?): the regression half of the check cannot run`);
    }
    const tmp = mkdtempSync(join(tmpdir(), 'rap-5f47390-'));
    try {
      execFileSync('sh', ['-c', `git archive ${commit} deploy | tar -x -C "${tmp}"`]);
      // the throwaway overlay an operator would have written for a second, team-owned instance
      mkdirSync(join(tmp, 'deploy/overlays/team-a'));
      writeFileSync(join(tmp, 'deploy/overlays/team-a/kustomization.yaml'), 'namespace: team-a\nresources: [../sidecar]\n');
      const failing = (dir: string): CheckName[] => [...new Set(checkManifests(render(kubectl.path, join(tmp, dir))).map((f) => f.check))].sort();
      expect(failing('deploy/base')).toEqual(['rbac', 'read']); // keys 0400 without fsGroup; binding names without the namespace
      expect(failing('deploy/overlays/gateway')).toEqual(['rbac', 'read']); // + the upstream password Secret
      expect(failing('deploy/overlays/sidecar')).toEqual(['pdb', 'rbac', 'read', 'service-links']);
      expect(failing('deploy/overlays/team-a')).toEqual(['pdb', 'rbac', 'read', 'service-links']);
      const teamA = checkManifests(render(kubectl.path, join(tmp, 'deploy/overlays/team-a')));
      expect(teamA.filter((f) => f.check === 'rbac').map((f) => f.message)).toEqual([
        expect.stringMatching(/subject ServiceAccount registry-auth-proxy\/registry-auth-proxy is not in this render \(it is in namespace team-a\)/),
        expect.stringMatching(/subject ServiceAccount registry-auth-proxy\/registry-auth-proxy is not in this render \(it is in namespace team-a\)/),
      ]);
      const gateway = checkManifests(render(kubectl.path, join(tmp, 'deploy/overlays/gateway')));
      expect(gateway.filter((f) => f.check === 'read').map((f) => f.message)).toEqual([
        expect.stringMatching(/^\/etc\/registry-auth-proxy\/upstream\/password \(config upstream.auth.passwordFile\): uid 65532 .* root:root 0400/),
        expect.stringMatching(/^\/etc\/registry-auth-proxy\/keys \(config tokens.signingKeyFile\): uid 65532 .* root:root 0400/),
      ]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
