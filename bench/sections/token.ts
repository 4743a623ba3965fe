import type { LoadProcess } from '../lib/load.js';
import type { BenchProxy } from '../lib/proxy.js';
import { startTokenFloor } from '../lib/token-floor.js';
import { fmt } from '../lib/stats.js';
import { measured, type Measured } from './head.js';

export interface TokenResults {
  /** Every request with a different identity token: ES256 signature verified each time (issuer keys cached). */
  distinct: Measured;
  /** One identity token repeated: verification cached until its exp. */
  repeated: Measured;
  /** The same distinct identities through the floor (bench/lib/token-floor.ts): HTTP + verify + sign, nothing else. */
  floor: Measured;
}

/** /token issuance at 16 clients (GET with Basic, one repository scope), with the proxy's CPU per issuance. */
export async function benchToken(
  proxy: BenchProxy,
  load: LoadProcess,
  total: number,
  log: (m: string) => void,
): Promise<TokenResults> {
  log(`minting ${total + 500} identity tokens`);
  const basics: Record<string, string>[] = [];
  for (let i = 0; i < total + 500; i++)
    basics.push({ authorization: `Basic ${Buffer.from(`bench:${await proxy.identity(i + 1)}`).toString('base64')}` });
  const path = `/token?service=registry.bench&scope=${encodeURIComponent('repository:bench/app:pull')}`;
  const opts = { url: proxy.url, method: 'GET' as const, path, concurrency: 16, expectStatus: 200, maxMs: 120_000 };
  await load.run({ ...opts, total: 500, headers: basics.slice(total) }); // warm-up with identities not used below
  const distinct = await measured(load, proxy.pid, { ...opts, total, headers: basics.slice(0, total) });
  log(
    `/token distinct identities: ${fmt(distinct.lat.rps, 0)}/s, ${fmt(distinct.cpuMs, 3)} ms CPU each, p99 ${fmt(distinct.lat.p99)} ms`,
  );
  const repeated = await measured(load, proxy.pid, { ...opts, total, headers: basics[0]! });
  log(
    `/token repeated identity: ${fmt(repeated.lat.rps, 0)}/s, ${fmt(repeated.cpuMs, 3)} ms CPU each, p99 ${fmt(repeated.lat.p99)} ms`,
  );
  const floor = await startTokenFloor(proxy.jwks);
  try {
    const floorOpts = { ...opts, url: floor.url };
    await load.run({ ...floorOpts, total: 500, headers: basics.slice(total) });
    const f = await measured(load, floor.pid, { ...floorOpts, total, headers: basics.slice(0, total) });
    log(
      `/token floor (bare node: HTTP + ES256 verify + ES256 sign): ${fmt(f.lat.rps, 0)}/s, ${fmt(f.cpuMs, 3)} ms CPU each`,
    );
    return { distinct, repeated, floor: f };
  } finally {
    await floor.stop();
  }
}
