import type { GetAuthorizationTokenCommandOutput } from '@aws-sdk/client-ecr';
import type { Logger } from '../../log.js';
import { renewalPacer, type RenewalObserver } from '../renewal.js';

/** A background renewal that failed is tried again after this long (while the credential lasts). */
const RETRY_MS = 30_000;

const ECR_HOST =
  /^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|on\.aws|sc2s\.sgov\.gov|c2s\.ic\.gov)$/;

/** The AWS region an ECR registry URL names (`<account>.dkr.ecr.<region>.amazonaws.com`), if any. Pure. */
export function ecrRegionOf(url: string): string | undefined {
  return ECR_HOST.exec(new URL(url).hostname)?.[1];
}

interface Credential {
  header: string;
  expiresAt: number;
  /** Until its renewal when that comes later than `expiresAt` (an answer already expired): the registry judges it then. */
  usableUntil: number;
}

interface EcrClient {
  getToken(): Promise<GetAuthorizationTokenCommandOutput>;
  destroy(): void;
}

/** Loaded on first use: a proxy without an ECR upstream never loads the AWS SDK. */
async function loadEcrClient(region: string | undefined): Promise<EcrClient> {
  const { ECRClient, GetAuthorizationTokenCommand } = await import('@aws-sdk/client-ecr');
  const client = new ECRClient(region ? { region } : {});
  return { getToken: () => client.send(new GetAuthorizationTokenCommand({})), destroy: () => client.destroy() };
}

/** GetAuthorizationToken's answer as a Basic header: its token is already base64 `AWS:<password>`. */
function toCredential(out: GetAuthorizationTokenCommandOutput, started: number): Omit<Credential, 'usableUntil'> {
  const data = out.authorizationData?.[0];
  if (!data?.authorizationToken) throw new Error('ECR GetAuthorizationToken returned no authorization token');
  const decoded = Buffer.from(data.authorizationToken, 'base64').toString('utf8');
  if (!/^[^:]+:./s.test(decoded)) throw new Error('ECR authorization token is not base64 "user:password"');
  return {
    header: `Basic ${data.authorizationToken}`,
    expiresAt: data.expiresAt?.getTime() ?? started + 12 * 3600_000,
  };
}

/**
 * Amazon ECR: the proxy's credential is ECR's `GetAuthorizationToken` answer — base64
 * `AWS:<password>`, valid 12 h — presented as Basic. Credentials and endpoint come from the AWS
 * SDK's standard settings only (default chain: env keys, IRSA web identity, Pod Identity, instance
 * profile; `AWS_ENDPOINT_URL_ECR`). Renewed in the background at 80 % of its lifetime (floored,
 * with back-off: renewal.ts), one call at a time; `invalidate` (the registry answered 401) drops it,
 * so the next request fetches anew.
 */
export function ecrAuth(url: string, configuredRegion: string | undefined, logger: Logger, observe?: RenewalObserver) {
  const region = configuredRegion ?? ecrRegionOf(url);
  let sdk: Promise<EcrClient> | undefined;
  const ecr = () => (sdk ??= loadEcrClient(region));
  let current: Credential | undefined;
  let pending: Promise<Credential> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const pacer = renewalPacer('the ECR authorization token', logger, observe);

  function schedule(ms: number): void {
    clearTimeout(timer);
    if (closed) return;
    timer = setTimeout(() => {
      load().catch((err: unknown) => {
        const retry = current !== undefined && current.expiresAt - Date.now() > RETRY_MS;
        logger.warn({ err: (err as Error).message, retry }, 'could not renew the ECR authorization token');
        if (retry) schedule(RETRY_MS);
      });
    }, ms);
    timer.unref();
  }

  async function fetchCredential(): Promise<Credential> {
    const started = Date.now();
    const credential = await pacer.attempt(async () => toCredential(await (await ecr()).getToken(), started));
    // The lifetime left now the answer is here (from `started`, the SDK's first load pushed renewal past expiry).
    const delay = pacer.answered(credential.expiresAt - Date.now());
    schedule(delay);
    return { ...credential, usableUntil: Math.max(credential.expiresAt, Date.now() + delay) };
  }

  /** Single flight: concurrent callers share one GetAuthorizationToken call. */
  function load(): Promise<Credential> {
    pending ??= fetchCredential()
      .then((c) => (current = c))
      .finally(() => (pending = undefined));
    return pending;
  }

  return {
    async authorization(_scopes?: unknown, opts?: { quiet?: boolean }): Promise<string> {
      if (current && current.usableUntil > Date.now()) return current.header;
      try {
        return (await load()).header;
      } catch (err) {
        if (!opts?.quiet) logger.error({ err: (err as Error).message }, 'could not obtain an ECR authorization token');
        throw err;
      }
    },
    invalidate(): void {
      current = undefined;
    },
    async close(): Promise<void> {
      closed = true;
      clearTimeout(timer);
      await sdk?.then((c) => c.destroy()).catch(() => {});
    },
  };
}
