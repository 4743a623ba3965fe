import type { UpstreamConfig } from '../config/types.js';
import { outbound } from '../http/outbound.js';
import type { Logger } from '../log.js';
import { upstreamAuthFailureKind } from './failure.js';
import type { Upstream } from './upstream.js';

/**
 * What /readyz tells its (anonymous) caller when the upstream probe fails. Only which check failed:
 * the upstream's address and the socket error describe the inside of the deployment, so they go to
 * the log (warn, once per change) and nowhere else.
 */
const UPSTREAM_UNREACHABLE = 'upstream unreachable';
const UPSTREAM_REJECTED = "upstream rejected the proxy's credentials";
const UPSTREAM_BAD_ANSWER = 'upstream sent an oversized answer';

type ProbeOutcome = { ok: true } | { ok: false; reason: string; detail: string };

const PROBE_TIMEOUT_MS = 3000;

/**
 * What the upstream's answer to `GET /v2/`, sent with the proxy's own credentials, says. Pure.
 * 401 (the upstream) or 407 (an HTTP proxy before it) refuses those credentials: every proxied call
 * would then be a 502, so the proxy is not ready. Any other status proves the upstream is up and
 * lets the proxy in (a 404 or 5xx is the upstream's own business, passed to clients as it is).
 */
export function judgeUpstreamAnswer(status: number, authType: UpstreamConfig['auth']['type']): ProbeOutcome {
  if (status !== 401 && status !== 407) return { ok: true };
  const why =
    authType === 'none'
      ? 'and upstream.auth is none: the upstream needs credentials (set upstream.auth)'
      : `with the proxy's upstream.auth (${authType}): check them`;
  return { ok: false, reason: UPSTREAM_REJECTED, detail: `GET /v2/ answered HTTP ${status} ${why}` };
}

/** A failure to obtain the proxy's own upstream credentials, as a readiness outcome (see upstreamAuthFailureKind). Pure. */
export function judgeAuthFailure(err: unknown): ProbeOutcome & { ok: false } {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const kind = upstreamAuthFailureKind(err);
  if (kind === 'unreachable' || kind === 'timeout')
    return { ok: false, reason: UPSTREAM_UNREACHABLE, detail: `${message} (${String(e?.code)})` };
  if (kind === 'bad-answer') return { ok: false, reason: UPSTREAM_BAD_ANSWER, detail: message };
  return { ok: false, reason: UPSTREAM_REJECTED, detail: message };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One probe: the proxy's own upstream credentials first (a failure to get them is already an
 * answer), then `GET /v2/` with them. Credentials the upstream refuses are dropped so the next
 * probe fetches fresh ones.
 */
async function checkUpstream(upstream: Upstream): Promise<ProbeOutcome> {
  const { auth } = upstream;
  let authorization: string | undefined;
  try {
    // Quiet: the probe logs a failure itself, once per change, not on every probe.
    authorization = await withTimeout(auth.authorization([], { quiet: true }), PROBE_TIMEOUT_MS);
  } catch (err) {
    return judgeAuthFailure(err);
  }
  try {
    const headers: Record<string, string> = authorization ? { authorization } : {};
    const res = await outbound(`${upstream.url}/v2/`, {
      dispatcher: upstream.agent.outbound,
      timeoutMs: PROBE_TIMEOUT_MS,
      headers,
    });
    const outcome = judgeUpstreamAnswer(res.status, upstream.config.auth.type);
    if (!outcome.ok) auth.invalidate([]);
    return outcome;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, reason: UPSTREAM_UNREACHABLE, detail: `${e.message}${e.code ? ` (${e.code})` : ''}` };
  }
}

/**
 * Remembers whether the upstream answered `GET /v2/` with the proxy's own credentials recently:
 * with `registry-token` auth the token dance must succeed first, with the others their header is
 * sent, with `none` nothing is. Probed lazily by /readyz, at most every few seconds.
 */
function createUpstreamProbe(upstream: Upstream | undefined, logger?: Logger, intervalMs = 5000) {
  let lastOk = 0;
  let lastTry = 0;
  let last: ProbeOutcome = { ok: false, reason: UPSTREAM_UNREACHABLE, detail: 'not probed yet' };
  let loggedDetail: string | undefined;

  async function probe(): Promise<void> {
    if (!upstream) return;
    lastTry = Date.now();
    last = await checkUpstream(upstream);
    if (last.ok) {
      lastOk = Date.now();
      if (loggedDetail !== undefined) logger?.info({ upstream: upstream.url }, 'readiness: upstream answers again');
      loggedDetail = undefined;
      return;
    }
    // The details are for operators: logged when the failure starts or changes, not on every probe.
    if (last.detail !== loggedDetail)
      logger?.warn({ upstream: upstream.url, err: last.detail }, `readiness: ${last.reason}`);
    loggedDetail = last.detail;
  }
  return {
    async ready(): Promise<{ ok: boolean; reason?: string }> {
      if (!upstream) return { ok: true };
      if (Date.now() - lastTry > intervalMs) await probe();
      if (Date.now() - lastOk <= intervalMs * 3) return { ok: true };
      return { ok: false, reason: last.ok ? UPSTREAM_UNREACHABLE : last.reason };
    },
  };
}

/**
 * One probe per upstream, on the Upstreams the forwarder uses (their credentials, not a second set):
 * ready only while every one is; the reason names the first that is not.
 */
export function createUpstreamsProbe(upstreams: readonly Upstream[], logger?: Logger) {
  // A lone `upstream:` is unnamed (config/upstreams.ts): its reason names no upstream.
  const [only] = upstreams;
  if (upstreams.length <= 1 && !only?.name) return createUpstreamProbe(only, logger);
  const probes = upstreams.map((u) => ({ name: u.name, probe: createUpstreamProbe(u, logger) }));
  return {
    async ready(): Promise<{ ok: boolean; reason?: string }> {
      const results = await Promise.all(probes.map(async (p) => ({ name: p.name, ...(await p.probe.ready()) })));
      const down = results.find((r) => !r.ok);
      return down
        ? { ok: false, reason: `upstream ${down.name}: ${down.reason ?? UPSTREAM_UNREACHABLE}` }
        : { ok: true };
    },
  };
}
