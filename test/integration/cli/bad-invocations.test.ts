import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBuiltBin } from '../../helpers/cli.js';

/**
 * Issue 25: every bad invocation and bad config file ends with exit 2 and one message that names
 * where the mistake is (the file, or the flag), the key, and the fix — run as users run it, through
 * the built bin/ (`npm run build` first; npm test does). A taken port is the one operational
 * failure here (exit 1: the same command works once the port is free), said with the same care.
 */

let dir: string;
let taken: Server;
let takenPort: number;
const at = (name: string) => join(dir, name);

/** Config files the rows use: a good one (so the row fails where it means to), then one mistake each. */
const FILES: Record<string, (d: string) => string> = {
  'jwks.json': () => '{"keys":[]}\n',
  'ok.yaml': (d) =>
    `listen: 127.0.0.1:0\nupstream: {url: http://127.0.0.1:9}\nissuers:\n  - {name: ci, issuer: https://ci.test, jwksFile: ${d}/jwks.json}\n`,
  'jwks-missing.yaml': (d) =>
    `listen: 127.0.0.1:0\nupstream: {url: http://127.0.0.1:9}\nissuers:\n  - {name: ci, issuer: https://ci.test, jwksFile: ${d}/missing.json}\n`,
  'log-level.yaml': () => 'logLevel: verbose\n',
  'listen.yaml': () => 'listen: nope\n',
  'unknown-key.yaml': () => 'upstreem: {url: http://registry.example}\n',
  'duration.yaml': () => 'tokens: {ttl: 5 minutes}\n',
  'not-yaml.yaml': () => 'a: [\n',
  'tls.yaml': (d) => `tls: {certFile: ${d}/missing-cert.pem, keyFile: ${d}/missing-key.pem}\n${FILES['ok.yaml']!(d)}`,
  'signing-key.yaml': (d) => `tokens: {signingKeyFile: ${d}/missing-key.pem}\n${FILES['ok.yaml']!(d)}`,
  'bad-policy.yaml': () => 'rules:\n  - name: x\n    when: [\n',
  'claims.json': () => '{"sub":"someone"}\n',
};

interface Row {
  /** What the user did. */
  name: string;
  args: (d: string) => string[];
  env?: NodeJS.ProcessEnv;
  code?: number;
  /** What stderr must say: the file or flag, the key, and the fix. */
  says: (d: string) => (string | RegExp)[];
  /** What it must not say (blaming the wrong source, an internal error). */
  never?: (d: string) => string[];
}

const ROWS: Row[] = [
  {
    name: '--log-level verbose',
    args: () => ['--log-level', 'verbose'],
    says: () => [
      '<flags>: --log-level: "verbose" is not a log level: use one of trace, debug, info, warn, error, fatal, silent',
    ],
    never: () => ['custom levels'],
  },
  {
    name: 'logLevel in the file',
    args: (d) => ['--config', `${d}/log-level.yaml`],
    says: (d) => [`${d}/log-level.yaml: logLevel: "verbose" is not a log level`],
  },
  {
    name: 'RAP_LOG_LEVEL',
    args: (d) => ['--config', `${d}/ok.yaml`],
    env: { RAP_LOG_LEVEL: 'loud' },
    says: () => ['<environment>: RAP_LOG_LEVEL: "loud" is not a log level'],
  },
  {
    name: 'a missing jwksFile (serve)',
    args: (d) => ['--config', `${d}/jwks-missing.yaml`],
    says: (d) => [
      `${d}/jwks-missing.yaml: issuers[0].jwksFile: ${d}/missing.json does not exist: fix the path`,
      'remove jwksFile',
    ],
    never: () => ['ENOENT'],
  },
  {
    name: 'a missing jwksFile (verify)',
    args: (d) => ['verify', 'x', '--config', `${d}/jwks-missing.yaml`],
    says: (d) => [`${d}/jwks-missing.yaml: issuers[0].jwksFile: ${d}/missing.json does not exist`],
  },
  {
    name: 'a bad listen in the file',
    args: (d) => ['--config', `${d}/listen.yaml`],
    says: (d) => [`${d}/listen.yaml: listen: "nope" is not host:port`],
  },
  {
    name: 'a bad --listen is the flag, not the file',
    args: (d) => ['--config', `${d}/ok.yaml`, '--listen', 'nope'],
    says: () => ['<flags>: --listen: "nope" is not host:port'],
    never: (d) => [`${d}/ok.yaml`],
  },
  {
    name: 'a --token-ttl out of range is the flag',
    args: (d) => ['--config', `${d}/ok.yaml`, '--token-ttl', '1s'],
    says: () => ['<flags>: --token-ttl: must be between 1m and 24h'],
    never: (d) => [`${d}/ok.yaml`],
  },
  {
    name: 'servee',
    args: () => ['servee'],
    says: () => ["unknown command 'servee'", 'Did you mean serve?'],
    never: () => ['too many arguments'],
  },
  {
    name: 'an unknown option',
    args: () => ['--listn', '127.0.0.1:1'],
    says: () => ["unknown option '--listn'", 'Did you mean --listen?'],
  },
  {
    name: 'an unknown key',
    args: (d) => ['--config', `${d}/unknown-key.yaml`],
    says: (d) => [`${d}/unknown-key.yaml: upstreem: unknown key (known: listen, publicURL, service, tls, upstream,`],
  },
  {
    name: 'a bad duration',
    args: (d) => ['--config', `${d}/duration.yaml`],
    says: (d) => [`${d}/duration.yaml: tokens.ttl: invalid duration "5 minutes" (use e.g. 30s, 5m, 1h)`],
  },
  {
    name: 'a file that is not YAML',
    args: (d) => ['--config', `${d}/not-yaml.yaml`],
    says: (d) => [`${d}/not-yaml.yaml: (file): not valid YAML`],
  },
  {
    name: 'a missing config file',
    args: (d) => ['--config', `${d}/absent.yaml`],
    says: (d) => [`${d}/absent.yaml: (file): cannot read`],
  },
  {
    name: 'a bad --upstream URL',
    args: () => ['--upstream', 'notaurl'],
    says: () => ['<flags>: --upstream: "notaurl" is not a URL'],
  },
  {
    name: 'an --upstream not http(s)',
    args: () => ['--upstream', 'ftp://registry.example'],
    says: () => ['<flags>: --upstream: "ftp://registry.example" must be http or https'],
  },
  {
    name: 'bad --workers',
    args: (d) => ['--config', `${d}/ok.yaml`, '--workers', 'lots'],
    says: () => ['<flags>: --workers: must be a whole number from 1 to 1024, or auto'],
  },
  {
    name: 'a policy path that does not exist',
    args: (d) => ['--config', `${d}/ok.yaml`, '--policy', `${d}/no-policies`],
    says: (d) => [`policy error: ${d}/no-policies: policy path does not exist (set --policy or \`policies:\`)`],
  },
  {
    name: 'a policy that is not YAML',
    args: (d) => ['--config', `${d}/ok.yaml`, '--policy', `${d}/bad-policy.yaml`],
    says: (d) => [`policy error: ${d}/bad-policy.yaml: not valid YAML`],
  },
  {
    name: 'a missing tls.certFile',
    args: (d) => ['--config', `${d}/tls.yaml`],
    says: (d) => [`${d}/tls.yaml: tls.certFile: ${d}/missing-cert.pem does not exist: fix the path`],
    never: () => ['ENOENT'],
  },
  {
    name: 'a missing signing key',
    args: (d) => ['--config', `${d}/signing-key.yaml`],
    says: (d) => [`${d}/signing-key.yaml: tokens.signingKeyFile: ${d}/missing-key.pem`],
  },
  {
    name: '--state-dir without --dev',
    args: (d) => ['--state-dir', d],
    says: () => ['--state-dir applies to --dev only'],
  },
  ...[
    'repository:team/app:pul',
    'repository:team/app:',
    'repo:team/app:pull',
    'repository:Team/app:pull',
    'team/app',
  ].map((scope): Row => ({
    name: `policy test --scope ${scope}`,
    args: (d) => ['policy', 'test', '--claims', `${d}/claims.json`, '--scope', scope],
    says: () => [
      /^--scope: .*(unknown action pul \(use pull, push, delete, \*\)|names no action: add one of|the type is repository or registry|is invalid|is not <type>:<name>:<actions>)/,
    ],
    never: () => ['denied'],
  })),
  {
    name: 'login without a token',
    args: () => ['login', 'registry.example'],
    env: { RAP_TOKEN_FILE: '' },
    says: () => ['give --token-file <file> (or --token-file - to read stdin), or set RAP_TOKEN_FILE'],
  },
  {
    name: 'login to a bad registry name',
    args: () => ['login', 'not a host'],
    says: () => ['login: "not a host" is not a registry host[:port]'],
  },
  {
    name: 'a taken port',
    args: (d) => ['--config', `${d}/ok.yaml`, '--listen', `127.0.0.1:${takenPort}`],
    code: 1,
    says: () => [
      `cannot listen on 127.0.0.1:${takenPort}: the address is in use`,
      'choose another address with --listen <host:port>',
    ],
  },
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-bad-'));
  for (const [name, text] of Object.entries(FILES)) writeFileSync(at(name), text(dir));
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  takenPort = (taken.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

// Each row is a process of its own: run them side by side.
describe.concurrent('bad invocations and bad config files', () => {
  it.each(ROWS.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const r = await runBuiltBin('registry-auth-proxy', row.args(dir), {
      env: { RAP_CONFIG: '', RAP_LOG_LEVEL: '', ...row.env },
      timeoutMs: 20_000,
    });
    expect(r.code, r.stderr).toBe(row.code ?? 2);
    for (const said of row.says(dir))
      expect(r.stderr).toMatch(typeof said === 'string' ? new RegExp(escape(said), 'm') : said);
    for (const wrong of row.never?.(dir) ?? []) expect(r.stderr).not.toContain(wrong);
  });

  it('--dev on a taken port says so before starting its registry', async () => {
    const stateDir = at('dev-state');
    const r = await runBuiltBin(
      'registry-auth-proxy',
      ['--dev', '--state-dir', stateDir, '--listen', `127.0.0.1:${takenPort}`],
      { env: { RAP_UPSTREAM: '' } },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${takenPort}: the address is in use`);
    // nothing of the dev session was set up: no registry storage, keys or token
    expect(existsSync(stateDir)).toBe(false);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
