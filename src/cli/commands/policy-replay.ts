import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseDecisionLine, type DecisionRecord } from '../../policy/decision-log.js';
import type { Identity } from '../../identity/types.js';
import type { Preset } from '../../config/types.js';
import { formatScope } from '../../oci/scope.js';
import { policyDigest } from '../../policy/digest.js';
import { explainDecision } from '../../policy/explain.js';
import { loadPolicies, PolicyLoadError } from '../../policy/load.js';
import type { PolicyEngine } from '../../policy/types.js';
import { CliExit } from '../exit.js';

/**
 * `policy replay --log decisions.jsonl --policies new/`: every logged /token decision (audit.decisionLog)
 * decided again under other policies; each whose grant changes is printed. A CI gate for policy
 * pull requests: exit 1 when anything changes, 0 when nothing does, 2 on bad input.
 */

/** One scope of one logged decision whose grant differs under the replayed policies. */
interface ReplayChange {
  line: number;
  time: string;
  requestId?: string;
  who: string;
  scope: string;
  before: string[];
  after: string[];
  /** Why the replayed policies decide as they do, in `policy test`'s words (explainDecision). */
  reason: string;
  /** The rules that matched when it was logged. */
  rulesBefore: string[];
}

/** The identity a record describes, as the policy sees it (claims: the ones logged). Pure. */
function identityOf(record: DecisionRecord): Identity {
  const { identity } = record;
  return { ...identity, preset: identity.preset as Preset | undefined, claims: record.claims };
}

/**
 * Replays records against the policies `load` builds. request.upstream is the one logged with each
 * scope (the log knows which upstream a name went to; the replaying machine need not have the config).
 */
export function createReplayer(load: (upstreamOf: (repository: string) => string) => PolicyEngine) {
  const upstreams = new Map<string, string>();
  const engine = load((repository) => upstreams.get(repository) ?? '');
  return {
    engine,
    /** The changed scopes of one record (none: the same grant). */
    replay(record: DecisionRecord, line: number): ReplayChange[] {
      upstreams.clear();
      for (const d of record.decisions) if (d.upstream) upstreams.set(d.scope.name, d.upstream);
      const identity = identityOf(record);
      const changes: ReplayChange[] = [];
      for (const logged of record.decisions) {
        const now = engine.decide(identity, logged.scope, record.request);
        if (sameActions(now.granted, logged.granted)) continue;
        changes.push({
          line,
          time: record.time,
          ...(record.requestId ? { requestId: record.requestId } : {}),
          who: `${record.identity.issuerName}:${record.identity.subject}`,
          scope: formatScope(logged.scope),
          before: logged.granted,
          after: now.granted,
          reason: explainDecision(now).reason,
          rulesBefore: logged.rules,
        });
      }
      return changes;
    },
  };
}

const sameActions = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x) => b.includes(x));

const actions = (a: readonly string[]) => (a.length ? a.join(',') : 'nothing');

/** One change as the line `policy replay` prints. Pure. */
export function formatChange(c: ReplayChange): string {
  const before = c.rulesBefore.length ? c.rulesBefore.join(', ') : 'no rule';
  return `line ${c.line} (${c.time}${c.requestId ? ` ${c.requestId}` : ''}) ${c.who} ${c.scope}: ${actions(c.before)} → ${actions(c.after)}: ${c.reason} (was: ${before})`;
}

interface ReplayFlags {
  log: string;
  policies: string;
}

/** Reads the log a line at a time (any size, bounded memory), printing each change as it is found. */
export async function policyReplay(opts: ReplayFlags): Promise<void> {
  let replayer: ReturnType<typeof createReplayer>;
  try {
    replayer = createReplayer((upstreamOf) => loadPolicies(opts.policies, upstreamOf));
  } catch (err) {
    if (err instanceof PolicyLoadError) throw new CliExit(2, `policy error: ${err.message}`);
    throw err;
  }
  const digest = policyDigest(replayer.engine.rules);
  const stream = createReadStream(opts.log, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
  try {
    await opened;
  } catch (err) {
    throw new CliExit(2, `--log: cannot read ${opts.log}: ${(err as Error).message}`);
  }
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  let decisions = 0;
  let changed = 0;
  const loggedUnder = new Set<string>();
  try {
    for await (const text of lines) {
      n++;
      if (text.trim() === '') continue;
      const parsed = parseDecisionLine(text);
      if ('problem' in parsed) throw new CliExit(2, `${opts.log}:${n}: ${parsed.problem}`);
      decisions++;
      if (loggedUnder.size < 100) loggedUnder.add(parsed.record.policy);
      const changes = replayer.replay(parsed.record, n);
      if (changes.length) changed++;
      for (const c of changes) process.stdout.write(`${formatChange(c)}\n`);
    }
  } catch (err) {
    if (err instanceof CliExit) throw err;
    throw new CliExit(2, `--log: cannot read ${opts.log}: ${(err as Error).message}`);
  } finally {
    lines.close();
    stream.destroy();
  }
  const same = loggedUnder.size === 1 && loggedUnder.has(digest) ? ' (the policies they were logged under)' : '';
  process.stderr.write(
    `replayed ${decisions} decision${decisions === 1 ? '' : 's'} under policies ${digest}${same}: ${changed} changed\n`,
  );
  if (changed > 0) throw new CliExit(1);
}
