import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/types.js';
import { outbound, outboundAgent } from '../../http/outbound.js';
import type { Logger } from '../../log.js';
import type { Scope } from '../../oci/scope.js';
import { parseBearerChallenge } from '../../oci/challenge.js';
import { TokenCache, type CacheFill } from '../../http/token-cache.js';
import { parseTokenResponse, untrustedRealm } from '../token-realm.js';
import { askTokenService, scopedTokens } from '../token-dance.js';

/** The Basic username Google's registries take with an OAuth access token as the password. */
const GAR_USERNAME = 'oauth2accesstoken';
/** The scope Artifact Registry accepts (IAM roles decide what the token may do). */
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';
/** Byte budget of the registry-token cache: one entry per distinct scope set. */
const CACHE_MAX_BYTES = 8 * 1024 * 1024;

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
  const options = { scopes: [CLOUD_PLATFORM], projectId: process.env.GOOGLE_CLOUD_PROJECT || 'unused-by-registry-auth-proxy' };
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

type Challenge = Record<string, string>;

interface GarChallenge {
  realm: string;
  service: string;
}

async function probe(upstream: UpstreamConfig, dispatcher: Dispatcher, path: string): Promise<Challenge | undefined> {
  const res = await outbound(`${upstream.url}${path}`, { dispatcher, timeoutMs: upstream.timeout });
  return res.status === 401 ? parseBearerChallenge(res.headers['www-authenticate']) : undefined;
}

/** The realm of the `/v2/` challenge, if on the upstream's own origin; else an error (logged: the host only). */
function sameOriginRealm(upstream: UpstreamConfig, advertised: string, logger: Logger): URL {
  let realm: URL;
  try {
    realm = new URL(advertised);
  } catch {
    throw new Error(`upstream ${upstream.url} advertised a token realm that is not a URL`);
  }
  const refused = untrustedRealm(upstream.url, realm, []);
  if (refused) {
    logger.error({ upstream: upstream.url, realmHost: refused.realmHost }, `${refused.message}: not sending the Google access token there`);
    throw refused;
  }
  return realm;
}

/**
 * Realm and service: the realm from `GET /v2/`; the service from it if named, else from a
 * repository-scoped challenge (`GET /v2/<name>/tags/list` for the first repository asked for), else
 * the realm's host.
 */
async function learnChallenge(upstream: UpstreamConfig, dispatcher: Dispatcher, scopes: Scope[], logger: Logger): Promise<GarChallenge> {
  const root = await probe(upstream, dispatcher, '/v2/');
  if (!root?.realm) throw new Error(`upstream ${upstream.url}/v2/ did not answer with a Bearer challenge`);
  const realm = sameOriginRealm(upstream, root.realm, logger);
  let service = root.service;
  const repository = scopes.find((s) => s.type === 'repository');
  if (!service && repository) service = (await probe(upstream, dispatcher, `/v2/${repository.name}/tags/list`))?.service;
  const learnt = { realm: root.realm, service: service || realm.host };
  logger.debug(
    { upstream: upstream.url, service: learnt.service, from: root.service ? 'v2' : service ? 'repository' : 'realm host' },
    'learnt the GAR token service',
  );
  return learnt;
}

/**
 * Google Artifact Registry (and Container Registry): the registry-token dance with Basic
 * `oauth2accesstoken:<OAuth access token>` from Application Default Credentials. GAR's `/v2/`
 * challenge has a realm but no `service`; the service is then learnt from a repository-scoped
 * challenge (an anonymous `GET /v2/<name>/tags/list`, which GAR answers with realm, service and
 * scope), else taken as the realm's host (what GAR advertises). The realm must be on the upstream's
 * own origin: the access token is a Google credential, sent nowhere else.
 */
export function garAuth(upstream: UpstreamConfig, logger: Logger, tokens: AccessTokens = applicationDefaultCredentials()) {
  const dispatcher = outboundAgent({ caFile: upstream.caFile, timeoutMs: upstream.timeout });
  const cache = new TokenCache<string>(CACHE_MAX_BYTES);
  let challenge: GarChallenge | undefined;

  /** One token-service call; a 401 means the access token was refused: forget it and try once more with a new one. */
  async function fetchToken(scopes: Scope[], retried = false): Promise<CacheFill<string>> {
    const ch = (challenge ??= await learnChallenge(upstream, dispatcher, scopes, logger));
    const credentials = { username: GAR_USERNAME, password: await tokens.get() };
    const answer = await askTokenService(ch.realm, { service: ch.service, scopes }, credentials, { dispatcher, timeoutMs: upstream.timeout });
    if (answer.status === 401 && !retried) {
      tokens.forget();
      return fetchToken(scopes, true);
    }
    if (answer.status !== 200) throw new Error(`GAR token service ${answer.where} answered HTTP ${answer.status}`);
    const { header, until } = parseTokenResponse(answer.text, Date.now());
    return { value: header, until, token: header };
  }

  return scopedTokens({
    cache,
    fetch: (scopes) => fetchToken(scopes),
    logger,
    failure: 'could not obtain a GAR registry token',
    forget: () => (challenge = undefined),
    close: () => dispatcher.close(),
  });
}
