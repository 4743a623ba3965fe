#!/bin/sh
# Builds the kubelet credential provider as one self-contained executable (a Node single executable
# application): nodes run it with no Node.js and no node_modules. See deploy/credential-provider/README.md.
#
#   scripts/build-credential-provider.sh            (or: npm run build:credential-provider)
#
# 1. esbuild bundles src/cli/credential-provider-main.ts (the `credential-provider` command alone,
#    not the proxy) and its dependencies into one CommonJS file;
# 2. the Node binary turns it into a SEA blob (--experimental-sea-config, with a V8 code cache);
# 3. postject injects the blob into a copy of that same Node binary.
#
# Environment:
#   SEA_NODE  the Node binary to embed (default: `node` on PATH). The blob is made by this binary,
#             so the executable runs that Node's version; Node 20.12+ and 24 are tested. It must be
#             a build for the nodes' OS and architecture (linux glibc: official or Debian builds).
#   OUT_DIR   where to write (default: dist/credential-provider)
#   STRIP     `strip` the copy of Node first (default: when `strip` is installed): a fifth smaller,
#             the same code; only symbols go
# Output: $OUT_DIR/registry-auth-proxy-credential-provider (and the intermediate bundle and blob).
#
# Needs sh and node only (files are copied and moved by Node, not coreutils), so it also runs in the
# Dockerfile's credential-provider-build stage on the offline base of scripts/build-image.sh.
set -eu

case $0 in */*) HERE=${0%/*} ;; *) HERE=. ;; esac
ROOT=$(cd "$HERE/.." && pwd)
SEA_NODE=${SEA_NODE:-$(command -v node)}
OUT_DIR=${OUT_DIR:-$ROOT/dist/credential-provider}
BIN=$ROOT/node_modules/.bin
if [ -z "${STRIP:-}" ]; then
  if command -v strip >/dev/null; then STRIP=1; else STRIP=0; fi
fi

# fs <code> [args...]: file operations in Node (args are process.argv[1..]); no cp/mv/chmod needed
fs() {
  code=$1 && shift
  "$SEA_NODE" -e "const fs = require('fs'), [a, b] = process.argv.slice(1); $code" "$@"
}

fs 'fs.mkdirSync(a, { recursive: true })' "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
EXE=$OUT_DIR/registry-auth-proxy-credential-provider
LOG=$OUT_DIR/build.log
# Quiet when it works (postject prints a warning per ELF note it does not know); the log when not.
quiet() { "$@" >"$LOG" 2>&1 || { fs 'process.stderr.write(fs.readFileSync(a))' "$LOG"; exit 1; }; }

# --format=cjs: a SEA's main script is CommonJS, and may require() only Node's built-ins.
"$BIN/esbuild" "$ROOT/src/cli/credential-provider-main.ts" \
  --bundle --platform=node --format=cjs --target=node20 --minify --legal-comments=none \
  --log-level=warning --outfile="$OUT_DIR/credential-provider.cjs"

# useCodeCache: V8 compiles the bundle at build time rather than on every pull (for a ~50 KB bundle
# the gain is within the noise; it costs nothing). useSnapshot was tried on Node 20: it needs the
# entry as a snapshot main function, warns that child_process (commander) is unverified in
# snapshots, and started no faster.
printf '{\n  "main": "%s",\n  "output": "%s",\n  "disableExperimentalSEAWarning": true,\n  "useCodeCache": true\n}\n' \
  "$OUT_DIR/credential-provider.cjs" "$OUT_DIR/sea-prep.blob" >"$OUT_DIR/sea-config.json"
quiet "$SEA_NODE" --experimental-sea-config "$OUT_DIR/sea-config.json"

# Write under a temporary name and rename, so a concurrent reader never sees a half-written file.
fs 'fs.copyFileSync(a, b); fs.chmodSync(b, 0o755)' "$SEA_NODE" "$EXE.tmp"
if [ "$STRIP" = 1 ]; then quiet strip "$EXE.tmp"; fi
quiet "$BIN/postject" "$EXE.tmp" NODE_SEA_BLOB "$OUT_DIR/sea-prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2
fs 'fs.rmSync(a, { force: true }); fs.chmodSync(b, 0o755); fs.renameSync(b, b.slice(0, -4))' "$LOG" "$EXE.tmp"
echo "$EXE: Node $("$SEA_NODE" -p process.version), $(fs 'console.log(fs.statSync(a).size)' "$EXE") bytes"
