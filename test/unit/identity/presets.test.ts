import { describe, expect, it } from 'vitest';
import { identityFromClaims } from '../../../src/identity/presets.js';

const src = (preset?: 'kubernetes' | 'github-actions' | 'gitlab' | 'google') => ({
  issuerName: 'x',
  issuer: 'https://x',
  preset,
});

describe('presets map claims to identity', () => {
  it('kubernetes bound (projected) token', () => {
    // claim layout of a real projected token (kubectl create token / kubelet projection)
    const claims = {
      aud: ['registry.example.com'],
      exp: 1767225600,
      iat: 1767222000,
      iss: 'https://kubernetes.default.svc.cluster.local',
      jti: '4b1f0d8e-5d0a-4a5e-9b8e-2b7c8f3e1a11',
      'kubernetes.io': {
        namespace: 'team-a',
        node: { name: 'node-1', uid: 'f1b2' },
        pod: { name: 'builder-7d9f8-x2x4k', uid: 'a1b2' },
        serviceaccount: { name: 'builder', uid: 'c3d4' },
        warnafter: 1767225000,
      },
      nbf: 1767222000,
      sub: 'system:serviceaccount:team-a:builder',
    };
    const id = identityFromClaims(claims, src('kubernetes'));
    expect(id).toMatchObject({
      namespace: 'team-a',
      serviceAccount: 'builder',
      podName: 'builder-7d9f8-x2x4k',
      subject: 'system:serviceaccount:team-a:builder',
      preset: 'kubernetes',
      expiresAt: 1767225600,
    });
  });

  it('kubernetes bound token without a pod (kubectl create token)', () => {
    const id = identityFromClaims(
      {
        sub: 'system:serviceaccount:ns1:sa1',
        'kubernetes.io': { namespace: 'ns1', serviceaccount: { name: 'sa1', uid: 'u' } },
      },
      src('kubernetes'),
    );
    expect(id).toMatchObject({ namespace: 'ns1', serviceAccount: 'sa1', podName: undefined });
  });

  it('kubernetes legacy secret token', () => {
    const claims = {
      iss: 'kubernetes/serviceaccount',
      'kubernetes.io/serviceaccount/namespace': 'team-b',
      'kubernetes.io/serviceaccount/secret.name': 'deployer-token-7x2kq',
      'kubernetes.io/serviceaccount/service-account.name': 'deployer',
      'kubernetes.io/serviceaccount/service-account.uid': '0b6f4c1e-1111-2222-3333-444455556666',
      sub: 'system:serviceaccount:team-b:deployer',
    };
    const id = identityFromClaims(claims, src('kubernetes'));
    expect(id).toMatchObject({
      namespace: 'team-b',
      serviceAccount: 'deployer',
      podName: undefined,
      expiresAt: undefined,
    });
  });

  it('does not map Kubernetes fields without the kubernetes preset', () => {
    const id = identityFromClaims({ sub: 'system:serviceaccount:a:b', 'kubernetes.io': { namespace: 'a' } }, src());
    expect(id.namespace).toBeUndefined();
  });

  it('github-actions, gitlab and google keep claims for policies', () => {
    const gh = identityFromClaims(
      {
        sub: 'repo:acme@1/web@2:ref:refs/heads/main',
        repository: 'acme/web',
        repository_id: '2',
        ref: 'refs/heads/main',
      },
      src('github-actions'),
    );
    expect(gh).toMatchObject({ subject: 'repo:acme@1/web@2:ref:refs/heads/main', preset: 'github-actions' });
    expect(gh.claims.repository).toBe('acme/web');
    const gl = identityFromClaims(
      { sub: 'project_path:g/p:ref_type:branch:ref:main', project_path: 'g/p' },
      src('gitlab'),
    );
    expect(gl.claims.project_path).toBe('g/p');
    const g = identityFromClaims(
      {
        sub: '117',
        email: 'vm@p.iam.gserviceaccount.com',
        google: { compute_engine: { project_id: 'p', instance_name: 'vm-1', zone: 'europe-west1-b' } },
      },
      src('google'),
    );
    expect(g.subject).toBe('117');
    expect((g.claims.google as { compute_engine: { project_id: string } }).compute_engine.project_id).toBe('p');
  });
});
