import { OciError } from '../oci/errors.js';

/** Which side failed when a client gets a 5xx of the proxy's own (never the client's side: it was authorized). */
type UpstreamFailure = 'unreachable' | 'timeout' | 'credentials' | 'unconfigured';

/**
 * What the client is told about an upstream failure. Pure. The OCI body says which side failed
 * without the upstream's address or error text (those are logged). The same words go into the
 * status line's reason phrase, because Docker, containerd and containers/image ignore 5xx bodies and
 * print only the status line ("received unexpected HTTP status: 502 Bad Gateway (…)").
 */
export function upstreamFailure(kind: UpstreamFailure, code?: string): { status: number; message: string; reason: string } {
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
        message: 'upstream registry did not answer in time: the registry behind this proxy is slow or stuck; your credentials were accepted',
        reason: 'Gateway Timeout (upstream registry did not answer in time)',
      };
    case 'credentials':
      return {
        status: 502,
        message: "upstream registry rejected the proxy's own credentials: the proxy's upstream.auth needs fixing; your credentials were accepted",
        reason: "Bad Gateway (upstream rejected the proxy's credentials)",
      };
    case 'unconfigured':
      return { status: 503, message: 'no upstream registry is configured on this proxy', reason: 'Service Unavailable (no upstream registry configured)' };
  }
}

/** An upstream failure as the error the client gets: OCI body and the telling reason phrase. Pure. */
export function upstreamFailureError(kind: UpstreamFailure, opts: { code?: string; headers?: Record<string, string> } = {}): OciError {
  const f = upstreamFailure(kind, opts.code);
  return new OciError(f.status, 'UNAVAILABLE', f.message, undefined, opts.headers ?? {}, f.reason);
}

/**
 * Which side a failure to obtain the proxy's own upstream credentials (a secret file, or the
 * registry-token dance) lies on. Pure. A socket error: the upstream or its token server is
 * unreachable; an unreadable secret file, or anything the upstream answered: those credentials.
 */
export function upstreamAuthFailureKind(err: unknown): 'unreachable' | 'credentials' {
  const e = err as { code?: unknown; path?: unknown } | undefined;
  return typeof e?.code === 'string' && e.code !== '' && typeof e.path !== 'string' ? 'unreachable' : 'credentials';
}

/** The error for a failure to obtain the proxy's own upstream credentials. Pure. */
export function upstreamAuthFailureError(err: unknown): OciError {
  const kind = upstreamAuthFailureKind(err);
  return upstreamFailureError(kind, kind === 'unreachable' ? { code: (err as NodeJS.ErrnoException).code } : {});
}
