import type { UpstreamConfig } from '../../config/types.js';
import { outbound } from '../../http/outbound.js';
import type { Logger } from '../../log.js';
import { parseBearerChallenge } from '../../oci/challenge.js';
import type { Scope } from '../../oci/scope.js';
import { tokenDance, withOwnHttp } from '../token-dance.js';
import type { UpstreamAuth, UpstreamHttp } from '../types.js';

/** The Basic username Google's registries take with an OAuth access token as the password. */
const GAR_USERNAME = 'oauth2accesstoken';
/** The scope Artifact Registry accepts (IAM roles decide what the token may do). */
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

interface AccessTokens {
  /** A current OAuth access token (google-auth-library caches it and renews it before it expires). */
  get(): Promise<string>;
  /** Forget it: the token service refused it (revoked, or the key rotated). */
  forget(): void;
}

/**
 * Application Default Credentials, loaded on first use (a proxy without a GAR upstream never loads
 * the library): GOOGLE_APPLICATION_CREDENTIALS (a service-account key or a workload identity
 * federation `external_account` file), gcloud's ADC file, else the metadata server (GCE, GKE
 * Workload Identity; GCE_METADATA_HOST moves it).
 */
function applicationDefaultCredentials(): AccessTokens {
  type Auth = import('google-auth-library').GoogleAuth;
  let auth: Promise<Auth> | undefined;
  // A token needs no project, but without one ADC looks it up first (for an external_account file
  // from Cloud Resource Manager, which a proxy without that egress or permission cannot reach).
  const options = {
    scopes: [CLOUD_PLATFORM],
    projectId: process.env.GOOGLE_CLOUD_PROJECT || 'unused-by-registry-auth-proxy',
  };
  const load = () => (auth ??= import('google-auth-library').then(({ GoogleAuth }) => new GoogleAuth(options)));
  return {
    async get() {
      const token = await (await load()).getAccessToken();
      if (!token) throw new Error('Application Default Credentials gave no access token');
      return token;
    },
    forget() {
      // A new GoogleAuth starts without the cached client and its token.
      auth = undefined;
    },
  };
}

/**
 * GAR's `/v2/` challenge names no service: a repository-scoped challenge does (an anonymous
 * `GET /v2/<name>/tags/list` for the first repository asked for, which GAR answers with realm,
 * service and scope), else the realm's host (what GAR advertises).
 */
async function garService(
  upstream: UpstreamConfig,
  http: UpstreamHttp,
  realm: URL,
  scopes: Scope[],
  logger: Logger,
): Promise<string> {
  const repository = scopes.find((s) => s.type === 'repository');
  let service: string | undefined;
  if (repository) {
    const res = await outbound(`${upstream.url}/v2/${repository.name}/tags/list`, {
      dispatcher: http.dispatcher,
      timeoutMs: http.timeoutMs,
    });
    service = res.status === 401 ? parseBearerChallenge(res.headers['www-authenticate'])?.service : undefined;
  }
  logger.debug(
    { upstream: upstream.url, service: service || realm.host, from: service ? 'repository' : 'realm host' },
    'learnt the GAR token service',
  );
  return service || realm.host;
}

/**
 * Google Artifact Registry (and Container Registry): the token dance with Basic
 * `oauth2accesstoken:<OAuth access token>` from Application Default Credentials; a token the token
 * service refuses (401) is forgotten and the call tried once more with a new one. The realm must be
 * on the upstream's own origin: the access token is a Google credential, sent nowhere else.
 */
export function garAuth(
  upstream: UpstreamConfig,
  logger: Logger,
  tokens: AccessTokens = applicationDefaultCredentials(),
  http?: UpstreamHttp,
): UpstreamAuth {
  return withOwnHttp(upstream, http, (h, close) =>
    tokenDance(
      upstream,
      {
        token: 'a GAR registry token',
        tokenService: 'GAR token service',
        secret: 'the Google access token',
        service: (realm, scopes) => garService(upstream, h, realm, scopes, logger),
        credentials: async () => ({ username: GAR_USERNAME, password: await tokens.get() }),
        refused: () => tokens.forget(),
      },
      h,
      logger,
      close,
    ),
  );
}
