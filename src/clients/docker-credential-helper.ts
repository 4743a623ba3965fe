import { readIdentityToken, TokenSourceError, DEFAULT_USERNAME } from './token-source.js';

/**
 * `docker-credential-registry-auth-proxy get|store|erase|list`: the Docker credential-helper
 * protocol. `get` reads the identity token afresh on every call, so rotated projected tokens just
 * work. RAP_REGISTRIES (comma-separated hosts) limits which registries it answers for.
 */
export interface HelperIO {
  stdin: () => Promise<string>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export function normalizeServer(url: string): string {
  const s = url.trim();
  try {
    return new URL(s.includes('://') ? s : `https://${s}`).host;
  } catch {
    return s;
  }
}

export async function runHelper(args: string[], io: HelperIO): Promise<number> {
  const registries = (io.env.RAP_REGISTRIES ?? '').split(',').map((r) => r.trim()).filter(Boolean).map(normalizeServer);
  const username = io.env.RAP_USERNAME || DEFAULT_USERNAME;
  switch (args[0]) {
    case 'get': {
      const server = (await io.stdin()).trim();
      if (!server) {
        io.stderr('no server URL on stdin\n');
        return 1;
      }
      if (registries.length > 0 && !registries.includes(normalizeServer(server))) {
        // the exact message docker treats as "no credentials here"
        io.stdout('credentials not found in native keychain\n');
        return 1;
      }
      try {
        const { token } = readIdentityToken(io.env);
        io.stdout(`${JSON.stringify({ ServerURL: server, Username: username, Secret: token })}\n`);
        return 0;
      } catch (err) {
        if (err instanceof TokenSourceError) {
          io.stderr(`${err.message}\n`);
          return 1;
        }
        throw err;
      }
    }
    case 'store':
    case 'erase':
      await io.stdin();
      io.stderr(`${args[0]} is not supported: credentials come from the workload identity token file (RAP_TOKEN_FILE), nothing is stored\n`);
      return 1;
    case 'list': {
      const out: Record<string, string> = {};
      for (const r of registries) out[r] = username;
      io.stdout(`${JSON.stringify(out)}\n`);
      return 0;
    }
    default:
      io.stderr('usage: docker-credential-registry-auth-proxy get|store|erase|list\n');
      return 2;
  }
}

export async function dockerCredentialHelperMain(args: string[]): Promise<number> {
  return runHelper(args, {
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
  });
}
