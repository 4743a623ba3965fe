import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import type { IssuerConfig } from '../../config/types.js';
import { createIdentityVerifier } from '../../identity/verifier.js';
import { IdentityError } from '../../identity/types.js';
import { createLogger } from '../../log.js';
import { devPaths, devStateDir } from '../../dev/defaults.js';
import { existsSync } from 'node:fs';
import { CliExit } from '../exit.js';

interface VerifyFlags {
  config?: string;
  issuer?: string;
  caFile?: string;
  audience?: string[];
  bearerTokenFile?: string;
  jwksFile?: string;
  preset?: string;
  issuerName?: string;
  dev?: boolean;
  stateDir?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

async function readToken(arg: string): Promise<string> {
  if (arg !== '-') return arg.trim();
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** The issuers to verify against: `--dev`'s, a config file's, or one given by flags. Throws the usage error when none is given. */
/** The issuers to verify against, and the config file they came from (named in its errors). */
function issuersOf(opts: VerifyFlags): { issuers: readonly IssuerConfig[]; configFile?: string } {
  if (opts.stateDir !== undefined && !opts.dev) throw new CliExit(2, 'verify: --state-dir applies to --dev only');
  if (opts.dev) {
    // serve --dev wrote its issuer (name, iss, audience, JWKS file) as a config file there.
    const file = devPaths(devStateDir(opts.stateDir)).issuerConfig;
    if (!existsSync(file))
      throw new CliExit(
        2,
        `verify --dev: ${file} does not exist: start \`registry-auth-proxy --dev\` (with the same --state-dir) first`,
      );
    return { issuers: loadConfig({ config: file }, {}).issuers, configFile: file };
  }
  if (opts.config || (!opts.issuer && process.env.RAP_CONFIG)) {
    const { issuers, file } = loadConfig({ config: opts.config });
    return { issuers, configFile: file };
  }
  if (opts.issuer) {
    if (!opts.audience?.length)
      throw new CliExit(2, 'verify: --audience is required with --issuer (tokens must be bound to an audience)');
    const issuers = loadConfig({ issuer: [opts.issuer], audience: opts.audience }, {}).issuers.map((i) => ({
      ...i,
      name: opts.issuerName ?? 'default',
      caFile: opts.caFile,
      bearerTokenFile: opts.bearerTokenFile,
      jwksFile: opts.jwksFile,
      preset: opts.preset as IssuerConfig['preset'],
    }));
    return { issuers };
  }
  throw new CliExit(2, 'verify: give --config <file> or --issuer <url> --audience <aud>');
}

export function register(program: Command): void {
  program
    .command('verify <jwt>')
    .description(
      'verify one identity token (use - to read it from stdin); print its claims and the verdict as JSON; exit 0 valid, 1 invalid',
    )
    .option('--config <file>', 'use the issuers of this config file')
    .option('--issuer <url>', 'trust this OIDC issuer (discovery + JWKS)')
    .option('--ca-file <file>', "CA for the issuer's HTTPS")
    .option('--audience <aud>', 'audience the token must carry; repeatable', collect)
    .option('--bearer-token-file <file>', 'bearer token sent to discovery/JWKS')
    .option('--jwks-file <file>', 'static JWKS or PEM public keys instead of discovery')
    .option('--preset <preset>', 'kubernetes | github-actions | gitlab | google (maps identity fields)')
    .option('--issuer-name <name>', 'require the token to come from this configured issuer')
    .option('--dev', 'trust the issuer of `registry-auth-proxy --dev` (its JWKS in the dev state directory)')
    .option(
      '--state-dir <dir>',
      'with --dev: the dev state directory (env RAP_DEV_STATE_DIR; default as for serve --dev)',
    )
    .action(async (jwt: string, opts: VerifyFlags) => {
      const { issuers, configFile } = issuersOf(opts);
      if (issuers.length === 0) throw new CliExit(2, 'verify: no issuer configured');
      const token = await readToken(jwt);
      const verifier = createIdentityVerifier(issuers, { logger: createLogger('silent'), configFile });
      try {
        const identity = await verifier.verify(token, { issuerName: opts.issuerName });
        const { claims, ...rest } = identity;
        process.stdout.write(
          `${JSON.stringify({ valid: true, issuerName: identity.issuerName, identity: rest, claims }, null, 2)}\n`,
        );
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        process.stdout.write(
          `${JSON.stringify({ valid: false, reason: err.reason, message: err.message, issuerName: err.issuerName, detail: err.detail }, null, 2)}\n`,
        );
        throw new CliExit(1, `invalid: ${err.message}${err.detail ? ` (${err.detail})` : ''}`);
      } finally {
        await verifier.close();
      }
    });
}
