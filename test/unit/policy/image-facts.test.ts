import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/identity/types.js';
import { compilePolicyText } from '../../../src/policy/load.js';
import { decideRequest, type RequestFacts } from '../../../src/policy/request.js';

/** `image.verified` and `image.signers` (issue 22): request-time only; false and [] where no trust policy applies. */

const POLICY = `
rules:
  - name: pull
    effect: allow
    actions: [pull]
    when: "true"
  - name: prod-pulls-signed
    effect: deny
    phase: request
    actions: [pull]
    when: >-
      request.kind == "manifest" && !image.verified &&
      !(identity.subject == "build" && request.repository.startsWith("prod/"))
  - name: release-key-for-releases
    effect: deny
    phase: request
    actions: [pull]
    when: has(request.tag) && request.tag.startsWith("release-") && !("release" in image.signers)
`;
const engine = compilePolicyText(POLICY);
const who = (subject: string): Identity => ({ issuerName: 'ci', issuer: 'https://ci', subject, claims: {} });

const facts = (reference: string, image?: RequestFacts['image']): RequestFacts => ({
  method: 'GET',
  kind: 'manifest',
  repository: 'prod/app',
  actions: ['pull'],
  reference,
  mediaType: '',
  upstream: '',
  service: 'registry.test',
  clientIP: '10.0.0.1',
  ...(image ? { image } : {}),
});

describe('image.* in request-time rules', () => {
  it.each<[string, RequestFacts, string, string | undefined]>([
    ['verified, any signer', facts('v1', { verified: true, signers: ['prod'] }), 'dev', undefined],
    ['unverified', facts('v1', { verified: false, signers: [] }), 'dev', 'prod-pulls-signed'],
    ['no trust policy: false', facts('v1'), 'dev', 'prod-pulls-signed'],
    [
      'the build workflow pulls its own unsigned output',
      facts('v1', { verified: false, signers: [] }),
      'build',
      undefined,
    ],
    [
      'a release without the release key',
      facts('release-1', { verified: true, signers: ['prod'] }),
      'dev',
      'release-key-for-releases',
    ],
    ['a release with it', facts('release-1', { verified: true, signers: ['prod', 'release'] }), 'dev', undefined],
  ])('%s', (_what, f, subject, refusedBy) =>
    expect(decideRequest(engine, who(subject), f)?.refused.name).toBe(refusedBy),
  );

  it('a token-time rule reading image is refused at load', () => {
    const bad = `rules:\n  - name: x\n    effect: allow\n    actions: [pull]\n    when: image.verified\n`;
    expect(() => compilePolicyText(bad)).toThrow(/image\.verified.*phase: request/);
  });
});
