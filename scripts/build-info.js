// Writes dist/build-info.json: the commit the build was made from, which `registry-auth-proxy
// --version` prints (src/cli/version.ts). $REVISION when set (the Dockerfile passes it: the image
// build has no .git), else `git rev-parse HEAD` in a checkout, else "unknown".
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let revision = process.env.REVISION || 'unknown';
// only this checkout's own .git: never the commit of a repository the package happens to sit in
if (!process.env.REVISION && existsSync(new URL('../.git', import.meta.url))) {
  try {
    revision = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // no git here: "unknown"
  }
}
mkdirSync(new URL('../dist', import.meta.url), { recursive: true });
writeFileSync(new URL('../dist/build-info.json', import.meta.url), `${JSON.stringify({ revision })}\n`);
