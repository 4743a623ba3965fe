import { fmt } from '../lib/stats.js';
import { auditOverhead } from '../sections/audit.js';
import type { Figures, Results } from './results.js';

interface TargetRow {
  what: string;
  target: string;
  value: string;
  /** Undefined when the run could not measure it. */
  met: boolean | undefined;
}

function row(what: string, target: string, value: number, met: boolean, digits = 2, unit = ''): TargetRow {
  return { what, target, value: `${fmt(value, digits)}${unit}`, met: Number.isFinite(value) ? met : undefined };
}

const WORKERS_ROW = '`workers: 2` ÷ `workers: 1` HEAD rate, instant upstream, 128 clients';

/** The targets, each judged against figures of this run (ratios only within the run). Pure. */
export function evaluateTargets(r: Results, f: Figures): TargetRow[] {
  const pipePull = f.pullCpu.proxy / f.pullCpu.pipe;
  const pipePush = f.pushCpu.proxy / f.pushCpu.pipe;
  const pullVsTuned = f.pullMibps.proxy / f.pullMibps.tuned;
  const pullVsPipe = f.pullMibps.proxy / f.pullMibps.pipe;
  const headVsPipe = f.headCpu16.proxy / f.headCpu16.pipe;
  const tokenVsFloor = f.tokenCpu / f.tokenFloorCpu;
  return [
    row('Pull CPU', '≤ 1.0 CPU s/GiB', f.pullCpu.proxy, f.pullCpu.proxy <= 1.0, 2, ' s/GiB'),
    row('Pull CPU ÷ bare node:http pipe', '≤ 1.2', pipePull, pipePull <= 1.2),
    row('Pull MiB/s ÷ bare node:http pipe', '≥ 0.9', pullVsPipe, pullVsPipe >= 0.9),
    row('Manifest HEAD CPU per request ÷ bare node:http pipe (16 clients)', '≤ 1.5', headVsPipe, headVsPipe <= 1.5),
    row(
      '/token CPU ÷ floor (bare node: HTTP + ES256 verify + ES256 sign), distinct identities',
      '≤ 1.2',
      tokenVsFloor,
      tokenVsFloor <= 1.2,
    ),
    row('Push CPU', '≤ 1.0 CPU s/GiB', f.pushCpu.proxy, f.pushCpu.proxy <= 1.0, 2, ' s/GiB'),
    row('Push CPU ÷ bare node:http pipe', '≤ 1.2', pipePush, pipePush <= 1.2),
    row(
      'Manifest HEAD CPU per proxied request (16 clients)',
      '≤ 0.08 ms',
      f.headCpu16.proxy,
      f.headCpu16.proxy <= 0.08,
      3,
      ' ms',
    ),
    row('Manifest HEAD p50 overhead over direct (16 clients)', '≤ 1 ms', f.overhead16, f.overhead16 <= 1, 2, ' ms'),
    row(
      '/token CPU per issuance, distinct identity tokens',
      '≤ 0.25 ms (≥ 4,000/s on one core)',
      f.tokenCpu,
      f.tokenCpu <= 0.25,
      3,
      ` ms (≈ ${fmt(1000 / f.tokenCpu, 0)}/s per core)`,
    ),
    row('Pull MiB/s ÷ tuned nginx', '≥ 0.8', pullVsTuned, pullVsTuned >= 0.8),
    r.workers.note
      ? { what: WORKERS_ROW, target: '≥ 1.6', value: r.workers.note, met: undefined }
      : row(WORKERS_ROW, '≥ 1.6', f.workersRatio, f.workersRatio >= 1.6),
    row(
      'Request-time rule reading no upstream field: added CPU per pull (manifest HEAD, 16 clients)',
      '≤ 0.05 ms',
      r.requestRules.extraCpuMs,
      r.requestRules.extraCpuMs <= 0.05,
      3,
      ' ms',
    ),
    row(
      'Signature verdict cached: added p50 per manifest HEAD by tag (16 clients)',
      '≤ 1 ms',
      r.signatures.extraP50Ms,
      r.signatures.extraP50Ms <= 1,
      3,
      ' ms',
    ),
    row(
      'Signature verdict cached: added CPU per manifest HEAD by tag (16 clients)',
      '≤ 0.1 ms',
      r.signatures.extraCpuMs,
      r.signatures.extraCpuMs <= 0.1,
      3,
      ' ms',
    ),
    ...(r.audit
      ? [
          row(
            'Audit events on (stdout sink) vs off: added CPU, worse of manifest HEAD per request and pull per GiB',
            '≤ 5 %',
            auditOverhead(r.audit) * 100,
            auditOverhead(r.audit) <= 0.05,
            1,
            ' %',
          ),
        ]
      : []),
    row(
      `Peak RSS per worker, ${r.blobs.size / 2 ** 20} MiB each way`,
      '≤ 150 MB',
      f.rssPeak / 1e6,
      f.rssPeak / 1e6 <= 150,
      0,
      ' MB',
    ),
  ];
}

export function verdict(met: boolean | undefined): string {
  return met === undefined ? 'not measured' : met ? 'met' : '**missed**';
}
