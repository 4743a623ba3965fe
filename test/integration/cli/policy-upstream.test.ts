import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';

/** Issue 12: `policy test` evaluates rules on request.upstream, from --upstream or from the config's prefixes. */
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rap-policy-upstream-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'rules:\n  - {name: hub-pulls, actions: [pull], when: \'request.upstream == "hub"\'}\n',
  );
  writeFileSync(
    join(dir, 'config.yaml'),
    [
      'publicURL: https://proxy.example.com',
      `policies: ${join(dir, 'policy.yaml')}`,
      'issuers: [{name: ci, issuer: "https://ci.test", audiences: [proxy.example.com], jwksURI: "https://ci.test/jwks"}]',
      'upstreams:',
      '  - {name: hub, prefix: hub/, url: "https://registry-1.docker.io"}',
      '  - {name: local, url: "http://127.0.0.1:5000"}',
      '',
    ].join('\n'),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const policyTest = (...args: string[]) => runCli(['policy', 'test', '--claims', '{}', ...args]);

describe('policy test --upstream', () => {
  it('sets request.upstream for every repository scope', async () => {
    const ok = await policyTest(
      '--scope',
      'repository:library/nginx:pull',
      '--policy',
      join(dir, 'policy.yaml'),
      '--upstream',
      'hub',
    );
    expect(ok.code, ok.stderr).toBe(0);
    const no = await policyTest(
      '--scope',
      'repository:library/nginx:pull',
      '--policy',
      join(dir, 'policy.yaml'),
      '--upstream',
      'local',
    );
    expect(no.code).toBe(1);
    expect(no.stderr).toContain('no rule matched');
  });

  it("without it, request.upstream follows the config's prefixes", async () => {
    const hub = await policyTest('--scope', 'repository:hub/library/nginx:pull', '--config', join(dir, 'config.yaml'));
    expect(hub.code, hub.stderr).toBe(0);
    expect((await policyTest('--scope', 'repository:team/app:pull', '--config', join(dir, 'config.yaml'))).code).toBe(
      1,
    );
  });

  it("decides Docker Hub's short name under its canonical name, as /token does", async () => {
    const short = await policyTest('--scope', 'repository:hub/nginx:pull', '--config', join(dir, 'config.yaml'));
    expect(short.code, short.stderr).toBe(0);
    expect(short.stderr).toContain('granted repository:hub/library/nginx:pull');
  });
});
