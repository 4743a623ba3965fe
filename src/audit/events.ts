/**
 * The typed audit events, one per request that ends (ARCHITECTURE.md: audit/). The schema is
 * versioned: a field is only ever added under `rap.audit/v1`; a rename or removal is v2. Every
 * builder here is pure; sinks (sinks.ts) decide where the values go.
 */

export const AUDIT_SCHEMA = 'rap.audit/v1';

/** Who asked, as far as the event can tell: the verified identity's issuer and subject, and the claims the operator listed. */
interface AuditIdentity {
  issuer?: string;
  subject?: string;
  claims?: Record<string, unknown>;
}

/** A `/token` decision: the audit line it always was (same fields), now typed. */
export interface TokenEvent extends AuditIdentity {
  schema: typeof AUDIT_SCHEMA;
  audit: 'token';
  time: string;
  requestId?: string;
  result: string;
  clientIP: string;
  clientId?: string;
  requested: string[];
  /** Refused: the HTTP status, why, the bucket of a 429, the client's message. */
  status?: number;
  reason?: string;
  bucket?: string;
  message?: string;
  /** Granted (or partial): the grant type, what was granted and refused, and the rules that matched. */
  grant?: string;
  granted?: string[];
  refused?: string[];
  rules?: unknown[];
  refresh?: boolean;
  /** `effect: audit` rules that matched: what they would have denied (the grant is unchanged). */
  wouldDeny?: { rule: string; scope: string; actions: string[] }[];
}

/** What a registry access was: the manifest and blob reads and writes the issue lists. */
export type RegistryAction =
  'manifest.get' | 'manifest.head' | 'manifest.put' | 'manifest.delete' | 'blob.get' | 'blob.upload';

/** A `/v2/` request on a manifest or blob, one event however many chunks its body had. */
export interface RegistryEvent extends AuditIdentity {
  schema: typeof AUDIT_SCHEMA;
  audit: 'registry';
  time: string;
  requestId?: string;
  action: RegistryAction;
  method: string;
  repository: string;
  /** The tag or digest the client named (an upload's session id for blob.upload). */
  reference?: string;
  /** The upstream's `Docker-Content-Digest` (blob GET: the digest asked for). */
  digest?: string;
  /** The content's media type: the upstream's `Content-Type` (reads), the client's (a manifest PUT). */
  mediaType?: string;
  /** The content's size as the upstream's `Content-Length` gave it (reads; a HEAD's body is empty). */
  size?: number;
  /** The configured upstream's name ('' with a single upstream). */
  upstream?: string;
  /** Body bytes sent to the client (reads) or received from it (writes). */
  bytes: number;
  /** The status sent, or 'aborted' when the response never finished. */
  status: number | 'aborted';
  /** Aborted after the head went out: the status it had sent (a download cut mid-body). */
  statusSent?: number;
  ms: number;
  clientIP: string;
  /** The `Host` the client addressed and its `User-Agent` (the Distribution envelope carries both). */
  host?: string;
  userAgent?: string;
  /** The guard that refused, and why (a request-time rule names itself in `reason`). */
  refusedBy?: { guard: string; reason?: string };
}

export type AuditEvent = TokenEvent | RegistryEvent;

/** The registry action of a `/v2/` request, or undefined when it is not one audited. Pure. */
export function registryAction(method: string, kind: string, query = ''): RegistryAction | undefined {
  if (kind === 'manifest') {
    if (method === 'GET') return 'manifest.get';
    if (method === 'HEAD') return 'manifest.head';
    if (method === 'PUT') return 'manifest.put';
    if (method === 'DELETE') return 'manifest.delete';
    return undefined;
  }
  if (kind === 'blob' && method === 'GET') return 'blob.get';
  // An upload completes with the PUT that names its digest (monolithic POST+PUT or the last chunk).
  if (kind === 'upload' && method === 'PUT') return 'blob.upload';
  if (kind === 'upload-start' && method === 'POST' && /(^|[?&])digest=/.test(query)) return 'blob.upload';
  return undefined;
}

/** The claims an operator listed, picked from the verified identity's (absent ones left out). Pure. */
export function pickClaims(
  claims: Record<string, unknown> | undefined,
  names: readonly string[],
): Record<string, unknown> | undefined {
  if (!claims || names.length === 0) return undefined;
  const picked: Record<string, unknown> = {};
  for (const name of names) if (claims[name] !== undefined) picked[name] = claims[name];
  return picked;
}

/**
 * `issuerName:subject`, the `sub` of our registry tokens (token/issue.ts), split back. The issuer
 * name holds no `:` (a config key), the subject may (`system:serviceaccount:ns:sa`). Pure.
 */
export function splitRegistrySubject(sub: string | undefined): { issuer?: string; subject?: string } {
  if (!sub) return {};
  const i = sub.indexOf(':');
  return i < 0 ? { subject: sub } : { issuer: sub.slice(0, i), subject: sub.slice(i + 1) };
}

/** The message a sink that writes log lines puts with each event. */
export function eventMessage(event: AuditEvent): string {
  return event.audit === 'token' ? 'token decision' : 'registry access';
}

/**
 * What the /v2/ path learned about one audited request by the time its response closed: the event's
 * own fields, plus what registryEvent derives the rest from.
 */
export type RegistryFacts = Pick<
  RegistryEvent,
  | 'action'
  | 'method'
  | 'repository'
  | 'reference'
  | 'upstream'
  | 'mediaType'
  | 'size'
  | 'status'
  | 'statusSent'
  | 'ms'
  | 'clientIP'
  | 'host'
  | 'userAgent'
  | 'requestId'
  | 'refusedBy'
> & {
  /** The registry token's `sub` (`issuerName:subject`), and its embedded identity's claims when it carries them. */
  tokenSubject?: string;
  identityClaims?: Record<string, unknown>;
  upstreamDigest?: string;
  bytes: { upload: number; download: number };
};

/** The audit event of one registry access. Pure (`time` is given). */
export function registryEvent(facts: RegistryFacts, claimNames: readonly string[], time: string): RegistryEvent {
  const { action } = facts;
  const writes = action === 'manifest.put' || action === 'blob.upload';
  const digest = facts.upstreamDigest ?? (action === 'blob.get' ? facts.reference : undefined);
  const claims = pickClaims(facts.identityClaims, claimNames);
  return {
    schema: AUDIT_SCHEMA,
    audit: 'registry',
    time,
    ...(facts.requestId ? { requestId: facts.requestId } : {}),
    action,
    method: facts.method,
    ...splitRegistrySubject(facts.tokenSubject),
    ...(claims ? { claims } : {}),
    repository: facts.repository,
    ...(facts.reference !== undefined ? { reference: facts.reference } : {}),
    ...(digest ? { digest } : {}),
    ...(facts.mediaType ? { mediaType: facts.mediaType } : {}),
    ...(facts.size !== undefined ? { size: facts.size } : {}),
    ...(facts.upstream !== undefined ? { upstream: facts.upstream } : {}),
    bytes: writes ? facts.bytes.upload : facts.bytes.download,
    status: facts.status,
    ...(facts.statusSent !== undefined ? { statusSent: facts.statusSent } : {}),
    ms: Math.round(facts.ms * 10) / 10,
    clientIP: facts.clientIP,
    ...(facts.host ? { host: facts.host } : {}),
    ...(facts.userAgent ? { userAgent: facts.userAgent } : {}),
    ...(facts.refusedBy ? { refusedBy: facts.refusedBy } : {}),
  };
}
