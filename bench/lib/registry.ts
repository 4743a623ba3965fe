import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../../test/support/tools.js';
import { freePort, waitForHttp } from '../../test/support/net.js';

interface BenchRegistry {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The Debian Distribution registry, tuned for measuring the proxies in front of it rather than
 * itself: storage on tmpfs (/dev/shm when present) so disk speed does not hide proxy overhead, and
 * no access log.
 */
export async function startBenchRegistry(): Promise<BenchRegistry> {
  const bin = requireTool('docker-registry');
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'rap-bench-registry-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1
log:
  level: error
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: ${dir}/data}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: 127.0.0.1:${port}
  secret: bench-${port}
`,
  );
  const child: ChildProcess = spawn(bin, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/v2/`, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`docker-registry did not start: ${(err as Error).message}\n${stderr}`);
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
