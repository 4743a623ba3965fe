import { describe, expect, it } from 'vitest';
import { OciError } from '../../../src/oci/errors.js';
import { checkTokenRequest, isParseRefusal, type TokenRequest } from '../../../src/token/request.js';

/** The parse stage of /token as values: a checked request, or the error with what was parsed for the audit line. */
const base: TokenRequest = { method: 'GET', grantType: 'password', scopes: [], offline: false };

describe('checkTokenRequest', () => {
  it('parses the scopes of a request for this service', () => {
    const out = checkTokenRequest(
      { ...base, service: 'registry.test', scopes: ['repository:a/b:pull'] },
      'registry.test',
    );
    expect(isParseRefusal(out)).toBe(false);
    expect(out.scopes).toEqual([{ type: 'repository', name: 'a/b', actions: ['pull'] }]);
  });

  it('refuses another service, in both error shapes', () => {
    const out = checkTokenRequest({ ...base, service: 'evil.test' }, 'registry.test');
    expect(isParseRefusal(out)).toBe(true);
    const err = (out as { error: OciError }).error;
    expect(err.status).toBe(400);
    expect(err.body()).toEqual({
      errors: [
        {
          code: 'UNSUPPORTED',
          message: 'unknown service "evil.test": this token server issues tokens for "registry.test"',
        },
      ],
      error: 'invalid_request',
      error_description: 'unknown service "evil.test": this token server issues tokens for "registry.test"',
    });
  });

  it('keeps the parsed scopes of a request with too many, for the audit line', () => {
    const scopes = Array.from({ length: 65 }, (_, i) => `repository:a/r${i}:pull`);
    const out = checkTokenRequest({ ...base, scopes }, 'registry.test');
    expect(isParseRefusal(out) && out.error.oauth).toBe('invalid_scope');
    expect(out.scopes).toHaveLength(65);
  });

  it('decides scopes under their canonical names: two spellings of one repository are one scope', () => {
    const canonical = (n: string) => (n === 'hub/nginx' ? 'hub/library/nginx' : n);
    const out = checkTokenRequest(
      { ...base, scopes: ['repository:hub/nginx:pull', 'repository:hub/library/nginx:push repository:a/b:pull'] },
      'registry.test',
      canonical,
    );
    expect(out.scopes).toEqual([
      { type: 'repository', name: 'hub/library/nginx', actions: ['pull', 'push'] },
      { type: 'repository', name: 'a/b', actions: ['pull'] },
    ]);
    // a name the canonical form makes too long is an invalid scope, not a silently different one
    const long = `hub/${'n'.repeat(251)}`;
    const refused = checkTokenRequest(
      { ...base, scopes: [`repository:${long}:pull`] },
      'registry.test',
      (n) => `hub/library/${n.slice(4)}`,
    );
    expect(isParseRefusal(refused) && refused.error.oauth).toBe('invalid_scope');
  });
});
