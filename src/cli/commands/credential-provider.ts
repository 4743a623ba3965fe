import type { Command } from 'commander';
import { parseRequest, ProviderError, respond } from '../../clients/credential-provider.js';
import { TokenSourceError } from '../../clients/token-source.js';
import { CliExit } from '../exit.js';

export function register(program: Command): void {
  program
    .command('credential-provider')
    .description(
      'kubelet image credential provider: reads a CredentialProviderRequest on stdin, writes the response on stdout. With a serviceAccountToken in the request (KEP-4412) it returns that token; otherwise it reads RAP_TOKEN_FILE',
    )
    .option(
      '--match <registry>',
      'auth key to answer for (default: the registry host of the image); env RAP_REGISTRY_MATCH',
    )
    .option('--token-file <file>', 'node mode: identity token file (env RAP_TOKEN_FILE)')
    .option('--username <name>', 'username to return (never empty; env RAP_USERNAME)')
    .action(async (opts: { match?: string; tokenFile?: string; username?: string }) => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const env = { ...process.env };
      if (opts.match) env.RAP_REGISTRY_MATCH = opts.match;
      if (opts.tokenFile) env.RAP_TOKEN_FILE = opts.tokenFile;
      if (opts.username) env.RAP_USERNAME = opts.username;
      try {
        const response = respond(parseRequest(Buffer.concat(chunks).toString('utf8')), { env });
        process.stdout.write(`${JSON.stringify(response)}\n`);
      } catch (err) {
        if (err instanceof ProviderError || err instanceof TokenSourceError)
          throw new CliExit(1, `credential-provider: ${err.message}`);
        throw err;
      }
    });
}
