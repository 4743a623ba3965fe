import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../config/load.js';
import { PRESETS, type Preset } from '../../config/types.js';
import { identityFromClaims } from '../../identity/presets.js';
import { formatScope, parseScopes, ScopeError } from '../../oci/scope.js';
import { lintTenantPinning, type LintIssuer } from '../../policy/lint.js';
import { loadPolicies, PolicyLoadError } from '../../policy/load.js';
import { CliExit } from '../exit.js';

interface PolicyTestFlags {
  claims: string;
  scope: string[];
  issuerName?: string;
  issuer?: string;
  preset?: string;
  policy?: string;
  config?: string;
  service?: string;
  clientIp?: string;
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

export function register(program: Command): void {
  const policy = program.command('policy').description('work with CEL policies');
  policy
    .command('test')
    .description('print the grant and the rules that matched, as JSON. A JWT given as --claims is DECODED, NOT VERIFIED: this is a debugging tool (use `verify` to check a token)')
    .requiredOption('--claims <file.json|jwt>', 'claims as a JSON file, or a JWT (decoded, not verified)')
    .requiredOption('--scope <scope>', 'requested scope, e.g. repository:team/app:pull,push; repeatable', collect)
    .option('--issuer-name <name>', 'identity.issuerName (default: the configured issuer whose iss matches, else "default")')
    .option('--issuer <url>', 'identity.issuer (default: the claims\' iss)')
    .option('--preset <preset>', 'kubernetes | github-actions | gitlab | google')
    .option('--policy <path>', 'policy file or directory (default: the config\'s, else ./policies)')
    .option('--config <file>', 'take policies and issuer names/presets from this config')
    .option('--service <name>', 'request.service', 'registry.example.com')
    .option('--client-ip <ip>', 'request.clientIP', '127.0.0.1')
    .action((opts: PolicyTestFlags) => {
      const claims = readClaims(opts.claims);
      const config = opts.config ? loadConfig({ config: opts.config }) : undefined;
      const iss = opts.issuer ?? (typeof claims.iss === 'string' ? claims.iss : '');
      const configured = config?.issuers.find((i) => i.issuer === iss);
      if (opts.preset && !PRESETS.includes(opts.preset as Preset)) throw new CliExit(2, `--preset must be one of ${PRESETS.join(', ')}`);
      const identity = identityFromClaims(claims, {
        issuerName: opts.issuerName ?? configured?.name ?? 'default',
        issuer: iss,
        preset: (opts.preset as Preset | undefined) ?? configured?.preset,
      });
      let scopes;
      try {
        scopes = parseScopes(opts.scope);
      } catch (err) {
        if (err instanceof ScopeError) throw new CliExit(2, `--scope: ${err.message}`);
        throw err;
      }
      let engine;
      try {
        engine = loadPolicies(opts.policy ?? config?.policies ?? './policies');
      } catch (err) {
        if (err instanceof PolicyLoadError) throw new CliExit(2, `policy error: ${err.message}`);
        throw err;
      }
      const ctx = { service: opts.service ?? config?.service ?? 'registry.example.com', clientIP: opts.clientIp ?? '127.0.0.1' };
      const decisions = scopes.map((s) => {
        const d = engine.decide(identity, s, ctx);
        return { scope: formatScope(s), granted: d.granted, matched: d.matched };
      });
      // The same tenant-pinning warnings serve logs, on stderr so stdout stays JSON: against the
      // configured issuers, else against the issuer of the identity under test.
      const issuers: LintIssuer[] = config?.issuers ?? [{ name: identity.issuerName, issuer: identity.issuer, preset: identity.preset }];
      for (const w of lintTenantPinning(engine.rules, issuers)) process.stderr.write(`warning: ${w.message}\n`);
      const { claims: _c, ...shown } = identity;
      process.stdout.write(`${JSON.stringify({ identity: shown, decisions }, null, 2)}\n`);
    });
}
