import type { ServerResponse } from 'node:http';
import { OciError, sendOciError } from './errors.js';
import { formatScope, type Scope } from './scope.js';

export type ChallengeError = 'invalid_token' | 'insufficient_scope';

/** `Bearer realm="…",service="…"[,scope="a b"][,error="…"]` exactly as Distribution writes it. */
export function bearerChallenge(realm: string, service: string, scopes: Scope[], error?: ChallengeError): string {
  let h = `Bearer realm="${realm}",service="${service}"`;
  if (scopes.length > 0) h += `,scope="${scopes.map(formatScope).join(' ')}"`;
  if (error) h += `,error="${error}"`;
  return h;
}

/** 401 + challenge + OCI body: UNAUTHORIZED, or DENIED when a valid token lacks an action. */
export function sendChallenge(res: ServerResponse, opts: { realm: string; service: string; scopes: Scope[]; error?: ChallengeError; message?: string }): void {
  const detail = opts.scopes.map((s) => ({ Type: s.type, Name: s.name, Action: s.actions.join(',') }));
  const code = opts.error === 'insufficient_scope' ? 'DENIED' : 'UNAUTHORIZED';
  const message =
    opts.message ??
    (opts.error === 'insufficient_scope'
      ? 'requested access to the resource is denied'
      : opts.error === 'invalid_token'
        ? 'authentication required: the token is invalid or expired'
        : 'authentication required');
  sendOciError(
    res,
    new OciError(401, code, message, detail.length ? detail : undefined, {
      'WWW-Authenticate': bearerChallenge(opts.realm, opts.service, opts.scopes, opts.error),
    }),
  );
}
