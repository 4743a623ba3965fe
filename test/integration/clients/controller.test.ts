import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { decodeJwt } from 'jose';
import { createController } from '../../../src/clients/controller/controller.js';
import { silentLogger } from '../../../src/log.js';
import { startKubeApi, type KubeApi } from '../../fixtures/kube-api.js';
import { addKubeResources, type KubeResources } from '../../fixtures/kube-api-resources.js';

let api: KubeApi;
let res: KubeResources;
let clock = Date.now();

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: api.url, caData: Buffer.from(api.caPem).toString('base64') }],
    users: [{ name: 'controller', token: 'controller-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'controller' }],
    currentContext: 'fake',
  });
  return kc;
}

beforeAll(async () => {
  api = await startKubeApi();
  res = addKubeResources(api, 'controller-token');
});
afterAll(async () => {
  await api.stop();
});

describe('pull-secret controller against the Kubernetes-shaped API', () => {
  it('creates a fresh dockerconfigjson Secret for opted-in service accounts and lists it in imagePullSecrets', async () => {
    res.addServiceAccount('team-a', 'builder', { 'registry-auth-proxy.io/registry': 'registry.example.com' });
    res.addServiceAccount('team-a', 'default');
    const c = createController({ kubeConfig: kubeConfig(), logger: silentLogger(), now: () => clock });
    expect((await c.reconcileOnce()).errors).toBe(0);
    const secret = res.secrets.get('team-a/builder-registry-auth-proxy')!;
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    const cfg = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'], 'base64').toString());
    const [user, token] = Buffer.from(cfg.auths['registry.example.com'].auth, 'base64').toString().split(/:(.*)/s);
    expect(user).toBe('registry-auth-proxy');
    expect(decodeJwt(token!)).toMatchObject({
      aud: ['registry.example.com'],
      sub: 'system:serviceaccount:team-a:builder',
    });
    expect(res.tokenRequests).toEqual([
      { namespace: 'team-a', name: 'builder', audiences: ['registry.example.com'], expirationSeconds: 3600 },
    ]);
    expect(res.serviceAccounts.get('team-a/builder')!.imagePullSecrets).toEqual([
      { name: 'builder-registry-auth-proxy' },
    ]);
    expect(res.serviceAccounts.get('team-a/default')!.imagePullSecrets).toBeUndefined();
    expect(res.secrets.size).toBe(1);
  });

  it('does nothing while the token is fresh and renews it at 80% of its lifetime', async () => {
    const c = createController({ kubeConfig: kubeConfig(), logger: silentLogger(), now: () => clock });
    await c.reconcileOnce();
    expect(res.tokenRequests).toHaveLength(1);
    clock += 0.81 * 3600 * 1000;
    await c.reconcileOnce();
    expect(res.tokenRequests).toHaveLength(2);
    expect(res.serviceAccounts.get('team-a/builder')!.imagePullSecrets).toEqual([
      { name: 'builder-registry-auth-proxy' },
    ]);
  });

  it('removes the Secret and the reference when the annotation goes', async () => {
    res.setAnnotations('team-a', 'builder', {});
    const c = createController({ kubeConfig: kubeConfig(), logger: silentLogger(), now: () => clock });
    expect((await c.reconcileOnce()).errors).toBe(0);
    expect(res.secrets.size).toBe(0);
    expect(res.serviceAccounts.get('team-a/builder')!.imagePullSecrets).toEqual([]);
  });

  it('keeps going when one service account fails', async () => {
    res.addServiceAccount('team-b', 'ok', { 'registry-auth-proxy.io/registry': 'registry.example.com' });
    res.addServiceAccount('team-b', 'broken', {
      'registry-auth-proxy.io/registry': 'registry.example.com',
      'registry-auth-proxy.io/audience': 'x',
    });
    res.failTokenRequests.add('team-b/broken');
    const c = createController({ kubeConfig: kubeConfig(), logger: silentLogger(), now: () => clock });
    const { errors } = await c.reconcileOnce();
    expect(errors).toBeGreaterThanOrEqual(1);
    expect(res.secrets.has('team-b/ok-registry-auth-proxy')).toBe(true);
    expect(res.secrets.has('team-b/broken-registry-auth-proxy')).toBe(false);
  });
});
