/**
 * `npm run bench`: the proxy against the same Debian registry reached directly, through nginx
 * (unbuffered and tuned) and through a bare node:http pipe, all in one run on loopback, with the CPU
 * each serving process spends per GiB and per request read from /proc; then `workers: 1` against
 * `workers: 2` in front of an upstream that answers instantly, and the limiter's cost per check for
 * each limits store (memory, cluster, Redis). Writes BENCHMARKS.md and the
 * headline into docs/operations.md, "Benchmarks" (between the `bench:headline` markers).
 *
 * Environment: BENCH_BLOB_MB (default 1024), BENCH_REPS (default 5), BENCH_QUICK=1 (small sizes, a
 * smoke run of a few minutes that writes nothing), BENCH_NO_WRITE=1 (print only),
 * BENCH_CPU_PROF=<dir> (profile the proxy; its CPU figures then include the profiler).
 */
import { cpus, loadavg, totalmem, release } from 'node:os';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { seedManifest } from '../test/support/seed.js';
import { currentRss, processTree } from './lib/cpu.js';
import { startLoadProcess } from './lib/load.js';
import type { Mode, Target } from './lib/modes.js';
import { startNginx } from './lib/nginx.js';
import { startNodePipe } from './lib/pipe.js';
import { startBenchProxy } from './lib/proxy.js';
import { startBenchRegistry } from './lib/registry.js';
import { benchmarksMd, headline } from './report/markdown.js';
import { figures, type Results } from './report/results.js';
import { benchBlobs } from './sections/blobs.js';
import { benchHead } from './sections/head.js';
import { benchRequestRules } from './sections/request-rules.js';
import { benchAudit } from './sections/audit.js';
import { benchSignatures } from './sections/signatures.js';
import { benchToken } from './sections/token.js';
import { benchWorkers } from './sections/workers.js';
import { benchLimits } from './sections/limits.js';

const QUICK = process.env.BENCH_QUICK === '1';
const SIZE = Number(process.env.BENCH_BLOB_MB ?? (QUICK ? 64 : 1024)) * 2 ** 20;
const REPS = Number(process.env.BENCH_REPS ?? (QUICK ? 1 : 5));
/** Requests per HEAD measurement at 16 and 128 clients: ≥ 2000 so that 10 ms clock ticks do not matter. */
/** Pull size of the audit on/off comparison: CPU per GiB is what is compared, not the ceiling. */
const AUDIT_SIZE = Math.min(SIZE, 256 * 2 ** 20);
/** A 5 % target sits inside the spread between two identical fresh proxies here (sections/audit.ts): several pairs. */
const AUDIT_PAIRS = QUICK ? 1 : 3;
const HEAD_TOTAL = QUICK ? 1000 : 8000;
const TOKEN_TOTAL = QUICK ? 1000 : 8000;
const WORKERS_TOTAL = QUICK ? 2000 : 16_000;
const WORKERS_REPS = QUICK ? 1 : 3;
const LIMITS_TOTAL = QUICK ? 2000 : 20_000;

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function version(cmd: string, args: string[]): string {
  // nginx -v prints to stderr: take whichever stream has the text
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || 'unknown';
}

function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}, Node ${process.version}`;
}

/** Where the headline goes besides BENCHMARKS.md: the operations guide's "Benchmarks" section. */
const HEADLINE_DOC = 'docs/operations.md';

function writeReport(md: string, lines: string[]): void {
  writeFileSync('BENCHMARKS.md', md);
  const doc = readFileSync(HEADLINE_DOC, 'utf8');
  const block = `<!-- bench:headline -->\n${lines.map((l) => `- ${l}`).join('\n')}\n<!-- /bench:headline -->`;
  if (doc.includes('<!-- bench:headline -->')) {
    writeFileSync(
      HEADLINE_DOC,
      doc.replace(/<!-- bench:headline -->[\s\S]*?<!-- \/bench:headline -->/, () => block),
    );
  } else {
    log(`${HEADLINE_DOC} has no bench:headline markers; headline not written there`);
  }
  log(`wrote BENCHMARKS.md and the headline in ${HEADLINE_DOC}`);
}

async function main(): Promise<void> {
  const started = Date.now();
  const date = new Date().toISOString();
  const loadBefore = loadavg()[0]!;
  log(`blob ${SIZE / 2 ** 20} MiB x ${REPS} reps; starting registry, nginx (unbuffered, tuned), node pipe and proxy`);
  const registry = await startBenchRegistry();
  const nginx = await startNginx(registry.url, 'unbuffered');
  const tuned = await startNginx(registry.url, 'tuned');
  const pipe = await startNodePipe(registry.url);
  const prof = process.env.BENCH_CPU_PROF;
  const proxy = await startBenchProxy(registry.url, { nodeArgs: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [] });
  const load = startLoadProcess();
  const none: Target['auth'] = () => Promise.resolve({});
  const target = (mode: Mode, s: { url: string; pid: number }, auth = none): Target => ({
    mode,
    url: s.url,
    pid: s.pid,
    auth,
  });
  const targets: Target[] = [
    target('direct', registry),
    target('nginx', nginx),
    target('tuned', tuned),
    target('pipe', pipe),
    target('proxy', proxy, async (scopes) => ({ authorization: `Bearer ${await proxy.registryToken(scopes)}` })),
  ];
  try {
    // the serving process: the one started, or the child it re-executed itself as (Node < 22.15)
    const rssStart = Math.max(...processTree(proxy.pid).map(currentRss));
    log(`proxy serving process started as: ${proxy.startedAs}`);
    const section = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      const value = await run();
      log(`${name} took ${Math.round((Date.now() - t0) / 1000)} s`);
      return value;
    };
    const blobs = await section('blobs', () => benchBlobs(targets, SIZE, REPS, log));
    await seedManifest(registry.url, 'bench/app');
    const head = await section('HEAD', () => benchHead(targets, load, HEAD_TOTAL, log));
    const token = await section('/token', () => benchToken(proxy, load, TOKEN_TOTAL, log));
    const requestRules = await section('request-time rule', () =>
      benchRequestRules(proxy, registry.url, load, HEAD_TOTAL, REPS, log),
    );
    const signatures = await section('signatures', () =>
      benchSignatures(proxy, registry.url, load, HEAD_TOTAL, REPS, log),
    );
    const audit = await section('audit events', () =>
      benchAudit(registry.url, load, { total: HEAD_TOTAL / 2, size: AUDIT_SIZE, reps: REPS, pairs: AUDIT_PAIRS }, log),
    );
    const workers = await section('workers', () => benchWorkers(load, WORKERS_TOTAL, WORKERS_REPS, log));
    const limits = await section('limits', () => benchLimits(LIMITS_TOTAL, log));
    const results: Results = {
      date,
      machine: machine(),
      load: [loadBefore, loadavg()[0]!],
      seconds: Math.round((Date.now() - started) / 1000),
      registryVersion: version('docker-registry', ['--version']),
      nginxVersion: version('nginx', ['-v']).replace(/^nginx version: /, ''),
      quick: QUICK,
      proxyStartedAs: proxy.startedAs,
      profiling: Boolean(prof),
      rssStart,
      blobs,
      head,
      token,
      workers,
      requestRules,
      limits,
      signatures,
      audit,
    };
    const f = figures(results);
    const lines = headline(results, f);
    const md = benchmarksMd(results, f, lines);
    process.stdout.write(`${md}\n`);
    if (process.env.BENCH_NO_WRITE !== '1' && !QUICK) writeReport(md, lines);
    log(`done in ${results.seconds} s`);
  } finally {
    load.stop();
    await proxy.stop();
    await pipe.stop();
    await tuned.stop();
    await nginx.stop();
    await registry.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench] failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
