import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../config/load.js';
import { PRESETS, type Preset } from '../../config/types.js';
import { identityFromClaims } from '../../identity/presets.js';
import { formatScope, parseScopes, ScopeError, type Scope } from '../../oci/scope.js';
import { lintAbsentFacts, lintTenantPinning, type LintIssuer } from '../../policy/lint.js';
import { loadPolicies, PolicyLoadError } from '../../policy/load.js';
import { grant } from '../../policy/grant.js';
import { explainDecision } from '../../policy/explain.js';
import { defaultPolicyPath } from '../../config/load.js';
import { canonicalRepository, upstreamNameOf } from '../../config/upstreams.js';
import { CliExit } from '../exit.js';
import { explainRequest, requestFacts, requestOptions, type RequestFlags } from './policy-request.js';
import { policyReplay } from './policy-replay.js';

interface PolicyTestFlags extends RequestFlags {
  claims: string;
  scope: string[];
  issuerName?: string;
  issuer?: string;
  preset?: string;
  policy?: string;
  config?: string;
  service?: string;
  clientIp?: string;
  upstream?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function readClaims(arg: string): Record<string, unknown> {
  let text = arg;
  try {
    text = readFileSync(arg, 'utf8').trim();
  } catch {
    // not a file: the argument itself is a JWT or JSON
  }
  if (text.startsWith('{')) {
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new CliExit(2, `--claims: not valid JSON: ${(err as Error).message}`);
    }
  }
  try {
    return decodeJwt(text) as Record<string, unknown>;
  } catch {
    throw new CliExit(2, '--claims must be a JSON file, a JWT, or a file holding a JWT');
  }
}

const SCOPE_ACTIONS = ['pull', 'push', 'delete', '*'];

/**
 * What a scope typed at `policy test` gets wrong that /token would quietly deny (a client may ask
 * for anything there, and gets what is granted): a type or an action no rule can grant, or none. Pure.
 */
function scopeTypo(scope: Scope): string | undefined {
  const typed = `"${formatScope(scope)}"`;
  if (scope.type !== 'repository' && scope.type !== 'registry')
    return `${typed}: the type is repository or registry (registry:catalog:*)`;
  if (scope.actions.length === 0)
    return `${typed} names no action: add one of ${SCOPE_ACTIONS.join(', ')}, e.g. repository:team/app:pull`;
  const unknown = scope.actions.filter((a) => !SCOPE_ACTIONS.includes(a));
  return unknown.length ? `${typed}: unknown action ${unknown.join(',')} (use ${SCOPE_ACTIONS.join(', ')})` : undefined;
}

/** `--scope` values parsed, under their canonical names as /token decides them; a malformed one is a usage error (exit 2). */
function scopesFlag(values: string[], canonical?: (repository: string) => string): Scope[] {
  let scopes: Scope[];
  try {
    scopes = parseScopes(values, canonical);
  } catch (err) {
    if (err instanceof ScopeError) throw new CliExit(2, `--scope: ${err.message}`);
    throw err;
  }
  const typo = scopes.map(scopeTypo).find((p) => p !== undefined);
  if (typo) throw new CliExit(2, `--scope: ${typo}`);
  return scopes;
}

/** The policies at `path` (request.upstream from `upstreamOf`); a policy that does not load is exit 2. */
function policiesFlag(path: string, upstreamOf: (repository: string) => string): ReturnType<typeof loadPolicies> {
  try {
    return loadPolicies(path, upstreamOf);
  } catch (err) {
    if (err instanceof PolicyLoadError) throw new CliExit(2, `policy error: ${err.message}`);
    throw err;
  }
}

/** `policy test`: the grant as JSON on stdout, a verdict per scope on stderr; exit 1 unless all is granted. */
function policyTest(opts: PolicyTestFlags): void {
  const claims = readClaims(opts.claims);
  const config = opts.config ? loadConfig({ config: opts.config }) : undefined;
  const iss = opts.issuer ?? (typeof claims.iss === 'string' ? claims.iss : '');
  const configured = config?.issuers.find((i) => i.issuer === iss);
  if (opts.preset && !PRESETS.includes(opts.preset as Preset))
    throw new CliExit(2, `--preset must be one of ${PRESETS.join(', ')}`);
  const identity = identityFromClaims(claims, {
    issuerName: opts.issuerName ?? configured?.name ?? 'default',
    issuer: iss,
    preset: (opts.preset as Preset | undefined) ?? configured?.preset,
  });
  const upstreams = config?.upstreams ?? [];
  const scopes = scopesFlag(opts.scope, (repository) => canonicalRepository(upstreams, repository));
  // request.upstream: --upstream for every scope, else by the config's prefixes ('' with one upstream)
  const upstreamOf = opts.upstream !== undefined ? () => opts.upstream! : upstreamNameOf(upstreams);
  const engine = policiesFlag(opts.policy ?? config?.policies ?? defaultPolicyPath(), upstreamOf);
  const ctx = {
    service: opts.service ?? config?.service ?? 'registry.example.com',
    clientIP: opts.clientIp ?? '127.0.0.1',
  };
  const method = opts.method;
  const decisions = grant(engine, identity, scopes, ctx).decisions.map((d) => ({
    scope: formatScope(d.scope),
    ...explainDecision(d),
    granted: d.granted,
    matched: d.matched,
    // with --method: the same scope as a /v2/ request needing its actions, through the request-time rules
    ...(method
      ? {
          request: explainRequest(
            engine,
            identity,
            requestFacts({ ...opts, method }, d.scope, { ...ctx, upstream: upstreamOf(d.scope.name) }),
          ),
        }
      : {}),
  }));
  // The same tenant-pinning warnings serve logs, on stderr so stdout stays JSON: against the
  // configured issuers, else against the issuer of the identity under test.
  const issuers: readonly LintIssuer[] = config?.issuers ?? [
    { name: identity.issuerName, issuer: identity.issuer, preset: identity.preset },
  ];
  for (const w of lintTenantPinning(engine.rules, issuers)) process.stderr.write(`warning: ${w.message}\n`);
  for (const w of lintAbsentFacts(engine.rules)) process.stderr.write(`warning: ${w.message}\n`);
  const { claims: _c, ...shown } = identity;
  process.stdout.write(`${JSON.stringify({ identity: shown, decisions }, null, 2)}\n`);
  // stdout stays JSON for scripts; the verdict in words is for the person reading the terminal
  for (const d of decisions) {
    process.stderr.write(`${d.result.padEnd(7)} ${d.scope}${d.result === 'granted' ? '' : `: ${d.reason}`}\n`);
    if (d.request)
      process.stderr.write(`${d.request.refused ? 'refused' : 'passes '} ${d.request.request}: ${d.request.reason}\n`);
  }
  if (decisions.some((d) => d.result !== 'granted' || d.request?.refused)) throw new CliExit(1);
}

export function register(program: Command): void {
  const policy = program.command('policy').description('work with CEL policies');
  const test = policy
    .command('test')
    .description(
      'print the grant and the rules that matched, as JSON on stdout, and one line per scope on stderr (granted, or why not: "no rule matched", "no rule grants push", "denied by rule …"). With --method, each scope is also decided as a /v2/ request through the request-time rules (`phase: request | both`): "passes" or "refused" and why. Exit 0 when every requested action of every scope is granted (and no request-time rule refuses), 1 when anything is not (denied, partly granted, refused), 2 on usage or policy errors. A JWT given as --claims is DECODED, NOT VERIFIED: this is a debugging tool (use `verify` to check a token)',
    )
    .requiredOption('--claims <file.json|jwt>', 'claims as a JSON file, or a JWT (decoded, not verified)')
    .requiredOption('--scope <scope>', 'requested scope, e.g. repository:team/app:pull,push; repeatable', collect)
    .option(
      '--issuer-name <name>',
      'identity.issuerName (default: the configured issuer whose iss matches, else "default")',
    )
    .option('--issuer <url>', "identity.issuer (default: the claims' iss)")
    .option('--preset <preset>', 'kubernetes | github-actions | gitlab | google')
    .option(
      '--policy <path>',
      "policy file or directory (default: the config's, else ./policies when it exists, else the shipped default policy)",
    )
    .option('--config <file>', 'take policies and issuer names/presets from this config')
    .option('--service <name>', 'request.service', 'registry.example.com')
    .option('--client-ip <ip>', 'request.clientIP', '127.0.0.1')
    .option(
      '--upstream <name>',
      "request.upstream for repository scopes (default: by the config's upstreams[].prefix, else '')",
    );
  requestOptions(test).action(policyTest);
  policy
    .command('replay')
    .description(
      "decide every /token decision of a decision log (`audit.decisionLog`) again under other policies and print each scope whose grant changes: the log's line, when, who, the scope, what was granted then → now, why now (the rule that decides, in `policy test`'s words) and which rules matched then. A summary goes to stderr. Exit 0 when nothing changes, 1 when anything does (a CI gate for policy changes), 2 when the log cannot be read, a line is not a decision record (its number is named) or a policy does not load. Rules that read a claim the log did not record (not in `audit.claims`) see it absent",
    )
    .requiredOption('--log <file>', 'the decision log (JSON lines), read a line at a time')
    .requiredOption('--policies <path>', 'the policy file or directory to replay')
    .action(policyReplay);
}
