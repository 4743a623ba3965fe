import cluster from 'node:cluster';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { buildConfig } from '../../src/config/load.js';
import { createLimiter } from '../../src/limits/limiter.js';
import { startClusterCounters } from '../../src/limits/store.js';
import type { LimitSubject, StoreState } from '../../src/limits/types.js';
import { compileLimitMatch } from '../../src/policy/limit-key.js';
import { startRedis } from '../../test/fixtures/redis.js';

/**
 * The limiter's own cost per request (issue 23), outside HTTP: `total` checks at 16 concurrent
 * callers over 1000 identities against one rule `rate: {per, count, burst}` with burst < count
 * (two counters, window and pace, as the contract's example has) and a `match` expression,
 * for each store. CPU is this process's (user + system) per check; for the cluster store the
 * worker's plus the primary's that holds the counters; p50 is a check's latency.
 */
export interface LimiterCost {
  store: StoreState['store'];
  cpuMs: number;
  p50Ms: number;
}

const CONCURRENCY = 16;
const MATCH = 'request.upstream == "hub" && request.kind == "manifest"';
const SELF = fileURLToPath(import.meta.url);

function subject(i: number): LimitSubject {
  return {
    identity: { issuerName: 'bench', issuer: 'https://bench', subject: `job-${i % 1000}`, claims: {} },
    request: {
      type: 'repository',
      repository: 'bench/app',
      actions: ['pull'],
      service: 'bench',
      clientIP: '127.0.0.1',
      upstream: 'hub',
      kind: 'manifest',
      method: 'GET',
      reference: 'latest',
    },
  };
}

async function measure(kind: StoreState['store'], total: number, redisURL?: string): Promise<LimiterCost> {
  const store = redisURL ? { url: redisURL } : {};
  const rule = { name: 'bench', match: MATCH, rate: { per: '1h', count: 1e9, burst: 1e6 } };
  const config = buildConfig({ limits: { rules: [rule], store } }, {}, undefined);
  const limiter = await createLimiter({
    rules: config.limits.rules,
    store: config.limits.store,
    kind,
    keys: new Map(),
    matches: new Map([['bench', compileLimitMatch('bench', MATCH)]]),
    logger: pino({ level: 'silent' }),
  });
  if (kind === 'redis') while (limiter.state().state !== 'ready') await new Promise((r) => setTimeout(r, 20));
  const lat: number[] = [];
  let next = 0;
  const one = async () => {
    while (next < total) {
      const i = next++;
      const t = performance.now();
      await limiter.check(subject(i));
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, one)); // warm-up
  next = 0;
  lat.length = 0;
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: CONCURRENCY }, one));
  const used = process.cpuUsage(cpu);
  await limiter.close();
  lat.sort((a, b) => a - b);
  return { store: kind, cpuMs: (used.user + used.system) / 1000 / total, p50Ms: lat[Math.floor(lat.length / 2)]! };
}

/** The cluster store needs a primary: this file forked as one, with one worker measuring. */
async function clusterCost(total: number): Promise<LimiterCost> {
  const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, SELF, String(total)], {
    timeout: 300_000,
  });
  return JSON.parse(stdout) as LimiterCost;
}

async function clusterMain(total: number): Promise<void> {
  if (cluster.isPrimary) {
    startClusterCounters();
    const cpu = process.cpuUsage();
    const worker = cluster.fork();
    // rate-limiter-flexible's own messages share the channel: the result is the one naming a store.
    const cost = await new Promise<LimiterCost>((resolve) =>
      worker.on('message', (m: Partial<LimiterCost>) => m?.store && resolve(m as LimiterCost)),
    );
    const used = process.cpuUsage(cpu);
    const primaryMs = (used.user + used.system) / 1000 / (2 * total); // warm-up + measured, both served
    worker.kill();
    process.stdout.write(JSON.stringify({ ...cost, cpuMs: cost.cpuMs + primaryMs }));
    return;
  }
  process.send!(await measure('cluster', total));
}

export async function benchLimits(total: number, log: (m: string) => void): Promise<LimiterCost[]> {
  const redis = await startRedis();
  try {
    const out = [await measure('memory', total), await clusterCost(total), await measure('redis', total, redis.url)];
    for (const c of out)
      log(`limiter ${c.store}: ${c.cpuMs.toFixed(4)} ms CPU per check, p50 ${c.p50Ms.toFixed(3)} ms`);
    return out;
  } finally {
    await redis.stop();
  }
}

if (process.argv[1] === SELF) void clusterMain(Number(process.argv[2] ?? 10_000));
