// `npm run dev`: runs `npm run build` only when dist/ is older than what it is built from, as make
// would (a no-op tsc still spends ~10 s reading the whole program). dist/build-info.json is the
// build's last output; a newer file under src/, a TypeScript config or this script's sibling
// build-info.js means the build is stale.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** The newest modification time of a file under `dir`. */
function newest(dir) {
  let max = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) max = Math.max(max, mtime(`${entry.parentPath ?? entry.path}/${entry.name}`));
  }
  return max;
}

const built = mtime(`${root}dist/build-info.json`);
const sources = Math.max(
  newest(`${root}src`),
  ...['tsconfig.json', 'tsconfig.build.json', 'scripts/build-info.js'].map((f) => mtime(`${root}${f}`)),
);
if (built > sources) process.exit(0);
process.stderr.write(
  built ? 'dist/ is older than src/: building it (npm run build)\n' : 'no dist/ yet: building it (npm run build)\n',
);
const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
