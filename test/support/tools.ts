import { execFile, execFileSync, type ExecFileOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

/**
 * Real binaries the integration tests and the benchmark drive. They are only looked for here:
 * `.ci/run` is the one place that installs them, so a test run never changes the machine.
 */
const PACKAGES: Record<string, { pkg: string; paths: string[] }> = {
  'docker-registry': { pkg: 'docker-registry', paths: ['/usr/bin/docker-registry'] },
  skopeo: { pkg: 'skopeo', paths: ['/usr/bin/skopeo'] },
  containerd: { pkg: 'containerd', paths: ['/usr/bin/containerd'] },
  ctr: { pkg: 'containerd', paths: ['/usr/bin/ctr'] },
  nginx: { pkg: 'nginx-light', paths: ['/usr/sbin/nginx'] },
  openssl: { pkg: 'openssl', paths: ['/usr/bin/openssl'] },
  dockerd: { pkg: 'docker.io', paths: ['/usr/sbin/dockerd'] },
  // any docker CLI will do (the machine's own 28.x, or Debian's 20.10 from docker.io)
  docker: { pkg: 'docker.io', paths: [] },
  podman: { pkg: 'podman', paths: ['/usr/bin/podman'] },
  buildah: { pkg: 'buildah', paths: ['/usr/bin/buildah'] },
  'redis-server': { pkg: 'redis-server', paths: ['/usr/bin/redis-server'] },
};

function which(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function findTool(name: string): string | undefined {
  for (const p of PACKAGES[name]?.paths ?? []) if (existsSync(p)) return p;
  return which(name);
}

/** What to run to get these tools: one apt-get line naming each package once. */
export function installHint(names: string[]): string {
  const pkgs = [...new Set(names.map((n) => PACKAGES[n]?.pkg ?? n))];
  return `sudo apt-get install -y ${pkgs.join(' ')} (bash .ci/run installs every tool the tests use)`;
}

/** The tool's path, or an error that names the package to install. */
export function requireTool(name: string): string {
  const found = findTool(name);
  if (found) return found;
  throw new Error(`${name} is required by the integration tests. Install it with: ${installHint([name])}`);
}

/**
 * For a tool that no Debian package carries in a usable version, so `.ci/run` cannot install it:
 * its path, or — outside CI only — why the test that needs it is skipped (report it with
 * `ctx.skip(reason)`). Under CI=true a missing tool fails with `install`: never a silent skip.
 */
export function toolOrSkipReason(name: string, install: string): { path: string } | { skip: string } {
  const path = findTool(name);
  if (path) return { path };
  const reason = `${name} not found: install ${install}`;
  if (process.env.CI === 'true') throw new Error(reason);
  console.warn(`skipped: ${reason}`);
  return { skip: reason };
}

const execFileAsync = promisify(execFile);

/**
 * Runs a client to completion (60 s unless `opts` says otherwise): whether it succeeded, and all it
 * printed, with the error's message on failure — what tests assert a real client told its user.
 */
export async function outcome(
  cmd: string,
  args: string[],
  opts: ExecFileOptions = {},
): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { timeout: 60_000, ...opts, encoding: 'utf8' });
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}
