import { OciError } from '../oci/errors.js';
import type { Headroom, Verdict } from './types.js';

/**
 * A refused verdict as the error every client prints (which limit, what it counts per, when it
 * resets: never the key itself, which may be a subject or a claim's value), and
 * the RateLimit headers of an admitted one (Docker Hub's `ratelimit-limit`/`ratelimit-remaining`,
 * `;w=` the window in seconds). Pure: `now` is passed in.
 */

function inWords(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.ceil(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.ceil((s % 3600) / 60)}m`;
}

export function headroomHeaders(h: Headroom | undefined): Record<string, string> {
  if (!h) return {};
  return { 'ratelimit-limit': `${h.limit};w=${h.windowS}`, 'ratelimit-remaining': `${h.remaining};w=${h.windowS}` };
}

/** Undefined when admitted; else the 429 (over a limit) or 503 (store down, failMode: closed) to answer. */
export function refusalOf(verdict: Verdict, now: number): OciError | undefined {
  if (verdict.ok) return undefined;
  if ('unavailable' in verdict)
    return new OciError(
      503,
      'UNAVAILABLE',
      'rate-limit store unavailable (limits.store.failMode: closed): retry shortly',
      {
        headers: { 'retry-after': '5' },
        statusMessage: 'Service Unavailable (rate-limit store unavailable)',
      },
    );
  const retryS = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
  const at = new Date(Math.ceil((now + verdict.retryAfterMs) / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const message = `rate limit "${verdict.rule}" of ${verdict.what} (counted per ${verdict.per}) reached: resets in ${inWords(verdict.retryAfterMs)} (${at})`;
  return new OciError(429, 'TOOMANYREQUESTS', message, {
    detail: { limit: verdict.rule, key: verdict.keyClass, retryAfter: retryS },
    headers: {
      'retry-after': String(retryS),
      'ratelimit-limit': `${verdict.limit};w=${verdict.windowS}`,
      'ratelimit-remaining': `0;w=${verdict.windowS}`,
    },
    // containerd (ctr, the CRI plugin) prints only the status line: the limit and its reset there too.
    statusMessage: `Too Many Requests (rate limit ${verdict.rule} reached: resets in ${inWords(verdict.retryAfterMs)})`,
  });
}
