import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { defaultAuthFile, defaultDockerConfig, dockerConfigSecret, loginToFile } from '../../clients/login.js';
import { DEFAULT_USERNAME } from '../../clients/token-source.js';
import { CliExit } from '../exit.js';

interface LoginFlags {
  tokenFile: string;
  dockerConfig?: string | boolean;
  authFile?: string | boolean;
  k8sSecret?: string;
  namespace: string;
  username: string;
  output: string;
}

export function register(program: Command): void {
  program
    .command('login <registry>')
    .description('write credentials for <registry> (the identity token from --token-file) into Docker config.json, a containers auth.json, or a kubernetes.io/dockerconfigjson Secret manifest; files are merged and written atomically with 0600')
    .requiredOption('--token-file <file>', 'identity token file')
    .option('--docker-config [file]', 'Docker config.json (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)')
    .option('--auth-file [file]', 'containers auth.json for podman/skopeo (default $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json)')
    .option('--k8s-secret <name>', 'print a kubernetes.io/dockerconfigjson Secret manifest with this name')
    .option('--namespace <ns>', 'namespace of the Secret', 'default')
    .option('--username <name>', 'username stored beside the token (never empty)', DEFAULT_USERNAME)
    .option('-o, --output <format>', 'Secret manifest format: yaml | json', 'yaml')
    .action((registry: string, opts: LoginFlags) => {
      if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(registry)) throw new CliExit(2, `login: "${registry}" is not a registry host[:port]`);
      if (!opts.username) throw new CliExit(2, 'login: --username must not be empty');
      let token: string;
      try {
        token = readFileSync(opts.tokenFile, 'utf8').trim();
      } catch (err) {
        throw new CliExit(1, `login: cannot read ${opts.tokenFile}: ${(err as Error).message}`);
      }
      if (!token) throw new CliExit(1, `login: ${opts.tokenFile} is empty`);
      const targets = [opts.dockerConfig, opts.authFile, opts.k8sSecret].filter((x) => x !== undefined);
      if (targets.length === 0) opts.dockerConfig = true;
      if (opts.k8sSecret) {
        const manifest = dockerConfigSecret(opts.k8sSecret, opts.namespace, registry, opts.username, token);
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(manifest, null, 2)}\n` : stringify(manifest));
      }
      try {
        if (opts.dockerConfig !== undefined) {
          const file = typeof opts.dockerConfig === 'string' ? opts.dockerConfig : defaultDockerConfig();
          loginToFile(file, registry, opts.username, token);
          process.stderr.write(`login: wrote ${registry} to ${file}\n`);
        }
        if (opts.authFile !== undefined) {
          const file = typeof opts.authFile === 'string' ? opts.authFile : defaultAuthFile();
          loginToFile(file, registry, opts.username, token);
          process.stderr.write(`login: wrote ${registry} to ${file}\n`);
        }
      } catch (err) {
        throw new CliExit(1, `login: ${(err as Error).message}`);
      }
    });
}
