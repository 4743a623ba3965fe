import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import {
  checkLoginToken,
  defaultAuthFile,
  defaultDockerConfig,
  dockerConfigSecret,
  dockerRefreshLoginIn,
  formatSpan,
  loginToFile,
} from '../../clients/login.js';
import { DEFAULT_TOKEN_FILES, DEFAULT_USERNAME } from '../../clients/token-source.js';
import { CliExit } from '../exit.js';

interface LoginFlags {
  tokenFile?: string;
  dockerConfig?: string | boolean;
  authFile?: string | boolean;
  k8sSecret?: string;
  namespace: string;
  username: string;
  output: string;
}

/** Where the token comes from: the flag, else RAP_TOKEN_FILE, else the projected-token default when it exists. Pure. */
export function tokenSource(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  exists: (f: string) => boolean = existsSync,
): string | undefined {
  return flag ?? (env.RAP_TOKEN_FILE || undefined) ?? DEFAULT_TOKEN_FILES.find(exists);
}

async function readToken(source: string): Promise<string> {
  if (source === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').trim();
  }
  try {
    return readFileSync(source, 'utf8').trim();
  } catch (err) {
    throw new CliExit(1, `login: cannot read ${source}: ${(err as Error).message}`);
  }
}

/** The identity token, read and checked (an empty, expired or malformed one writes nothing); its warnings go to stderr. */
async function checkedToken(tokenFile: string | undefined) {
  const source = tokenSource(tokenFile, process.env);
  if (!source)
    throw new CliExit(
      2,
      'login: no identity token: give --token-file <file> (or --token-file - to read stdin), or set RAP_TOKEN_FILE',
    );
  const from = source === '-' ? 'stdin' : source;
  const token = await readToken(source);
  if (!token) throw new CliExit(1, `login: ${from} is empty`);
  const check = checkLoginToken(token, Math.floor(Date.now() / 1000));
  if (!check.ok) throw new CliExit(1, `login: nothing written: ${check.problem} (token from ${from})`);
  for (const w of check.warnings) process.stderr.write(`login: warning: ${w}\n`);
  return { token, check };
}

export function register(program: Command): void {
  program
    .command('login <registry>')
    .description(
      'write credentials for <registry> (the identity token from --token-file, `--token-file -` for stdin, else $RAP_TOKEN_FILE, else /var/run/secrets/tokens/registry-token) into Docker config.json, a containers auth.json, or a kubernetes.io/dockerconfigjson Secret manifest; files are merged and written atomically with 0600. The token must be an unexpired JWT; what was written, where, and until when is said on stderr',
    )
    .option(
      '--token-file <file>',
      'identity token file, or - to read it from stdin (default $RAP_TOKEN_FILE, else /var/run/secrets/tokens/registry-token)',
    )
    .option(
      '--docker-config [file]',
      'Docker config.json (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)',
    )
    .option(
      '--auth-file [file]',
      'containers auth.json for podman/skopeo (default $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json)',
    )
    .option('--k8s-secret <name>', 'print a kubernetes.io/dockerconfigjson Secret manifest with this name')
    .option('--namespace <ns>', 'namespace of the Secret', 'default')
    .option('--username <name>', 'username stored beside the token (never empty)', DEFAULT_USERNAME)
    .option('-o, --output <format>', 'Secret manifest format: yaml | json', 'yaml')
    .action(async (registry: string, opts: LoginFlags) => {
      if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(registry))
        throw new CliExit(2, `login: "${registry}" is not a registry host[:port]`);
      if (!opts.username) throw new CliExit(2, 'login: --username must not be empty');
      const { token, check } = await checkedToken(opts.tokenFile);
      const targets = [opts.dockerConfig, opts.authFile, opts.k8sSecret].filter((x) => x !== undefined);
      if (targets.length === 0) opts.dockerConfig = true;
      const who = check.subject ? `${check.subject}${check.issuer ? ` (${check.issuer})` : ''}` : 'the identity token';
      const until = `the token expires ${check.expiresAt.toISOString()}, in ${formatSpan(check.expiresAt.getTime() / 1000 - Date.now() / 1000)}: log in again after that`;
      if (opts.k8sSecret) {
        const manifest = dockerConfigSecret(opts.k8sSecret, opts.namespace, registry, opts.username, token);
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(manifest, null, 2)}\n` : stringify(manifest));
        process.stderr.write(
          `login: printed Secret ${opts.namespace}/${opts.k8sSecret} (kubernetes.io/dockerconfigjson) for ${registry} on stdout: ${who}; ${until}\n`,
        );
      }
      try {
        if (opts.dockerConfig !== undefined) {
          const file = typeof opts.dockerConfig === 'string' ? opts.dockerConfig : defaultDockerConfig();
          loginToFile(file, registry, opts.username, token);
          process.stderr.write(`login: wrote ${registry} (username ${opts.username}, ${who}) to ${file}; ${until}\n`);
        }
        if (opts.authFile !== undefined) {
          const file = typeof opts.authFile === 'string' ? opts.authFile : defaultAuthFile();
          loginToFile(file, registry, opts.username, token);
          process.stderr.write(`login: wrote ${registry} (username ${opts.username}, ${who}) to ${file}; ${until}\n`);
          // podman/skopeo refused `login` while Docker's refresh-token login was all they found
          const docker = defaultDockerConfig();
          if (opts.dockerConfig === undefined && dockerRefreshLoginIn(docker, registry))
            process.stderr.write(
              `login: ${docker} also holds Docker's login for ${registry} (docker login's refresh token): podman and skopeo read ${file} first, so they use this login and \`podman login ${registry}\` no longer stops at "auth file contains an Identity token"\n`,
            );
        }
      } catch (err) {
        throw new CliExit(1, `login: ${(err as Error).message}`);
      }
    });
}
