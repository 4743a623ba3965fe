import { formatGoDuration } from '../config/duration.js';
import {
  assertNotKubernetesAPIToken,
  expiredMessage,
  readIdentityToken,
  tokenExpiry,
  DEFAULT_USERNAME,
} from './token-source.js';

/**
 * kubelet image credential provider (`credentialprovider.kubelet.k8s.io/v1`), a pure function of
 * the request, the environment and the clock; I/O stays in the command.
 */
const API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';

export class ProviderError extends Error {}

interface ProviderRequest {
  apiVersion: string;
  kind: 'CredentialProviderRequest';
  image: string;
  serviceAccountToken?: string;
  serviceAccountAnnotations?: Record<string, string>;
}

interface ProviderResponse {
  apiVersion: string;
  kind: 'CredentialProviderResponse';
  cacheKeyType: 'Image' | 'Registry' | 'Global';
  cacheDuration?: string;
  auth: Record<string, { username: string; password: string }>;
}

export function parseRequest(text: string): ProviderRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ProviderError('request on stdin is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ProviderError('request must be a JSON object');
  const r = doc as Record<string, unknown>;
  if (r.apiVersion !== API_VERSION)
    throw new ProviderError(`unsupported apiVersion ${JSON.stringify(r.apiVersion)} (want ${API_VERSION})`);
  if (r.kind !== 'CredentialProviderRequest') throw new ProviderError(`unsupported kind ${JSON.stringify(r.kind)}`);
  if (typeof r.image !== 'string' || r.image.length === 0 || r.image.length > 4096)
    throw new ProviderError('request has no image');
  if (
    r.serviceAccountToken !== undefined &&
    (typeof r.serviceAccountToken !== 'string' || r.serviceAccountToken.length === 0)
  )
    throw new ProviderError('serviceAccountToken must be a non-empty string');
  return r as unknown as ProviderRequest;
}

/** The registry host of an image reference (`registry.example.com:5000/team/app:tag` → `registry.example.com:5000`). */
export function registryOf(image: string): string {
  const first = image.split('/')[0]!;
  if (!image.includes('/') || (!first.includes('.') && !first.includes(':') && first !== 'localhost'))
    return 'docker.io';
  return first;
}

interface ProviderOptions {
  env: NodeJS.ProcessEnv;
  now?: () => number;
  /** Safety margin before the token's exp, in seconds. */
  marginSeconds?: number;
}

export function respond(req: ProviderRequest, opts: ProviderOptions): ProviderResponse {
  const clock = opts.now ?? Date.now;
  const now = Math.floor(clock() / 1000);
  const margin = opts.marginSeconds ?? 60;
  let token: string;
  let from: string;
  let cacheKeyType: ProviderResponse['cacheKeyType'];
  if (req.serviceAccountToken) {
    // Service-account mode: the credential is the pod's own token. Cache per image would re-ask for
    // every image; per registry is safe because kubelet keys the cache by service account too
    // (tokenAttributes.cacheType: ServiceAccount).
    token = req.serviceAccountToken;
    from = "the request's serviceAccountToken";
    cacheKeyType = 'Registry';
    // kubelet mints it for tokenAttributes.serviceAccountTokenAudience; should that name the API
    // server, pulling would hand every pod's API credential to the registry.
    assertNotKubernetesAPIToken(token, "the request's serviceAccountToken");
  } else {
    // refuses an expired token (past the proxy's leeway) or a non-JWT, naming the file
    const read = readIdentityToken(opts.env, clock);
    token = read.token;
    from = `identity token file ${read.file}`;
    cacheKeyType = 'Registry';
  }
  const exp = tokenExpiry(token);
  // kubelet would cache a credential that stops working mid-pull: refuse within the margin too
  if (exp !== undefined && exp - margin <= now) throw new ProviderError(expiredMessage(from, exp, now));
  const match = opts.env.RAP_REGISTRY_MATCH ?? registryOf(req.image);
  const username = opts.env.RAP_USERNAME || DEFAULT_USERNAME;
  const res: ProviderResponse = {
    apiVersion: API_VERSION,
    kind: 'CredentialProviderResponse',
    cacheKeyType,
    auth: { [match]: { username, password: token } },
  };
  if (exp !== undefined) res.cacheDuration = formatGoDuration(Math.max(0, exp - margin - now) * 1000);
  else res.cacheDuration = '0s';
  return res;
}
