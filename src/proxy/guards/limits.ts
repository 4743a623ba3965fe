import { clientIPOf } from '../../http/client-ip.js';
import { anonymousIdentity } from '../../identity/types.js';
import { refusalOf } from '../../limits/answer.js';
import type { Limiter } from '../../limits/types.js';
import type { Guard } from '../guards.js';

/**
 * `limits.rules` at /v2/: the request is counted under the identity its registry token carries
 * (token/issue.ts embeds it when a rule counts at `registry`), by route kind and upstream. A token
 * without one (issued before limits were configured) is counted as the anonymous caller at its address.
 */
export function limitGuard(limiter: Limiter, service: string, now: () => number = Date.now): Guard {
  return async function limits({ req, route, grant, upstream }) {
    const identity = grant.identity ?? anonymousIdentity();
    const verdict = await limiter.check(
      {
        identity,
        request: {
          type: route.scopes[0]?.type ?? '',
          repository: route.name ?? '',
          actions: route.scopes[0]?.actions ?? [],
          service,
          clientIP: clientIPOf(req),
          upstream: upstream.name,
        },
      },
      { place: 'registry', kind: route.kind, method: route.method },
    );
    return refusalOf(verdict, now());
  };
}
