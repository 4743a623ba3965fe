import { randomUUID } from 'node:crypto';
import type { AuditEvent, RegistryAction, RegistryEvent } from './events.js';

/**
 * Distribution's notification envelope (distribution/notifications/event.go), so that tools which
 * consume a registry's notifications today take ours unchanged: `{"events": [...]}` POSTed as
 * `application/vnd.docker.distribution.events.v2+json`. Only what Distribution itself notifies is
 * sent: a pull, push or delete that succeeded (no token decisions, no refusals). Pure but for the id.
 */

export const DISTRIBUTION_EVENTS = 'application/vnd.docker.distribution.events.v2+json';

interface DistributionEvent {
  id: string;
  timestamp: string;
  action: 'pull' | 'push' | 'delete';
  target: {
    mediaType?: string;
    size?: number;
    digest?: string;
    length?: number;
    repository: string;
    url?: string;
    tag?: string;
  };
  request: { id: string; addr: string; host?: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr?: string; instanceID?: string };
}

const ACTIONS: Record<RegistryAction, DistributionEvent['action']> = {
  'manifest.get': 'pull',
  'manifest.head': 'pull',
  'blob.get': 'pull',
  'manifest.put': 'push',
  'blob.upload': 'push',
  'manifest.delete': 'delete',
};

/** Distribution's blob descriptors carry this when nothing more is known (its blob store's default). */
const OCTET_STREAM = 'application/octet-stream';

const isTag = (reference: string | undefined) => reference !== undefined && !reference.includes(':');

/** Where the envelope says it came from: this proxy's public address and this process. */
interface DistributionSource {
  publicURL: string;
  instanceID: string;
}

/**
 * The Distribution event of one audit event, or undefined when Distribution would notify nothing
 * (a token decision, a refusal, an error, a cut connection). The actor is the identity's subject.
 */
export function toDistributionEvent(
  event: AuditEvent,
  source: DistributionSource,
  id: string = randomUUID(),
): DistributionEvent | undefined {
  if (event.audit !== 'registry' || typeof event.status !== 'number' || event.status < 200 || event.status > 299)
    return undefined;
  const action = ACTIONS[event.action];
  const blob = event.action.startsWith('blob.');
  // A read's size is what the upstream said (a HEAD has no body), a manifest PUT's what the client
  // sent. A blob upload's closing PUT may carry only its last chunk: its size is not known here.
  const size = event.action === 'manifest.put' ? event.bytes : event.action === 'blob.upload' ? undefined : event.size;
  const url = new URL(source.publicURL);
  return {
    id,
    timestamp: event.time,
    action,
    target: {
      ...(action !== 'delete' ? { mediaType: event.mediaType ?? (blob ? OCTET_STREAM : undefined) } : {}),
      ...(size !== undefined ? { size } : {}),
      ...(event.digest ? { digest: event.digest } : {}),
      ...(size !== undefined ? { length: size } : {}),
      repository: event.repository,
      ...(event.digest && action !== 'delete' ? { url: contentURL(source.publicURL, event as DigestedEvent) } : {}),
      ...(!blob && isTag(event.reference) ? { tag: event.reference } : {}),
    },
    request: {
      id: event.requestId ?? '',
      addr: event.clientIP,
      ...(event.host ? { host: event.host } : {}),
      method: event.method,
      useragent: event.userAgent ?? '',
    },
    actor: event.subject ? { name: event.subject } : {},
    source: { addr: url.host, instanceID: source.instanceID },
  };
}

type DigestedEvent = RegistryEvent & { digest: string };

/** Distribution's own URL builder: `/v2/<name>/manifests/<digest>` or `/v2/<name>/blobs/<digest>`. */
function contentURL(publicURL: string, event: DigestedEvent): string {
  const kind = event.action.startsWith('blob.') ? 'blobs' : 'manifests';
  return `${publicURL.replace(/\/+$/, '')}/v2/${event.repository}/${kind}/${event.digest}`;
}
