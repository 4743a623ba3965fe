import { afterEach, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';
import { versionText } from '../../../src/cli/version.js';

/** A package root with package.json and, optionally, dist/build-info.json and a .git directory. */
function packageRoot(opts: { buildInfo?: unknown; git?: boolean } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'rap-version-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'registry-auth-proxy', version: '9.8.7' }));
  if (opts.buildInfo !== undefined) {
    mkdirSync(join(root, 'dist'));
    writeFileSync(join(root, 'dist', 'build-info.json'), JSON.stringify(opts.buildInfo));
  }
  if (opts.git) mkdirSync(join(root, '.git')); // not a repository: git rev-parse fails
  roots.push(root);
  return root;
}
const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
  vi.restoreAllMocks();
});

describe('--version: package.json version and the commit', () => {
  it('takes the commit from dist/build-info.json (written by the build; the image has no .git)', () => {
    expect(versionText(packageRoot({ buildInfo: { revision: '0123456789abcdef0123456789abcdef01234567' } }))).toBe(
      '9.8.7 (0123456)',
    );
    expect(versionText(packageRoot({ buildInfo: { revision: 'v1-custom' } }))).toBe('9.8.7 (v1-custom)');
  });

  it('says unknown with no build record and no checkout (or a broken one)', () => {
    expect(versionText(packageRoot())).toBe('9.8.7 (unknown)');
    expect(versionText(packageRoot({ buildInfo: { revision: 'unknown' }, git: true }))).toBe('9.8.7 (unknown)');
    expect(versionText(packageRoot({ buildInfo: 'not an object' }))).toBe('9.8.7 (unknown)');
  });

  it('in this checkout: the version of package.json and the commit of dist/ (or of HEAD when dist/ has no record)', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const text = versionText();
    expect(text).toMatch(new RegExp(`^${version.replace(/\./g, '\\.')} \\([0-9a-f]{7}\\)$`));
    let head = '';
    try {
      head = execFileSync('git', ['log', '--format=%H'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return; // no git: the format is all that can be checked
    }
    // dist/ may be a build of an earlier commit: any commit of this history
    expect(head.split('\n').map((h) => h.slice(0, 7))).toContain(text.slice(version.length + 2, -1));
  });

  it('registry-auth-proxy --version prints it and exits 0', async () => {
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation(
      (chunk: string | Uint8Array) => ((out += chunk.toString()), true),
    );
    expect(await main(['node', 'registry-auth-proxy', '--version'])).toBe(0);
    expect(out).toBe(`${versionText()}\n`);
  });
});
