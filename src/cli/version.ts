import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: src/cli/ in a checkout, dist/cli/ when built, both two levels down. */
const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * The commit this copy was built from: dist/build-info.json (written by `npm run build`, which
 * takes $REVISION or asks git; the Dockerfile passes REVISION since the image has no .git), else
 * `git rev-parse HEAD` when the package root is itself a checkout (a stale or hand-made dist/),
 * else `unknown`.
 */
function revision(root: string): string {
  const recorded = readJson(join(root, 'dist', 'build-info.json'))?.revision;
  if (typeof recorded === 'string' && recorded && recorded !== 'unknown') return recorded;
  if (existsSync(join(root, '.git'))) {
    try {
      return execFileSync('git', ['rev-parse', 'HEAD'], {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 5000,
      }).trim();
    } catch {
      // no git on this machine, or not a repository after all
    }
  }
  return 'unknown';
}

/** `--version`: package.json's version and the short commit, e.g. `0.1.0 (abc1234)`. */
export function versionText(root = PACKAGE_ROOT): string {
  const version = readJson(join(root, 'package.json'))?.version;
  const rev = revision(root);
  return `${typeof version === 'string' ? version : 'unknown'} (${/^[0-9a-f]{40}$/.test(rev) ? rev.slice(0, 7) : rev})`;
}
