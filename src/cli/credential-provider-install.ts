import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSea } from 'node:sea';
import { CliExit } from './exit.js';

/**
 * `registry-auth-proxy-credential-provider install --dir <dir> [--name <name>] [--wait]`: the
 * single executable puts a copy of itself where kubelet runs it (`<dir>/<name>`, kubelet's
 * `--image-credential-provider-bin-dir` and the config's provider name). What the installer
 * DaemonSet (deploy/credential-provider) runs, in an image that holds this executable and nothing
 * else: no shell, no cp. credential-provider-main.ts loads this file only for `install`, so a pull
 * never does.
 *
 * kubelet runs the provider on every pull it has no cached answer for, so the copy goes to
 * `<dir>/.<name>.installing`, is made 0755 and fsync'd, then renamed over `<dir>/<name>`: a pull
 * sees the old file or the new one, never half of one, and one already running keeps the old one.
 * An identical file already in place (same size and SHA-256, streamed; mode 0755) is left alone.
 */

export const DEFAULT_NAME = 'registry-auth-proxy';

interface InstallResult {
  path: string;
  installed: boolean;
}

/** SHA-256 of a file, read as a stream (the executable is ~100 MB). */
function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** `target` is a regular file, mode 0755, with the same bytes as `source`. */
async function upToDate(source: string, target: string): Promise<boolean> {
  const [s, t] = await Promise.all([stat(source), stat(target).catch(() => undefined)]);
  if (!t?.isFile() || (t.mode & 0o7777) !== 0o755 || t.size !== s.size) return false;
  const [a, b] = await Promise.all([sha256(source), sha256(target)]);
  return a === b;
}

/** fsync of a directory, so the rename itself survives a crash; not every file system allows it. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // EINVAL/EISDIR on file systems that cannot sync a directory: the rename is still atomic
  }
}

/** Copies `source` to `<dir>/<name>` by way of a temporary file and rename(2), unless it is already there. */
async function install(source: string, dir: string, name = DEFAULT_NAME): Promise<InstallResult> {
  const path = join(dir, name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (await upToDate(source, path)) return { path, installed: false };
  const tmp = join(dir, `.${name}.installing`);
  try {
    await rm(tmp, { force: true });
    await copyFile(source, tmp); // copy_file_range(2) or a buffered loop: never the whole file in memory
    const fh = await open(tmp, 'r+');
    try {
      await fh.chmod(0o755);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
  return { path, installed: true };
}

/** Resolves on the first SIGTERM or SIGINT; keeps the process alive until then. */
function idleUntilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    const stop = (): void => {
      clearInterval(keepAlive);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function validName(name: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new CliExit(2, `install: --name must be a file name, not ${JSON.stringify(name)}`);
  }
  return name;
}

export function register(program: Command): void {
  program
    .command('install')
    .description(
      'copy this executable to <dir>/<name> (atomically, by rename), where kubelet runs it; unchanged if identical',
    )
    .requiredOption('--dir <dir>', "kubelet's --image-credential-provider-bin-dir (as mounted here)")
    .option('--name <name>', "the provider's name in kubelet's CredentialProviderConfig", DEFAULT_NAME)
    .option('--wait', 'then stay up until SIGTERM or SIGINT (a DaemonSet pod)')
    .action(async (opts: { dir: string; name: string; wait?: boolean }) => {
      const name = validName(opts.name);
      // Under plain node, execPath is node itself: installing that as the provider would break every pull.
      if (!isSea()) {
        throw new CliExit(
          1,
          'install: only the single executable installs itself (scripts/build-credential-provider.sh); this is plain node',
        );
      }
      let result: InstallResult;
      try {
        result = await install(process.execPath, opts.dir, name);
      } catch (err) {
        throw new CliExit(1, `install: ${(err as Error).message}`);
      }
      process.stdout.write(result.installed ? `installed ${result.path}\n` : `${result.path} is up to date\n`);
      if (opts.wait) await idleUntilSignal();
    });
}
