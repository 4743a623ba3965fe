import { perMode, type Mode } from '../lib/modes.js';
import { cpuPerGiB, mibps, type BlobResults } from '../sections/blobs.js';
import type { HeadResults } from '../sections/head.js';
import type { AuditResults } from '../sections/audit.js';
import type { RequestRulesResults } from '../sections/request-rules.js';
import type { SignaturesResults } from '../sections/signatures.js';
import type { TokenResults } from '../sections/token.js';
import type { LimiterCost } from '../sections/limits.js';
import { cpuMs, rate, type WorkersResults } from '../sections/workers.js';

/** Everything one run measured, plus where and when. */
export interface Results {
  date: string;
  machine: string;
  /** One-minute load average before and after the run: how busy the machine was besides the benchmark. */
  load: [number, number];
  /** How long the run took, start-up to the last measurement. */
  seconds: number;
  registryVersion: string;
  nginxVersion: string;
  quick: boolean;
  profiling: boolean;
  /** The proxy's serving process as /proc shows it: node flags and malloc settings (none added by the bench). */
  proxyStartedAs: string;
  /** Proxy RSS after start-up (bytes). */
  rssStart: number;
  blobs: BlobResults;
  head: HeadResults;
  token: TokenResults;
  workers: WorkersResults;
  /** A request-time rule on a pull (issue 21). */
  requestRules: RequestRulesResults;
  /** The limiter's cost per check by store (absent in reports written before it). */
  limits?: LimiterCost[];
  /** Signature enforcement on a pull (issue 22). */
  signatures: SignaturesResults;
  /** Audit events on (stdout) vs off (issue 24; absent in reports written before it). */
  audit?: AuditResults;
}

/** The figures the targets and the headline are stated in, derived once. */
export function figures(r: Results) {
  const b = r.blobs;
  const h16 = r.head[16];
  const w1 = rate(r.workers.w1);
  const w2 = rate(r.workers.w2);
  return {
    pushCpu: perMode((m: Mode) => cpuPerGiB(b, b.push[m])),
    pullCpu: perMode((m: Mode) => cpuPerGiB(b, b.pull[m])),
    pushMibps: perMode((m: Mode) => mibps(b, b.push[m])),
    pullMibps: perMode((m: Mode) => mibps(b, b.pull[m])),
    headCpu16: perMode((m: Mode) => h16[m]?.cpuMs ?? NaN),
    overhead16: (h16.proxy?.lat.p50 ?? NaN) - (h16.direct?.lat.p50 ?? NaN),
    tokenCpu: r.token.distinct.cpuMs,
    tokenFloorCpu: r.token.floor.cpuMs,
    tokenRate: r.token.distinct.lat.rps,
    w1,
    w2,
    w1Cpu: cpuMs(r.workers.w1),
    w2Cpu: cpuMs(r.workers.w2),
    upstreamRate: rate(r.workers.upstream),
    workersRatio: w2 / w1,
    rssPeak: b.peakRss.proxy,
  };
}

export type Figures = ReturnType<typeof figures>;
