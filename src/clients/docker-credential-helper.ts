import { readFileSync } from 'node:fs';
import { readIdentityToken, TokenSourceError, DEFAULT_TOKEN_FILES, DEFAULT_USERNAME } from './token-source.js';

/**
 * `docker-credential-registry-auth-proxy get|store|erase|list|version`: the Docker credential-helper
 * protocol. `get` reads the identity token afresh on every call, so rotated projected tokens just
 * work. It answers only for the hosts in RAP_REGISTRIES (comma-separated): Docker asks a helper
 * configured as `credsStore` about every registry it talks to (docker.io included), and the
 * identity token must only ever reach our proxy. Unset means it answers for none. There is no
 * config file for the helper: the environment is all it reads. `store`/`erase` keep nothing.
 */
interface HelperIO {
  stdin: () => Promise<string>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

function normalizeServer(url: string): string {
  const s = url.trim();
  try {
    return new URL(s.includes('://') ? s : `https://${s}`).host;
  } catch {
    return s;
  }
}

/** The exact stdout docker (docker-credential-helpers' client) reads as "no credentials here": it then goes on anonymously. */
const NOT_FOUND = 'credentials not found in native keychain';

type HelperAnswer = { answer: true } | { answer: false; why: string };

/** Whether `get` may hand the identity token to `server`: only to a host RAP_REGISTRIES names. Pure. */
function mayAnswer(server: string, env: NodeJS.ProcessEnv): HelperAnswer {
  const registries = configuredRegistries(env);
  if (registries.length === 0) {
    return {
      answer: false,
      why: `RAP_REGISTRIES is not set: not sending the identity token to ${normalizeServer(server)} (set RAP_REGISTRIES to the registry-auth-proxy host(s), e.g. RAP_REGISTRIES=registry.example.com)`,
    };
  }
  if (!registries.includes(normalizeServer(server))) return { answer: false, why: '' };
  return { answer: true };
}

function configuredRegistries(env: NodeJS.ProcessEnv): string[] {
  return (env.RAP_REGISTRIES ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean)
    .map(normalizeServer);
}

/** The protocol's "no server URL" message (docker-credential-helpers' credentials package): clients recognise it. */
const MISSING_SERVER_URL = 'no credentials server URL';

/** What `store`/`erase` tell the user on stderr (the client shows it): nothing is kept, `get` answers from the token file. Pure. */
function notStoredNote(action: 'store' | 'erase', server: string | undefined, env: NodeJS.ProcessEnv): string {
  const ours = server !== undefined && mayAnswer(server, env).answer;
  const what = action === 'store' ? 'nothing stored' : 'nothing to erase';
  if (ours)
    return `docker-credential-registry-auth-proxy: ${what}: ${normalizeServer(server)} gets the identity token from ${env.RAP_TOKEN_FILE || DEFAULT_TOKEN_FILES[0]} on every pull and push`;
  // credsStore sends every login here, docker.io's too: say that those credentials are dropped.
  const who = server ? normalizeServer(server) : 'this server';
  if (configuredRegistries(env).length === 0) {
    return `docker-credential-registry-auth-proxy: ${what}: this helper keeps no credentials, and with RAP_REGISTRIES unset it gives ${who} none (set RAP_REGISTRIES to your registry-auth-proxy host(s))`;
  }
  return `docker-credential-registry-auth-proxy: ${what}: this helper keeps no credentials and ${who} is not in RAP_REGISTRIES, so it gets none from it (use credHelpers for your registry-auth-proxy hosts rather than credsStore)`;
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

/** The ServerURL of a `store` request, without looking at (or keeping) its Secret. */
function storedServer(input: string): string | undefined {
  try {
    const doc = JSON.parse(input) as { ServerURL?: unknown };
    return typeof doc.ServerURL === 'string' && doc.ServerURL.trim() ? doc.ServerURL : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs one helper action and returns the exit code. The protocol (docker-credential-helpers'
 * `credentials.Serve`, read by its `client` package in Docker, podman, skopeo and buildah): the
 * answer on stdout, and on failure the message on stdout with exit 1 — clients show stdout, and
 * recognise "not found" and "no server URL" by it. Notes for people go to stderr, which clients pass through.
 */
export async function runHelper(args: string[], io: HelperIO): Promise<number> {
  const registries = configuredRegistries(io.env);
  const username = io.env.RAP_USERNAME || DEFAULT_USERNAME;
  switch (args[0]) {
    case 'get': {
      const server = (await io.stdin()).trim();
      if (!server) {
        io.stdout(`${MISSING_SERVER_URL}\n`);
        return 1;
      }
      const verdict = mayAnswer(server, io.env);
      if (!verdict.answer) {
        // Not ours: "not found" lets the client continue without credentials. The reason goes to
        // stderr, only when misconfigured, not for every other registry (stdout must stay exact).
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
          // stdout is the protocol's (podman and skopeo print it); Docker 28 drops a failed get and
          // pulls anonymously ("authentication required"): only stderr, which every client passes
          // through to the terminal, reaches its user.
          io.stdout(`${err.message}\n`);
          io.stderr(`docker-credential-registry-auth-proxy: ${err.message}\n`);
          return 1;
        }
        throw err;
      }
    }
    case 'store':
    case 'erase': {
      // Succeed without storing: `docker login`/`logout` and `podman login`/`logout` call these and
      // fail (podman 4.3.1's logout even crashes) when they do; `get` answers from the token file.
      const input = await io.stdin();
      io.stderr(
        `${notStoredNote(args[0], args[0] === 'store' ? storedServer(input) : input.trim() || undefined, io.env)}\n`,
      );
      return 0;
    }
    case 'list': {
      const out: Record<string, string> = {};
      for (const r of registries) out[r] = username;
      io.stdout(`${JSON.stringify(out)}\n`);
      return 0;
    }
    case 'version':
      io.stdout(`docker-credential-registry-auth-proxy (registry-auth-proxy) ${packageVersion()}\n`);
      return 0;
    default:
      io.stdout(`Usage: docker-credential-registry-auth-proxy <get|store|erase|list|version>\n`);
      return 1;
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
