// Deletes from an installed node_modules what Node never loads: source maps (*.js.map, *.ts.map, …)
// and TypeScript declarations (*.d.ts, *.d.mts, *.d.cts). For the image's production tree
// (Dockerfile); about half of its bytes. Licences, package.json files and code stay.
//   node scripts/prune-node-modules.js [node_modules]
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const NEVER_LOADED = /\.[cm]?[jt]s\.map$|\.d\.[cm]?ts$/;
const root = process.argv[2] ?? 'node_modules';
let files = 0;
let bytes = 0;

function walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.isFile() && NEVER_LOADED.test(entry.name)) {
      bytes += statSync(path).size;
      rmSync(path);
      files++;
    }
  }
}

walk(root);
console.log(`${root}: removed ${files} source maps and type declarations, ${(bytes / 1e6).toFixed(1)} MB`);
