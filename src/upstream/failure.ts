import { OciError } from '../oci/errors.js';

/** Which side failed when a client gets a 5xx of the proxy's own (never the client's side: it was authorized). */
type UpstreamFailure = 'unreachable' | 'timeout' | 'credentials' | 'bad-answer' | 'untrusted-realm' | 'unconfigured';

/**
 * What the client is told about an upstream failure. Pure. The OCI body says which side failed
 * without the upstream's address or error text (those are logged). The same words go into the
 * status line's reason phrase, because Docker, containerd and containers/image ignore 5xx bodies and
 * print only the status line ("received unexpected HTTP status: 502 Bad Gateway (…)").
 */
export function upstreamFailure(
  kind: UpstreamFailure,
  code?: string,
): { status: number; message: string; reason: string } {
  switch (kind) {
    case 'unreachable':
      return {
        status: 502,
        message: `upstream registry unreachable${code ? ` (${code})` : ''}: the registry behind this proxy did not answer; your credentials were accepted`,
        reason: 'Bad Gateway (upstream registry unreachable)',
      };
    case 'timeout':
      return {
        status: 504,
        message:
          'upstream registry did not answer in time: the registry behind this proxy is slow or stuck; your credentials were accepted',
        reason: 'Gateway Timeout (upstream registry did not answer in time)',
      };
    case 'credentials':
      return {
        status: 502,
        message:
          "upstream registry rejected the proxy's own credentials: the proxy's upstream.auth needs fixing; your credentials were accepted",
        reason: "Bad Gateway (upstream rejected the proxy's credentials)",
      };
    case 'bad-answer':
      return {
        status: 502,
        message:
          "upstream registry sent an oversized answer to the proxy's credential request: the registry behind this proxy (or its token service) misbehaves; your credentials were accepted",
        reason: 'Bad Gateway (upstream sent an oversized answer)',
      };
    case 'untrusted-realm':
      return {
        status: 502,
        message:
          "upstream registry's token realm is not trusted: the proxy does not send its credentials to another host (see upstream.auth.realm / realmHosts); your credentials were accepted",
        reason: "Bad Gateway (upstream's token realm is not trusted)",
      };
    case 'unconfigured':
      return {
        status: 503,
        message: 'no upstream registry is configured on this proxy',
        reason: 'Service Unavailable (no upstream registry configured)',
      };
  }
}

/** An upstream failure as the error the client gets: OCI body and the telling reason phrase. Pure. */
export function upstreamFailureError(
  kind: UpstreamFailure,
  opts: { code?: string; headers?: Record<string, string> } = {},
): OciError {
  const f = upstreamFailure(kind, opts.code);
  return new OciError(f.status, 'UNAVAILABLE', f.message, { headers: opts.headers, statusMessage: f.reason });
}

/**
 * Which side a failure to obtain the proxy's own upstream credentials (a secret file, or the
 * registry-token dance) lies on. Pure. No answer in time (http/outbound.ts): a timeout; an answer past
 * the outbound size cap: a bad answer; a socket error: the upstream or its token server is
 * unreachable; an unreadable secret file, or anything else the upstream answered: those credentials.
 */
export function upstreamAuthFailureKind(
  err: unknown,
): 'unreachable' | 'timeout' | 'bad-answer' | 'credentials' | 'untrusted-realm' {
  const e = err as { code?: unknown; path?: unknown; untrustedRealm?: unknown; outbound?: unknown } | undefined;
  if (e?.untrustedRealm === true) return 'untrusted-realm';
  if (e?.outbound === 'timeout') return 'timeout';
  if (e?.outbound === 'too-large') return 'bad-answer';
  return typeof e?.code === 'string' && e.code !== '' && typeof e.path !== 'string' ? 'unreachable' : 'credentials';
}

/** The error for a failure to obtain the proxy's own upstream credentials. Pure. */
export function upstreamAuthFailureError(err: unknown): OciError {
  const kind = upstreamAuthFailureKind(err);
  return upstreamFailureError(kind, kind === 'unreachable' ? { code: (err as NodeJS.ErrnoException).code } : {});
}

/** True when an upstream 401 challenges with `error="insufficient_scope"`: it granted the proxy's token less than asked. Pure. */
export function insufficientScope(challenge: string | string[] | undefined): boolean {
  return typeof challenge === 'string' && /\berror="?insufficient_scope\b/i.test(challenge);
}

/** The client's answer to that 401: a 403, since the proxy's own account upstream lacks the access. Pure. */
export function upstreamScopeError(headers: Record<string, string>): OciError {
  const message =
    "the upstream registry did not grant the proxy's own account this access (insufficient_scope): its permissions upstream need widening; your credentials were accepted";
  return new OciError(403, 'DENIED', message, { headers });
}
