import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const run = promisify(execFile);
let server: Server;
let url: string;
const seen: { url: string; auth?: string }[] = [];

/** A local stand-in for the Actions OIDC endpoint, with its URL shape, headers and JSON. */
beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization });
    if (req.headers.authorization !== 'Bearer runtime-token') {
      res.writeHead(401).end();
      return;
    }
    const aud = new URL(req.url ?? '/', 'http://x').searchParams.get('audience');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ count: 1, value: `oidc-token-for-${aud}` }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

async function action(env: Record<string, string>): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, ['actions/docker-login/dist/index.js'], {
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

describe('GitHub Action docker-login', () => {
  it('declares a node20 action with required registry and audience', () => {
    const doc = parse(readFileSync('actions/docker-login/action.yml', 'utf8'));
    expect(doc.runs).toEqual({ using: 'node20', main: 'dist/index.js' });
    expect(doc.inputs.registry.required).toBe(true);
    expect(doc.inputs.audience.required).toBe(true);
  });

  it('requests the token with the audience, masks it, and logs Docker and podman in', async () => {
    const home = mkdtempSync(join(tmpdir(), 'rap-gha-'));
    const r = await action({
      HOME: home,
      ACTIONS_ID_TOKEN_REQUEST_URL: `${url}/_apis/distributedtask/hubs/build/plans/p/jobs/j/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runtime-token',
      INPUT_REGISTRY: 'registry.example.com',
      INPUT_AUDIENCE: 'registry.example.com',
      REGISTRY_AUTH_FILE: join(home, 'auth.json'),
    });
    expect(r.code).toBe(0);
    expect(seen.at(-1)!.url).toBe(
      '/_apis/distributedtask/hubs/build/plans/p/jobs/j/idtoken?api-version=2.0&audience=registry.example.com',
    );
    expect(r.stdout).toContain('::add-mask::oidc-token-for-registry.example.com');
    for (const file of [join(home, '.docker', 'config.json'), join(home, 'auth.json')]) {
      const doc = JSON.parse(readFileSync(file, 'utf8'));
      expect(Buffer.from(doc.auths['registry.example.com'].auth, 'base64').toString()).toBe(
        'github:oidc-token-for-registry.example.com',
      );
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
  });

  it('fails clearly without id-token permission or without an audience', async () => {
    const home = mkdtempSync(join(tmpdir(), 'rap-gha-'));
    const noPerm = await action({ HOME: home, INPUT_REGISTRY: 'r.io', INPUT_AUDIENCE: 'r.io' });
    expect(noPerm.code).toBe(1);
    expect(noPerm.stdout).toMatch(/::error::.*id-token: write/);
    const noAud = await action({
      HOME: home,
      INPUT_REGISTRY: 'r.io',
      ACTIONS_ID_TOKEN_REQUEST_URL: `${url}/x?a=1`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runtime-token',
    });
    expect(noAud.code).toBe(1);
    expect(noAud.stdout).toMatch(/audience/);
  });
});
