import { OciError } from './errors.js';
import { formatScope, type Scope } from './scope.js';

export type ChallengeError = 'invalid_token' | 'insufficient_scope';

/** `Bearer realm="…",service="…"[,scope="a b"][,error="…"]` exactly as Distribution writes it. */
export function bearerChallenge(realm: string, service: string, scopes: Scope[], error?: ChallengeError): string {
  let h = `Bearer realm="${realm}",service="${service}"`;
  if (scopes.length > 0) h += `,scope="${scopes.map(formatScope).join(' ')}"`;
  if (error) h += `,error="${error}"`;
  return h;
}

interface ChallengeOptions {
  realm: string;
  service: string;
  scopes: Scope[];
  error?: ChallengeError;
}

/**
 * 401 + challenge + OCI body, as a value the handler writes: UNAUTHORIZED, or DENIED with
 * `insufficient_scope` when a valid token lacks an action it never asked for (the client fetches a
 * token for it and retries). The error carries its own `WWW-Authenticate`, as Distribution's
 * `Challenge` does.
 */
export function challenge(opts: ChallengeOptions): OciError {
  const detail = opts.scopes.map((s) => ({ Type: s.type, Name: s.name, Action: s.actions.join(',') }));
  const code = opts.error === 'insufficient_scope' ? 'DENIED' : 'UNAUTHORIZED';
  return new OciError(401, code, CHALLENGE_MESSAGES[opts.error ?? 'none'], {
    detail: detail.length ? detail : undefined,
    headers: {
      'WWW-Authenticate': bearerChallenge(opts.realm, opts.service, opts.scopes, opts.error),
    },
  });
}

const CHALLENGE_MESSAGES: Record<ChallengeError | 'none', string> = {
  insufficient_scope: 'requested access to the resource is denied',
  invalid_token: 'authentication required: the token is invalid or expired',
  none: 'authentication required',
};

/**
 * 403 DENIED: the token lacks an action because the policy refused it, so a new token would not
 * help. Checked with the real clients (docs/http.md: Denials): on 403 Docker, skopeo, podman and buildah
 * print the body's `message`, and containerd prints the status line, so the reason phrase repeats
 * it. A 401 would make containerd fetch the same token again and print only `insufficient_scope`,
 * and containers/image word any 401 on a tag listing as "invalid username/password".
 */
export function deniedError(message: string, detail: unknown): OciError {
  const phrase = `Forbidden: ${message}`.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
  return new OciError(403, 'DENIED', message, { detail, statusMessage: phrase });
}

/**
 * The parameters of a `Bearer realm="…",service="…",scope="…"` challenge (quoted values may hold
 * commas), names lower-cased; undefined when the header is not a Bearer challenge. Pure.
 */
export function parseBearerChallenge(header: unknown): Record<string, string> | undefined {
  const m = typeof header === 'string' ? /^\s*Bearer\s+(.*)$/i.exec(header) : null;
  if (!m) return undefined;
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[1]!)) !== null) out[p[1]!.toLowerCase()] = p[2]!.replace(/\\(.)/g, '$1');
  return out;
}
