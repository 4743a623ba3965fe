import { clientIPOf } from '../../http/client-ip.js';
import { anonymousIdentity } from '../../identity/types.js';
import { headroomHeaders, refusalOf } from '../../limits/answer.js';
import type { Limiter } from '../../limits/types.js';
import { requestKind } from '../../policy/request.js';
import type { Guard } from '../guards.js';

/**
 * `limits.rules` at /v2/: the request is counted under the identity its registry token carries
 * (token/issue.ts embeds it when limits are configured), by the rules whose `match` it meets. A
 * token without one (issued before limits were configured) is counted as the anonymous caller at
 * its address. An admitted request passes with the RateLimit headers of its closest limit (Docker
 * Hub's `ratelimit-limit` / `ratelimit-remaining`), set on the upstream's answer.
 */
export function limitGuard(limiter: Limiter, service: string, now: () => number = Date.now): Guard {
  return async function limits({ req, route, grant, upstream }) {
    const identity = grant.identity ?? anonymousIdentity();
    const verdict = await limiter.check({
      identity,
      request: {
        type: route.scopes[0]?.type ?? '',
        repository: route.name ?? '',
        actions: route.scopes[0]?.actions ?? [],
        service,
        clientIP: clientIPOf(req),
        upstream: upstream.name,
        kind: requestKind(route.kind) ?? 'ping',
        method: route.method,
        reference: route.reference ?? '',
      },
    });
    const refused = refusalOf(verdict, now());
    if (refused) return refused;
    const headers = verdict.ok ? headroomHeaders(verdict.headroom) : {};
    return Object.keys(headers).length ? { hold: true, headers } : undefined;
  };
}
