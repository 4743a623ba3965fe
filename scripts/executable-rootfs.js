// Lays out a root file system that runs one dynamically linked executable and nothing else: the
// executable at <path in image>, and every shared library the dynamic loader maps for it (the
// loader itself included) at the path it maps it from, symlinks resolved. For the Dockerfile's
// `FROM scratch` credential-provider image, built in a stage that may have no ldd, awk or cp (the
// offline base of scripts/build-image.sh): LD_TRACE_LOADED_OBJECTS=1 makes the loader print what
// ldd prints, and this file does the rest with Node.
//   node scripts/executable-rootfs.js <executable> <rootfs dir> <path in image>
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [exe, rootfs, target] = process.argv.slice(2);
if (!exe || !rootfs || !target?.startsWith('/')) {
  console.error('usage: node scripts/executable-rootfs.js <executable> <rootfs dir> </path/in/image>');
  process.exit(2);
}

function put(from, to) {
  mkdirSync(join(rootfs, dirname(to)), { recursive: true });
  copyFileSync(from, join(rootfs, to)); // follows symlinks: the file itself at the linked name
}

// `\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `\t/lib64/ld-linux-x86-64.so.2 (0x…)`;
// linux-vdso.so.1 has no file. A static executable prints `statically linked` or nothing.
const trace = execFileSync(exe, [], { env: { LD_TRACE_LOADED_OBJECTS: '1' }, encoding: 'utf8' });
const libs = [];
for (const line of trace.split('\n')) {
  const m = /^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
  if (m) libs.push(m[1]);
  else if (/not found/.test(line)) throw new Error(`${exe}: ${line.trim()}`);
}
for (const lib of libs) put(lib, lib);
put(exe, target);
chmodSync(join(rootfs, target), 0o755);
console.log(`${target} and ${libs.length} shared libraries: ${libs.join(' ')}`);
