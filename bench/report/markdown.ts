import { LABEL, MODES, type Mode } from '../lib/modes.js';
import { fmt } from '../lib/stats.js';
import { auditOverhead, type AuditResults } from '../sections/audit.js';
import { everyRun } from '../sections/blobs.js';
import { CLIENTS, type Measured } from '../sections/head.js';
import { WORKERS_CLIENTS } from '../sections/workers.js';
import { ANALYSIS } from './analysis.js';
import type { Figures, Results } from './results.js';
import { evaluateTargets, verdict } from './targets.js';

const MB = (bytes: number) => fmt(bytes / 1e6, 0);

/** The headline (docs/operations.md, between the bench:headline markers, and atop BENCHMARKS.md): the CPU-cost figures. */
export function headline(r: Results, f: Figures): string[] {
  const rows = evaluateTargets(r, f);
  const met = rows.filter((t) => t.met).length;
  const measured = rows.filter((t) => t.met !== undefined).length;
  const workers = r.workers.note
    ? `\`workers: 2\`: ${r.workers.note}; \`workers: 1\` serves ${fmt(f.w1, 0)} HEAD/s against an instant upstream (${WORKERS_CLIENTS} clients).`
    : `\`workers: 2\` serves ${fmt(f.workersRatio)} × the HEAD rate of \`workers: 1\` against an instant upstream (${fmt(f.w2, 0)} vs ${fmt(f.w1, 0)}/s, ${WORKERS_CLIENTS} clients).`;
  return [
    `Pull: ${fmt(f.pullCpu.proxy)} CPU s/GiB through the proxy (bare node:http pipe ${fmt(f.pullCpu.pipe)}, tuned nginx ${fmt(f.pullCpu.tuned)}); ` +
      `${fmt(f.pullMibps.proxy, 0)} MiB/s (pipe ${fmt(f.pullMibps.pipe, 0)}), ${fmt(f.pullMibps.proxy / f.pullMibps.tuned)} × tuned nginx.`,
    `Push: ${fmt(f.pushCpu.proxy)} CPU s/GiB (pipe ${fmt(f.pushCpu.pipe)}, tuned nginx ${fmt(f.pushCpu.tuned)}); ${fmt(f.pushMibps.proxy, 0)} MiB/s.`,
    `Manifest HEAD: ${fmt(f.headCpu16.proxy, 3)} ms CPU per proxied request (nginx ${fmt(f.headCpu16.nginx, 3)}, pipe ${fmt(f.headCpu16.pipe, 3)}); ` +
      `p50 ${fmt(f.overhead16)} ms over direct at 16 clients.`,
    `/token: ${fmt(f.tokenCpu, 3)} ms CPU per issuance with distinct identity tokens (floor: bare Node HTTP + verify + sign ${fmt(f.tokenFloorCpu, 3)}; ≈ ${fmt(1000 / f.tokenCpu, 0)}/s per core; ${fmt(f.tokenRate, 0)}/s measured).`,
    workers,
    `Peak RSS ${MB(f.rssPeak)} MB while streaming ${r.blobs.size / 2 ** 20} MiB each way.`,
    `Targets met: ${met} of ${measured} measured. Measured ${r.date.slice(0, 10)} on ${r.machine.split(',')[0]}; details in BENCHMARKS.md.`,
  ];
}

function blobTable(r: Results, f: Figures): string {
  const modes = MODES.filter((m) => r.blobs.pull[m].length);
  const line = (m: Mode) =>
    `| ${LABEL[m]} | ${fmt(f.pushMibps[m], 0)} | ${fmt(f.pushCpu[m])} | ${fmt(f.pullMibps[m], 0)} | ${fmt(f.pullCpu[m])} | ${MB(r.blobs.peakRss[m])} |`;
  const ratio = (m: Mode) =>
    `| proxy ÷ ${LABEL[m]} | ${fmt(f.pushMibps.proxy / f.pushMibps[m])} | ${fmt(f.pushCpu.proxy / f.pushCpu[m])} | ${fmt(f.pullMibps.proxy / f.pullMibps[m])} | ${fmt(f.pullCpu.proxy / f.pullCpu[m])} | |`;
  return `| | push MiB/s | push CPU s/GiB | pull MiB/s | pull CPU s/GiB | peak RSS MB |
| --- | ---: | ---: | ---: | ---: | ---: |
${modes.map(line).join('\n')}
${modes
  .filter((m) => m !== 'proxy')
  .map(ratio)
  .join('\n')}`;
}

function headTables(r: Results): string {
  const modes = MODES.filter((m) => r.head[16][m]);
  const cell = (m: Measured | undefined) =>
    m
      ? `${fmt(m.lat.p50)} / ${fmt(m.lat.p99)} (${fmt(m.lat.rps, 0)}/s${m.lat.errors ? `, ${m.lat.errors} errors` : ''})`
      : '';
  const cpu = (m: Measured | undefined) => (m ? `${fmt(m.cpuMs, 3)} (client ${fmt(m.clientCpuMs, 3)})` : '');
  const head = (extra = '') =>
    `| clients | ${modes.map((m) => LABEL[m]).join(' | ')} |${extra ? ` ${extra} |` : ''}\n| ---: | ${modes.map(() => '---').join(' | ')} |${extra ? ' ---: |' : ''}`;
  const overhead = (c: (typeof CLIENTS)[number]) =>
    fmt((r.head[c].proxy?.lat.p50 ?? NaN) - (r.head[c].direct?.lat.p50 ?? NaN));
  return `Latency, ms p50 / p99 (requests/s):

${head('proxy p50 − direct p50')}
${CLIENTS.map((c) => `| ${c} | ${modes.map((m) => cell(r.head[c][m])).join(' | ')} | ${overhead(c)} ms |`).join('\n')}

CPU of the serving process tree, ms per request (and the load generator's own):

${head()}
${CLIENTS.map((c) => `| ${c} | ${modes.map((m) => cpu(r.head[c][m])).join(' | ')} |`).join('\n')}`;
}

function workersTable(r: Results, f: Figures): string {
  const runs = (ms: Measured[] | undefined) => (ms ? ms.map((m) => fmt(m.lat.rps, 0)).join(', ') : r.workers.note);
  const client = (ms: Measured[] | undefined) =>
    ms ? fmt(ms.map((m) => m.clientCpuMs).reduce((a, b) => a + b, 0) / ms.length, 3) : '';
  return `| | requests/s (median) | every run | serving CPU ms/request | load generator CPU ms/request |
| --- | ---: | --- | ---: | ---: |
| instant upstream, direct (ceiling of this client) | ${fmt(f.upstreamRate, 0)} | ${runs(r.workers.upstream)} | n/a | ${client(r.workers.upstream)} |
| proxy \`workers: 1\` | ${fmt(f.w1, 0)} | ${runs(r.workers.w1)} | ${fmt(f.w1Cpu, 3)} | ${client(r.workers.w1)} |
| proxy \`workers: 2\` | ${fmt(f.w2, 0)} | ${runs(r.workers.w2)} | ${fmt(f.w2Cpu, 3)} | ${client(r.workers.w2)} |

\`workers: 2\` ÷ \`workers: 1\`: ${r.workers.note ?? fmt(f.workersRatio)} (target ≥ 1.6).`;
}

/** Where, when and how: the setup every figure depends on. */
function setup(r: Results): string {
  return `Produced by \`npm run bench\` (bench/run.ts)${r.quick ? ' in QUICK mode (small sizes: a smoke run, not a measurement)' : ''}; numbers from one
run, ratios computed within it.${r.profiling ? ' **The proxy ran with --cpu-prof: its CPU figures include the profiler.**' : ''}

- **Date:** ${r.date} (the run took ${r.seconds} s)
- **Machine:** ${r.machine}; load average ${fmt(r.load[0])} before the run, ${fmt(r.load[1])} after
- **Upstream:** Debian \`docker-registry\` (${r.registryVersion}), storage on tmpfs, no access log
- **Baselines**, each a process of its own in front of the same registry: ${r.nginxVersion} with one worker, **unbuffered**
  (\`proxy_request_buffering off\`, \`proxy_buffering off\`: streams both ways as the proxy does) and **tuned**
  (\`proxy_buffering on\`, 256 KiB \`proxy_buffers\`/\`proxy_buffer_size\`, \`proxy_max_temp_file_size 0\`, request
  bodies streamed in 256 KiB buffers); both with \`client_max_body_size 0\`, \`Host\` passed through, upstream
  keep-alive. And a bare **node:http pipe** (bench/lib/pipe.ts: request → upstream request, \`pipe\` both ways).
- **Proxy:** the built \`bin/registry-auth-proxy.js\` as a child process, started as a user starts it (no flags or
  environment added by the bench; its serving process ran as \`${r.proxyStartedAs}\`), production configuration (ES256 signing
  key file, static-key issuer, CEL policy, log level info — an access line per registry request, an audit line
  per token — written to a file), /token rate limits off (one client address measures capacity)
- **CPU:** user + system time of the serving process and its descendants (nginx's worker, the proxy's workers)
  from \`/proc/<pid>/stat\`, read around each measurement; clock ticks of 10 ms, so each measurement spans
  seconds of CPU or thousands of requests. For \`direct\` it is the registry's own CPU.
- **Clients:** on the same 2 cores as everything else. Blobs: undici in the benchmark process (a deterministic
  AES-CTR stream; pulls counted, not hashed). HEAD and /token: node:http with keep-alive in a separate load
  generator process (bench/tools/load-gen.ts), whose own CPU per request is reported next to the server's.`;
}

export function benchmarksMd(r: Results, f: Figures, lines: string[]): string {
  const t = r.token;
  const tok = (name: string, m: Measured) =>
    `| ${name} | ${fmt(m.lat.rps, 0)} | ${fmt(m.cpuMs, 3)} | ${fmt(m.clientCpuMs, 3)} | ${fmt(m.lat.p50)} | ${fmt(m.lat.p99)} | ${m.lat.errors} |`;
  return `# Benchmarks

${setup(r)}

## Headline

${lines.map((l) => `- ${l}`).join('\n')}

## Targets

| | target | this run | |
| --- | --- | ---: | --- |
${evaluateTargets(r, f)
  .map((t) => `| ${t.what} | ${t.target} | ${t.value} | ${verdict(t.met)} |`)
  .join('\n')}

## Blobs (${r.blobs.size / 2 ** 20} MiB, medians of ${r.blobs.reps} interleaved repetitions)

${blobTable(r, f)}

Proxy RSS ${MB(r.rssStart)} MB after start-up. Earlier targets, for comparison: proxy ÷ direct ≥ 0.90 (push
${fmt(f.pushMibps.proxy / f.pushMibps.direct)}, pull ${fmt(f.pullMibps.proxy / f.pullMibps.direct)}), ÷ unbuffered nginx ≥ 0.95 (push ${fmt(f.pushMibps.proxy / f.pushMibps.nginx)}, pull ${fmt(f.pullMibps.proxy / f.pullMibps.nginx)}).
Every run (wall s / CPU s): push ${everyRun(r.blobs, 'push')}. Pull ${everyRun(r.blobs, 'pull')}.

## Manifest HEAD

${headTables(r)}

The proxy requests carry a Bearer token (verified from cache on every request); the others carry none.

## /token issuance (16 clients, GET with Basic, one repository scope)

| identity tokens | issuances/s | proxy CPU ms each | client CPU ms each | p50 ms | p99 ms | errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${tok('all distinct (ES256 signature verified each time, issuer keys cached)', t.distinct)}
${tok('one repeated (verification cached until its exp)', t.repeated)}
${tok('floor: the distinct ones through a bare node:http process (ES256 verify + ES256 sign with node:crypto, nothing else)', t.floor)}

Each issuance signs a fresh ES256 registry token and writes one audit line.

## A request-time rule on a pull (manifest HEAD, 16 clients, medians)

| policy | proxy CPU ms per request | p50 ms | p99 ms | requests/s |
| --- | ---: | ---: | ---: | ---: |
| token-time rules only | ${fmt(r.requestRules.without.cpuMs, 3)} | ${fmt(r.requestRules.without.lat.p50)} | ${fmt(r.requestRules.without.lat.p99)} | ${fmt(r.requestRules.without.lat.rps, 0)} |
| plus a request-time rule reading no upstream field | ${fmt(r.requestRules.with.cpuMs, 3)} | ${fmt(r.requestRules.with.lat.p50)} | ${fmt(r.requestRules.with.lat.p99)} | ${fmt(r.requestRules.with.lat.rps, 0)} |

The rule (\`phase: request\`, \`actions: [pull]\`) is evaluated on every pull; its tokens carry the identity. A rule
reading \`upstream.*\` costs one HEAD upstream per tag, cached for \`limits.tagLookupTTL\` (5 s).

## Signature enforcement on a pull (manifest HEAD by tag, 16 clients, medians)

| proxy | proxy CPU ms per request | p50 ms | p99 ms | requests/s |
| --- | ---: | ---: | ---: | ---: |
| no \`signatures:\` entry | ${fmt(r.signatures.without.cpuMs, 3)} | ${fmt(r.signatures.without.lat.p50)} | ${fmt(r.signatures.without.lat.p99)} | ${fmt(r.signatures.without.lat.rps, 0)} |
| cosign-signed image, verdict cached | ${fmt(r.signatures.with.cpuMs, 3)} | ${fmt(r.signatures.with.lat.p50)} | ${fmt(r.signatures.with.lat.p99)} | ${fmt(r.signatures.with.lat.rps, 0)} |

With the verdict cached a pull by tag costs one tag lookup upstream per \`limits.tagLookupTTL\` and is forwarded by
digest. Uncached (a freshly signed image, by digest, median of ${r.signatures.uncached.n}): ${fmt(r.signatures.uncached.ms)} ms and
${fmt(r.signatures.uncached.cpuMs, 2)} ms proxy CPU — the manifest, the referrers API (404 on Distribution 2.8), the
fallback and \`.sig\` tags, the signature payload, one ECDSA P-256 verification.

${r.audit ? auditSection(r.audit) : ''}
## Workers: manifest HEAD at ${WORKERS_CLIENTS} clients against an instant upstream

The upstream is nginx answering every manifest request from its configuration (\`return 200\` with
Docker-Content-Digest, Content-Type, Content-Length), so the proxy is the bottleneck — together with the
load generator, one Node process on the same 2 cores, which the two workers must share with it.

${workersTable(r, f)}
${limitsSection(r)}
${ANALYSIS}`;
}

/** The limiter's own cost per check, by store (bench/sections/limits.ts). */
function limitsSection(r: Results): string {
  if (!r.limits?.length) return '';
  const rows = r.limits.map((c) => `| ${c.store} | ${fmt(c.cpuMs, 4)} | ${fmt(c.p50Ms, 3)} |`).join('\n');
  return `
## Limits: cost of one check per store (16 callers, one rule of rate + quota)

| store | CPU ms per check | p50 ms |
| --- | ---: | ---: |
${rows}

Targets: memory ≤ 0.05 ms CPU; Redis on loopback ≤ 1 ms p50 (the counters of one request in one pipelined round trip).
`;
}

function auditSection(a: AuditResults): string {
  return `## Audit events (one per manifest and blob request, stdout sink) on vs off, medians

| audit | manifest HEAD CPU ms per request (16 clients) | pull CPU s per GiB (${a.size / 2 ** 20} MiB blob) |
| --- | ---: | ---: |
| on (the default) | ${fmt(a.headCpuMs.on, 3)} | ${fmt(a.pullCpuPerGiB.on)} |
| off (\`audit: {sinks: []}\`) | ${fmt(a.headCpuMs.off, 3)} | ${fmt(a.pullCpuPerGiB.off)} |

Added CPU, the worse of the two, over ${a.pairs} pairs of fresh processes: HEAD, the median of on ÷ off over
interleaved runs (${fmt(a.ratio.head, 3)}); pull, the cheapest pull on ÷ the cheapest off (${fmt(a.ratio.pull, 3)};
pulls of one process spread 1–3.7 CPU s/GiB with scheduling, which only adds): ${fmt(auditOverhead(a) * 100, 1)} %.
`;
}
