import { parse } from '@marcbachmann/cel-js';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/identity/types.js';
import { parseScope } from '../../../src/oci/scope.js';
import { requestDenialMessage } from '../../../src/policy/explain.js';
import { compilePolicyText } from '../../../src/policy/load.js';
import { lintAbsentFacts } from '../../../src/policy/lint.js';
import { requestTimeInputs, unguardedReads } from '../../../src/policy/reads.js';
import { decideRequest, lazyFactsNeeded, requestKind, type RequestFacts } from '../../../src/policy/request.js';

/** Issue 21, the policy side: `phase:`, the request-time CEL variables, decideRequest, lazyFactsNeeded. */

const ctx = { service: 'registry.test', clientIP: '127.0.0.1' };
const who: Identity = {
  issuerName: 'cluster',
  issuer: 'https://k8s',
  subject: 'system:serviceaccount:ci:builder',
  namespace: 'ci',
  claims: { team: 'a' },
};
const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;

const facts = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  method: 'PUT',
  kind: 'manifest',
  repository: 'team/app',
  actions: ['pull', 'push'],
  reference: 'v1.0.0',
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  upstream: '',
  ...ctx,
  ...over,
});

const rule = (when: string, extra = '') =>
  `rules:\n  - {name: r, effect: deny, phase: request, actions: [push]${extra}, when: ${JSON.stringify(when)}}\n`;
const decide = (when: string, f: Partial<RequestFacts> = {}, extra = '') =>
  decideRequest(compilePolicyText(rule(when, extra)), who, facts(f))?.reason;

describe('`phase:` at load', () => {
  it.each([
    ['phase: sometimes', '`phase` must be token, request or both'],
    [
      'effect: allow, phase: request',
      '`effect: allow` with `phase: request`: access is granted when the token is issued',
    ],
    ['effect: allow, phase: both', 'a request-time rule can only refuse (use effect: deny, or phase: token)'],
    [
      'effect: deny, when: request.method == "PUT"',
      '`when` reads request.method, which only a /v2/ request has, but the rule is evaluated when the token is issued (the default): say `phase: request`',
    ],
    [
      'effect: deny, phase: both, when: upstream.tagExists',
      'reads upstream.tagExists, which only a /v2/ request has, but the rule is also evaluated when the token is issued',
    ],
    ['effect: deny, phase: token, when: request.digest != upstream.digest', 'reads request.digest, upstream.digest'],
    ['effect: deny, when: \'request["kind"] == "blob"\'', 'reads request.kind'],
    ['effect: deny, when: request.mediaType != "" || has(request.tag)', 'reads request.mediaType, request.tag'],
    ['effect: deny, phase: request, when: request.methd == "PUT"', 'invalid CEL in `when`'],
    ['effect: deny, phase: request, when: request.contentLength > "4"', 'invalid CEL in `when`'],
    ['effect: deny, phase: [request]', '`phase` must be token, request or both'],
    // the key before the contract named it: a clear error naming the fix, not "unknown key"
    ['effect: deny, at: request', '`at` is now `phase`: write `phase: request` (token, the default, request or both)'],
    ['effect: deny, at: both, phase: both', '`at` is now `phase`: write `phase: both`'],
    [
      'effect: deny, phase: request, when: upstream.tagExists && request.bodyDigest != upstream.digest',
      "`when` reads request.bodyDigest, which was removed: use request.digest (on a manifest PUT it is the pushed manifest's digest",
    ],
    [
      'effect: deny, phase: request, when: \'request["bodyDigest"] == ""\'',
      'reads request.bodyDigest, which was removed',
    ],
  ])('rejects %s', (fields, problem) => {
    const load = () => compilePolicyText(`rules:\n  - {name: bad, actions: [push], ${fields}}\n`, 'p.yaml');
    expect(load).toThrow(/^p\.yaml: rule "bad": /);
    expect(load).toThrow(problem);
  });

  it('names `phase` among the known keys', () => {
    expect(() => compilePolicyText('rules: [{name: x, actions: [pull], a: request}]')).toThrow(
      '(known: name, effect, actions, phase, when, description)',
    );
  });

  it('token rules are decided at /token only, request rules on /v2/ only, both at both', () => {
    const engine = compilePolicyText(`rules:
  - {name: t, actions: [pull, push]}
  - {name: q, effect: deny, phase: request, actions: [push]}
  - {name: b, effect: deny, phase: both, actions: [delete], when: 'claims.team == "a"'}
`);
    const d = engine.decide(who, parseScope('repository:team/app:pull,push,delete'), ctx);
    expect(d.granted).toEqual(['pull', 'push']);
    expect(d.matched.map((m) => m.name)).toEqual(['t', 'b']);
    expect(engine.requestRules.map((r) => r.name)).toEqual(['q', 'b']);
    expect(decideRequest(engine, who, facts({ method: 'GET', actions: ['pull'] }))).toBeUndefined();
    expect(decideRequest(engine, who, facts())?.reason).toBe('denied by rule q');
    expect(decideRequest(engine, who, facts({ method: 'DELETE', actions: ['delete'] }))?.refused).toMatchObject({
      name: 'b',
      effect: 'deny',
    });
  });
});

describe('requestTimeInputs: what a `when` reads, from the AST', () => {
  it.each([
    ['request.repository == "a" && claims.x == 1', []],
    ['request.method == "PUT" && request.tag.startsWith("v")', ['request.method', 'request.tag']],
    ['has(request.digest) || request["kind"] == "blob"', ['request.digest', 'request.kind']],
    [
      'upstream.tagExists && request.digest != upstream.digest',
      ['request.digest', 'upstream.digest', 'upstream.tagExists'],
    ],
    ['[upstream].size() == 1', ['upstream.digest', 'upstream.tagExists']],
    ['request[claims.k] == ""', ['request[…]']],
    ['claims.list.exists(x, x == request.reference)', ['request.reference']],
  ])('%s', (when, inputs) => {
    expect(requestTimeInputs(parse(when).ast)).toEqual(inputs);
  });
});

describe('decideRequest: the variables as rules see them', () => {
  it.each([
    // absent facts are absent (CONTRACT §6 guards with has()), not ""
    ['request.tag == "v1.0.0" && !has(request.digest)', { method: 'GET' }],
    ['request.digest == "' + DIGEST_A + '" && !has(request.tag)', { method: 'GET', reference: DIGEST_A }],
    [
      '!has(request.tag) && !has(request.digest) && request.reference == "abc_upload"',
      { kind: 'upload' as const, reference: 'abc_upload' },
    ],
    ['!has(request.tag) && request.digest == "' + DIGEST_A + '"', { kind: 'blob' as const, reference: DIGEST_A }],
    ['!has(request.tag) && !has(request.digest)', { kind: 'tags' as const, reference: '' }],
    ['!has(request.tag) && !has(request.digest) && request.reference == ""', { method: 'GET', reference: '' }],
    ['request.kind == "manifest" && request.method == "PUT" && request.type == "repository"', {}],
    [
      'request.type == "registry" && request.repository == ""',
      { kind: 'catalog' as const, repository: '', reference: '', actions: ['*'] },
    ],
    ['request.contentLength == -1', {}],
    ['request.contentLength > 4194304', { contentLength: 5 * 1024 * 1024 }],
    ['request.mediaType.startsWith("application/vnd.oci")', {}],
    [
      'request.upstream == "hub" && request.service == "registry.test" && request.clientIP == "127.0.0.1"',
      { upstream: 'hub' },
    ],
    ['"push" in request.actions && identity.namespace == "ci" && claims.team == "a"', {}],
    // a manifest PUT's request.digest is the pushed manifest's (by tag: the body's; by digest: the
    // reference, which the guard checked the body hashes to)
    ['request.tag == "v1.0.0" && request.digest == "' + DIGEST_A + '"', { bodyDigest: DIGEST_A }],
    ['has(request.digest) && request.digest == "' + DIGEST_A + '"', { bodyDigest: DIGEST_A }],
    ['request.digest == "' + DIGEST_A + '"', { reference: DIGEST_A, bodyDigest: DIGEST_A }],
    ['upstream.tagExists && upstream.digest == "' + DIGEST_B + '"', { lookup: { tagExists: true, digest: DIGEST_B } }],
    // no tag, nothing to ask: the upstream facts are known without a lookup
    ['!upstream.tagExists && upstream.digest == ""', { reference: DIGEST_A }],
    // a GET by tag has no digest
    ['!has(request.digest)', { method: 'GET' }],
  ])('%s', (when, f) => {
    expect(decide(when, f)).toBe('denied by rule r');
  });

  it.each([
    [
      'upstream.tagExists',
      { lookup: { error: 'HEAD answered 503' } },
      'rule r could not be evaluated, so it refuses: upstream.tagExists unknown: HEAD answered 503',
    ],
    ['upstream.digest != ""', {}, 'upstream.digest unknown: the upstream was not asked'],
    [
      'request.digest != upstream.digest',
      { lookup: { tagExists: true, digest: DIGEST_A } },
      'request.digest unknown: the pushed manifest was not hashed',
    ],
    // a plain read of an absent fact is a CEL error: the deny rule refuses, naming the rule, the field and the fix
    [
      'request.tag.matches("^v")',
      { reference: DIGEST_A, bodyDigest: DIGEST_A },
      'rule r could not be evaluated, so it refuses: request.tag is absent (the reference is a digest): guard the read with has(request.tag)',
    ],
    [
      'request.tag == "latest"',
      { kind: 'upload' as const, method: 'POST', reference: '' },
      'rule r could not be evaluated, so it refuses: request.tag is absent (this request names no tag): guard the read with has(request.tag)',
    ],
    [
      'request.digest == "' + DIGEST_A + '"',
      { method: 'GET' },
      'rule r could not be evaluated, so it refuses: request.digest is absent (the reference is a tag): guard the read with has(request.digest)',
    ],
    ['claims.missing == "x"', {}, 'rule r could not be evaluated, so it refuses: No such key: missing'],
    ['claims.team', {}, 'rule r did not evaluate to a bool, so it refuses'],
  ])('fails closed: %s', (when, f, reason) => {
    expect(decide(when, f)).toContain(reason);
  });

  it('a rule applies only to requests needing one of its actions; the first refusing rule wins', () => {
    expect(decide('true', { method: 'GET', actions: ['pull'] })).toBeUndefined();
    expect(decide('true', { kind: 'catalog', actions: ['*'] })).toBe('denied by rule r');
    const engine = compilePolicyText(`rules:
  - {name: one, effect: deny, phase: request, actions: ["*"], when: request.method == "DELETE"}
  - {name: two, effect: deny, phase: request, actions: [push]}
  - {name: three, effect: deny, phase: request, actions: [push]}
`);
    expect(decideRequest(engine, who, facts())?.refused.name).toBe('two');
    expect(decideRequest(engine, who, facts({ method: 'DELETE', actions: ['delete'] }))?.refused.name).toBe('one');
  });

  it('maps route kinds to request.kind', () => {
    expect(['ping', 'upload-start', 'upload', 'manifest', 'catalog'].map((k) => requestKind(k as never))).toEqual([
      undefined,
      'upload',
      'upload',
      'manifest',
      'catalog',
    ]);
  });
});

describe('lazyFactsNeeded: the upstream is asked and the body hashed only when this request reads them', () => {
  const engine = compilePolicyText(`rules:
  - {name: imm, effect: deny, phase: request, actions: [push], when: 'request.method == "PUT" && upstream.tagExists && request.digest != upstream.digest'}
  - {name: exists, effect: deny, phase: request, actions: [delete], when: 'upstream.tagExists || request.method == "DELETE"'}
  - {name: plain, effect: deny, phase: request, actions: [pull], when: 'has(request.tag) && request.tag == "never"'}
`);
  const all = { tagExists: true, digest: true, bodyDigest: true };
  const none = { tagExists: false, digest: false, bodyDigest: false };
  it.each([
    ['PUT of a tag', facts(), all],
    ['PUT by digest: no tag to look up, a body nobody compares', facts({ reference: DIGEST_A }), none],
    ['GET of a tag: no rule for pulls reads them', facts({ method: 'GET', actions: ['pull'] }), none],
    [
      'POST of an upload under the push rule: short-circuits on the method',
      facts({ method: 'POST', kind: 'upload', reference: '' }),
      none,
    ],
    [
      'DELETE of a tag: the touch counts even when `||` absorbs it',
      facts({ method: 'DELETE', actions: ['delete'] }),
      { tagExists: true, digest: false, bodyDigest: false },
    ],
  ])('%s', (_, f, needed) => {
    expect(lazyFactsNeeded(engine, who, f)).toEqual(needed);
  });

  it('a manifest PUT hashes its body only for a rule reading request.digest, by tag or by digest', () => {
    const reads = compilePolicyText(`rules:
  - {name: pinned, effect: deny, phase: request, actions: [push], when: 'request.digest == "${DIGEST_B}"'}
`);
    const body = { tagExists: false, digest: false, bodyDigest: true };
    expect(lazyFactsNeeded(reads, who, facts())).toEqual(body);
    expect(lazyFactsNeeded(reads, who, facts({ reference: DIGEST_A }))).toEqual(body);
    expect(lazyFactsNeeded(reads, who, facts({ method: 'GET', reference: DIGEST_A }))).toEqual(none);
    expect(lazyFactsNeeded(engine, who, facts({ method: 'GET', reference: DIGEST_A }))).toEqual(none);
  });

  it('with the facts it named filled in, decideRequest needs nothing more', () => {
    const f = facts({ lookup: { tagExists: true, digest: DIGEST_A }, bodyDigest: DIGEST_A });
    expect(decideRequest(engine, who, f)).toBeUndefined();
    expect(decideRequest(engine, who, { ...f, bodyDigest: DIGEST_B })?.refused.name).toBe('imm');
  });
});

describe('requestDenialMessage', () => {
  const refusal = {
    refused: { name: 'imm', effect: 'deny' as const, actions: ['push'], file: 'p.yaml' },
    reason: 'denied by rule imm',
  };
  it('names who, the method, repository, reference, the rule and the command that reproduces it', () => {
    expect(requestDenialMessage({ issuerName: 'ci', subject: 'repo:acme/web' }, facts(), refusal, true)).toBe(
      "issuer ci, subject repo:acme/web was refused PUT manifest team/app:v1.0.0: denied by rule imm. Check with: registry-auth-proxy policy test --issuer-name ci --scope 'repository:team/app:pull,push' --method PUT --kind manifest --reference v1.0.0 --claims <identity token>",
    );
    expect(requestDenialMessage(undefined, facts({ reference: DIGEST_A }), refusal, true)).toContain(
      `this token was refused PUT manifest team/app@${DIGEST_A}`,
    );
  });
  it('says what Distribution says when the detail is off', () => {
    expect(requestDenialMessage({ issuerName: 'ci', subject: 's' }, facts(), refusal, false)).toBe(
      'requested access to the resource is denied',
    );
  });
});

describe('request.tag / request.digest read without has()', () => {
  it.each([
    ['request.tag == "latest"', ['request.tag']],
    ['request.tag.matches("^v") && request.digest != upstream.digest', ['request.tag', 'request.digest']],
    ['request["tag"] == "latest"', ['request.tag']],
    ['has(request.tag) && request.tag.matches("^v") && upstream.digest != request.digest', ['request.digest']],
    ['has(request.tag) && request.tag == "latest"', []],
    ['request.kind == "manifest" && has(request.digest) && request.digest == "x"', []],
    ['request.method == "PUT"', []],
    // the contract's example: a manifest PUT always has a digest
    [
      'request.kind == "manifest" && request.method == "PUT" && has(request.tag) && request.tag.matches("^v") && upstream.tagExists && upstream.digest != request.digest',
      [],
    ],
    ['request.method == "PUT" && request.digest == "x"', ['request.digest']],
    ['request.kind == "manifest" && (request.method == "PUT" || request.digest == "x")', ['request.digest']],
    ['request.tag == "x" && has(request.tag)', []],
    // the shipped example: has(request.tag) means a manifest, and the PUT is in a nested chain
    [
      'has(request.tag) && request.tag.matches("^v") && (request.method == "DELETE" || (request.method == "PUT" && upstream.tagExists && request.digest != upstream.digest))',
      [],
    ],
    ['!has(request.tag) || request.tag == "x"', []],
  ])('%s', (when, fields) => {
    expect(unguardedReads(parse(when).ast)).toEqual(fields);
  });

  it('lintAbsentFacts warns for request-time rules only, naming the file, the rule and the fix', () => {
    const engine = compilePolicyText(
      `rules:
  - {name: bare, effect: deny, phase: request, actions: [push], when: 'request.tag == "latest"'}
  - {name: guarded, effect: deny, phase: request, actions: [push], when: 'has(request.tag) && request.tag == "latest"'}
  - {name: token, actions: [pull], when: 'claims.tag == "x"'}
`,
      'p.yaml',
    );
    expect(lintAbsentFacts(engine.rules).map((w) => w.message)).toEqual([
      'p.yaml: rule "bare" reads request.tag without has(): on a request that has no tag the read is an error and the rule refuses it (fail closed). Fix: start `when` with has(request.tag) && …',
    ]);
  });
});
