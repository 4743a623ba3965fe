/**
 * The issuers' default `clockSkew` (config issuers[].clockSkew): how long after `exp` the proxy's
 * /token still accepts an identity token. Client helpers, which cannot read the proxy's config,
 * allow the same before calling a token file expired.
 */
export const DEFAULT_CLOCK_SKEW = '30s';

/** Parses `30s`, `5m`, `1h`, `1h30m`, `250ms` (also a bare number of seconds) into milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new Error(`invalid duration ${input}`);
    return input * 1000;
  }
  const s = input.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    const unit = m[2];
    total +=
      n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000);
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== s.length) {
    throw new Error(`invalid duration "${input}" (use e.g. 30s, 5m, 1h)`);
  }
  return Math.round(total);
}

/** Formats milliseconds as a Go duration string (kubelet's `cacheDuration` wants this shape). */
export function formatGoDuration(ms: number): string {
  let secs = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(secs / 3600);
  secs -= h * 3600;
  const m = Math.floor(secs / 60);
  secs -= m * 60;
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${secs}s`;
}
