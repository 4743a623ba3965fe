/**
 * The registry-token dance's pure parts: which token realm may receive the proxy's credentials, and
 * what a token server's answer means (Docker's token spec, as Harbor, GHCR, Docker Hub and Quay speak it),
 * and the upstream's rate-limit headers.
 */

/** The token server's answer to keep: the Authorization header and until when it may be used (ms epoch). */
interface UpstreamToken {
  header: string;
  until: number;
}

/** The upstream advertised a token realm on a host the proxy does not send its credentials to. */
class UntrustedRealmError extends Error {
  readonly untrustedRealm = true;
  constructor(readonly realmHost: string) {
    super(
      `the upstream's token realm is on ${realmHost}, which is neither the upstream's host nor listed in upstream.auth.realmHosts`,
    );
  }
}

const defaultPort = (u: URL) => u.port || (u.protocol === 'https:' ? '443' : '80');

/**
 * Why the proxy's credentials must not go to `realm`, or undefined. Pure. The upstream's own origin
 * (scheme, host and port) is trusted; a host in `realmHosts` (`host` for any port, or `host:port`) is
 * trusted over https, or over http when the upstream itself is plain http (never a downgrade).
 */
export function untrustedRealm(
  upstreamURL: string,
  realm: URL,
  realmHosts: readonly string[],
): UntrustedRealmError | undefined {
  const upstream = new URL(upstreamURL);
  const sameOrigin =
    realm.protocol === upstream.protocol &&
    realm.hostname === upstream.hostname &&
    defaultPort(realm) === defaultPort(upstream);
  if (sameOrigin) return undefined;
  const listed = realmHosts.some((h) => {
    const entry = h.toLowerCase();
    return entry.includes(':') ? entry === `${realm.hostname}:${defaultPort(realm)}` : entry === realm.hostname;
  });
  const schemeOK = realm.protocol === 'https:' || upstream.protocol === 'http:';
  return listed && schemeOK ? undefined : new UntrustedRealmError(realm.host);
}

/** Seconds of a token's lifetime left unused, so that it is never sent just as it expires. */
const EXPIRY_MARGIN_S = 10;

/**
 * A token server's 200 body as the header to send and until when. Pure. `token` or `access_token`
 * (OAuth2-style servers send only the latter); `expires_in` missing means 60 s, and below 60 counts as
 * 60 (the spec); `issued_at`, when given and in the past, dates the lifetime instead of `now`.
 */
export function parseTokenResponse(text: string, now: number): UpstreamToken {
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error('upstream token server answered with a body that is not JSON');
  }
  const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
  if (typeof token !== 'string' || token === '') throw new Error('upstream token server returned no token');
  const ttl = Math.max(
    60,
    typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) ? body.expires_in : 60,
  );
  const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
  // Only an issued_at in the past and within the lifetime counts: a server clock ahead of ours must not
  // extend it, one far behind must not make every token look expired.
  const from = Number.isFinite(issued) && issued < now && now - issued < (ttl - EXPIRY_MARGIN_S) * 1000 ? issued : now;
  return { header: `Bearer ${token}`, until: from + (ttl - EXPIRY_MARGIN_S) * 1000 };
}

/** Docker Hub's `ratelimit-remaining: 100;w=21600` (or a bare `100`) as 100, else undefined. Pure. */
export function rateLimitRemaining(header: string | string[] | undefined): number | undefined {
  const m = typeof header === 'string' ? /^\s*(\d+)\s*(?:;|$)/.exec(header) : null;
  return m ? Number(m[1]) : undefined;
}
