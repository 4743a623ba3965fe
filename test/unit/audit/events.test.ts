import { describe, expect, it } from 'vitest';
import {
  AUDIT_SCHEMA,
  registryAction,
  registryEvent,
  splitRegistrySubject,
  type RegistryFacts,
} from '../../../src/audit/events.js';
import { CLOUDEVENTS_BATCH, toCloudEvent } from '../../../src/audit/cloudevents.js';
import { tokenEvent } from '../../../src/token/respond.js';
import { grant } from '../../../src/policy/grant.js';
import { compilePolicyText } from '../../../src/policy/load.js';
import { parseScope } from '../../../src/oci/scope.js';
import type { Identity } from '../../../src/identity/types.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('registry actions', () => {
  it('names the manifest and blob reads and writes, nothing else', () => {
    expect(registryAction('GET', 'manifest')).toBe('manifest.get');
    expect(registryAction('HEAD', 'manifest')).toBe('manifest.head');
    expect(registryAction('PUT', 'manifest')).toBe('manifest.put');
    expect(registryAction('DELETE', 'manifest')).toBe('manifest.delete');
    expect(registryAction('GET', 'blob')).toBe('blob.get');
    expect(registryAction('HEAD', 'blob')).toBeUndefined();
    expect(registryAction('PATCH', 'upload')).toBeUndefined();
    expect(registryAction('PUT', 'upload')).toBe('blob.upload');
    expect(registryAction('POST', 'upload-start', `?digest=${D}`)).toBe('blob.upload');
    expect(registryAction('POST', 'upload-start', '')).toBeUndefined();
    expect(registryAction('GET', 'tags')).toBeUndefined();
    expect(registryAction('GET', 'ping')).toBeUndefined();
  });
});

describe('registry events', () => {
  const facts: RegistryFacts = {
    action: 'manifest.get',
    method: 'GET',
    repository: 'prod/api',
    reference: 'v1',
    tokenSubject: 'cluster:system:serviceaccount:prod:api',
    identityClaims: { sub: 'x', 'kubernetes.io': { namespace: 'prod' }, secret: 'no' },
    upstream: '',
    upstreamDigest: D,
    bytes: { upload: 0, download: 1234 },
    status: 200,
    ms: 12.345,
    clientIP: '10.0.0.1',
    requestId: 'r1',
  };

  it('carries who, what, the digest, bytes in the direction of the action, and only the listed claims', () => {
    expect(registryEvent(facts, ['kubernetes.io', 'absent'], 'T')).toEqual({
      schema: AUDIT_SCHEMA,
      audit: 'registry',
      time: 'T',
      requestId: 'r1',
      action: 'manifest.get',
      method: 'GET',
      issuer: 'cluster',
      subject: 'system:serviceaccount:prod:api',
      claims: { 'kubernetes.io': { namespace: 'prod' } },
      repository: 'prod/api',
      reference: 'v1',
      digest: D,
      upstream: '',
      bytes: 1234,
      status: 200,
      ms: 12.3,
      clientIP: '10.0.0.1',
    });
    const upload = registryEvent(
      { ...facts, action: 'blob.upload', method: 'PUT', bytes: { upload: 99, download: 0 } },
      [],
      'T',
    );
    expect(upload.bytes).toBe(99);
    expect(upload.claims).toBeUndefined();
  });

  it('a blob GET names its digest even without the header; a refusal names the guard', () => {
    const e = registryEvent(
      {
        ...facts,
        action: 'blob.get',
        reference: D,
        upstreamDigest: undefined,
        status: 403,
        refusedBy: { guard: 'requestRules', reason: 'r' },
      },
      [],
      'T',
    );
    expect(e.digest).toBe(D);
    expect(e.refusedBy).toEqual({ guard: 'requestRules', reason: 'r' });
  });

  it('splits the registry token subject at the first colon only', () => {
    expect(splitRegistrySubject('ci:repo:org/x:ref:main')).toEqual({ issuer: 'ci', subject: 'repo:org/x:ref:main' });
    expect(splitRegistrySubject(undefined)).toEqual({});
  });

  it('wraps in CloudEvents 1.0 with the event as data', () => {
    const ce = toCloudEvent(registryEvent(facts, [], 'T'), 'https://proxy.test', 'id-1');
    expect(ce).toMatchObject({
      specversion: '1.0',
      id: 'id-1',
      source: 'https://proxy.test',
      type: 'io.registry-auth-proxy.audit.v1.registry.manifest.get',
    });
    expect(ce.subject).toBe(`prod/api@${D}`);
    expect(ce.data.audit).toBe('registry');
    expect(CLOUDEVENTS_BATCH).toBe('application/cloudevents-batch+json');
  });
});

describe('token events', () => {
  const who: Identity = {
    issuerName: 'ci',
    issuer: 'https://ci.test',
    subject: 'job',
    claims: { repository: 'org/app', ref: 'main' },
  };
  const policy = compilePolicyText(`
rules:
  - name: ci-pulls
    actions: [pull, push]
  - name: would-stop-pushes
    effect: audit
    actions: [push]
`);
  it("keeps today's audit line fields and adds the schema, claims and would-deny", () => {
    const scopes = [parseScope('repository:app:pull,push')];
    const g = grant(policy, who, scopes, { service: 's', clientIP: '1.2.3.4' });
    const body = { token: 't', access_token: 't', expires_in: 300, issued_at: 'x' };
    const request = { grantType: 'password', clientId: 'docker' } as never;
    const e = tokenEvent(
      { kind: 'granted', request, scopes, who, grant: g, body },
      { clientIP: '1.2.3.4', time: 'T', requestId: 'r', claims: ['ref'] },
    );
    expect(e).toMatchObject({
      schema: AUDIT_SCHEMA,
      audit: 'token',
      result: 'granted',
      grant: 'password',
      issuer: 'ci',
      subject: 'job',
      claims: { ref: 'main' },
      clientId: 'docker',
      clientIP: '1.2.3.4',
      requested: ['repository:app:pull,push'],
      granted: ['repository:app:pull,push'],
      refused: [],
      rules: ['ci-pulls'],
      refresh: false,
      wouldDeny: [{ rule: 'would-stop-pushes', scope: 'repository:app', actions: ['push'] }],
    });
  });
});
