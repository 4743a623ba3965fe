import { readIdentityToken, TokenSourceError, DEFAULT_USERNAME } from './token-source.js';

/**
 * `docker-credential-registry-auth-proxy get|store|erase|list`: the Docker credential-helper
 * protocol. `get` reads the identity token afresh on every call, so rotated projected tokens just
 * work. It answers only for the hosts in RAP_REGISTRIES (comma-separated): Docker asks a helper
 * configured as `credsStore` about every registry it talks to (docker.io included), and the
 * identity token must only ever reach our proxy. Unset means it answers for none.
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

/** The exact stdout docker (docker-credential-helpers' client) reads as "no credentials here": it then goes on anonymously. */
export const NOT_FOUND = 'credentials not found in native keychain';

export type HelperAnswer = { answer: true } | { answer: false; why: string };

/** Whether `get` may hand the identity token to `server`: only to a host RAP_REGISTRIES names. Pure. */
export function mayAnswer(server: string, env: NodeJS.ProcessEnv): HelperAnswer {
  const registries = configuredRegistries(env);
  if (registries.length === 0) {
    return { answer: false, why: `RAP_REGISTRIES is not set: not sending the identity token to ${normalizeServer(server)} (set RAP_REGISTRIES to the registry-auth-proxy host(s), e.g. RAP_REGISTRIES=registry.example.com)` };
  }
  if (!registries.includes(normalizeServer(server))) return { answer: false, why: '' };
  return { answer: true };
}

function configuredRegistries(env: NodeJS.ProcessEnv): string[] {
  return (env.RAP_REGISTRIES ?? '').split(',').map((r) => r.trim()).filter(Boolean).map(normalizeServer);
}

export async function runHelper(args: string[], io: HelperIO): Promise<number> {
  const registries = configuredRegistries(io.env);
  const username = io.env.RAP_USERNAME || DEFAULT_USERNAME;
  switch (args[0]) {
    case 'get': {
      const server = (await io.stdin()).trim();
      if (!server) {
        io.stderr('no server URL on stdin\n');
        return 1;
      }
      const verdict = mayAnswer(server, io.env);
      if (!verdict.answer) {
        // Not ours: "not found" lets docker continue without credentials; the reason goes to stderr
        // (docker shows the helper's stderr), but only when misconfigured, not for every other registry.
        if (verdict.why) io.stderr(`docker-credential-registry-auth-proxy: ${verdict.why}\n`);
        io.stdout(`${NOT_FOUND}\n`);
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
