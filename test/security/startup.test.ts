import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildConfig, listenExposureProblem } from '../../src/config/load.js';
import { runCli } from '../helpers/cli.js';
import { startProxyProcess } from '../helpers/proxy-process.js';
import { freePort } from '../fixtures/registry.js';

/**
 * Issue 9 item 9: on `listen: 0.0.0.0` without `publicURL` the proxy advertised
 * `realm="http://127.0.0.1:<port>/token"`, so remote clients sent their identity token to their own
 * loopback. `serve` now refuses to start (exit 2, naming the fix) unless publicURL is set or the
 * listener is loopback-only. Nothing here binds anything but 127.0.0.1: the refused cases exit
 * before listening.
 */
const POLICY = resolve('policies');

function expectRefused(r: { code: number; stdout: string; stderr: string }, listen: string, file = '<flags>') {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(
    `config error: ${file}: publicURL: is required when listening on ${listen} (not a loopback address)`,
  );
  expect(r.stderr).toContain('--public-url');
  expect(r.stderr).toContain('127.0.0.1');
  expect(r.stdout).toBe('');
}

describe('serve on a non-loopback listener without publicURL', () => {
  it('refuses the default listen address 0.0.0.0:8080 with exit 2 and the fix', async () => {
    expectRefused(
      await runCli(['--upstream', 'http://127.0.0.1:9', '--policy', POLICY], { timeoutMs: 20_000 }),
      '0.0.0.0:8080',
    );
  });

  it('refuses an explicit wildcard, IPv6 wildcard, or other non-loopback address', async () => {
    const port = await freePort();
    for (const [flag, shown] of [
      [`0.0.0.0:${port}`, `0.0.0.0:${port}`],
      [`[::]:${port}`, `[::]:${port}`],
      [`:${port}`, `0.0.0.0:${port}`],
      [`192.0.2.10:${port}`, `192.0.2.10:${port}`],
      [`registry.internal:${port}`, `registry.internal:${port}`],
    ]) {
      expectRefused(
        await runCli(['--listen', flag!, '--upstream', 'http://127.0.0.1:9', '--policy', POLICY], {
          timeoutMs: 20_000,
        }),
        shown!,
      );
    }
  });

  it('refuses a config file that listens on 0.0.0.0 without publicURL, naming the file and key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-startup-'));
    const port = await freePort();
    writeFileSync(
      join(dir, 'config.yaml'),
      `listen: 0.0.0.0:${port}\nupstream: {url: "http://127.0.0.1:9"}\npolicies: ${POLICY}\n`,
    );
    expectRefused(
      await runCli(['--config', join(dir, 'config.yaml')], { timeoutMs: 20_000 }),
      `0.0.0.0:${port}`,
      join(dir, 'config.yaml'),
    );
  });

  it('starts on a loopback listener without publicURL, and the realm is that loopback address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-startup-'));
    const port = await freePort();
    // (an issuer: without one `serve` refuses to start, issue 10)
    writeFileSync(
      join(dir, 'config.yaml'),
      `listen: 127.0.0.1:${port}\nservice: registry.test\nupstream: {url: "http://127.0.0.1:9"}\npolicies: ${POLICY}\nlogLevel: warn\nissuers: [{name: ci, issuer: "http://127.0.0.1:9"}]\n`,
    );
    const proc = await startProxyProcess(join(dir, 'config.yaml'), `http://127.0.0.1:${port}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/team/app/manifests/latest`);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe(
        `Bearer realm="http://127.0.0.1:${port}/token",service="registry.test",scope="repository:team/app:pull"`,
      );
      expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
    } finally {
      await proc.stop();
    }
  });
});

describe('listenExposureProblem (pure)', () => {
  const check = (raw: Record<string, unknown>, flags = {}) => listenExposureProblem(buildConfig(raw, flags));

  it('allows loopback listeners and any listener with a configured publicURL', () => {
    for (const listen of ['127.0.0.1:8080', '127.1.2.3:1', 'localhost:8080', '[::1]:8080', '[::ffff:127.0.0.1]:8080'])
      expect(check({ listen }), listen).toBeUndefined();
    expect(check({ listen: '0.0.0.0:8080', publicURL: 'https://registry.example.com' })).toBeUndefined();
    expect(check({ listen: '0.0.0.0:8080' }, { publicUrl: 'https://registry.example.com' })).toBeUndefined();
    // deliberately local clients of a container port mapping: an explicit loopback publicURL is the operator's choice
    expect(check({ listen: '0.0.0.0:8080', publicURL: 'http://127.0.0.1:8080' })).toBeUndefined();
    expect(buildConfig({ listen: '[::1]:8080' }).publicURL).toBe('http://[::1]:8080');
  });

  it('refuses wildcard and routable listeners without publicURL', () => {
    for (const listen of [
      '0.0.0.0:8080',
      '[::]:8080',
      '10.0.0.5:8080',
      '[fd00::1]:8080',
      'my-host:8080',
      '128.0.0.1:8080',
    ])
      expect(check({ listen }), listen).toMatch(/is required when listening on/);
  });

  it('every shipped deploy config may start', () => {
    for (const f of [
      'deploy/base/config.yaml',
      'deploy/overlays/gateway/config.yaml',
      'deploy/overlays/sidecar/config.yaml',
    ]) {
      expect(
        listenExposureProblem(buildConfig(parseYaml(readFileSync(f, 'utf8')) as Record<string, unknown>, {}, f)),
        f,
      ).toBeUndefined();
    }
  });
});
