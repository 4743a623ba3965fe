#!/bin/sh
# Builds the project image (Dockerfile) without Docker Hub: first a Node base image made from local
# files, then `docker build --build-arg NODE_IMAGE=<that base>` with the legacy builder
# (DOCKER_BUILDKIT=0; BuildKit would fetch its frontend from Docker Hub). The only network used is
# the npm registry, by `npm ci` inside the build and for Node itself (below). docs/install.md, "Container image".
#
#   scripts/build-image.sh [--target TARGET] [--tag TAG] [--credential-provider-tag TAG]
#                          [--node PATH | --node-version RANGE] [--npm DIR]
#                          [--base-tag TAG] [--base-only] [--network MODE] [-- docker build args...]
#
#   --target TARGET      runtime: the proxy (default); credential-provider: the kubelet credential
#                        provider's image (the single executable alone, deploy/credential-provider);
#                        all: both, the second reusing the first's stages. The legacy builder builds
#                        every stage before its target, so credential-provider costs the proxy's
#                        build as well (cached after one) plus ~20 s; runtime spends nothing on it.
#   --tag TAG            the proxy image (default registry-auth-proxy:<package.json version>)
#   --credential-provider-tag TAG
#                        the credential provider's image
#                        (default registry-auth-proxy-credential-provider:<package.json version>)
#   --node-version RANGE Node from the npm package node-linux-<arch>@RANGE, cached by
#                        scripts/with-node.sh (default 24)
#   --node PATH          this node binary instead (e.g. --node "$(command -v node)")
#   --npm DIR            the npm package directory to put in the base (default: the npm on PATH)
#   --base-tag TAG       the base image (default registry-auth-proxy/node-base:<node version>)
#   --base-only          build the base only (its tag is printed)
#   --network MODE       network of the build's RUN steps (default host: works on an engine with
#                        no bridge, as the tests' private dockerd)
# Environment: DOCKER (the docker CLI, default docker), DOCKER_HOST and the rest as docker reads them.
# Output: progress on stderr; on stdout the tags built, one a line (the proxy's first).
#
# The base (FROM scratch): node, the shared libraries `ldd` names for it, npm (+ npm/npx
# wrappers), /bin/sh (dash), /usr/bin/env, the CA bundle, /etc/passwd and /etc/group with
# 65532 (nonroot), /tmp and /root. Build arguments filled: VERSION (package.json), REVISION
# (`git rev-parse HEAD`), CREATED (the commit's date, UTC), all "unknown"/empty outside a checkout.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=${DOCKER:-docker}
DOCKER_BUILDKIT=0
export DOCKER_BUILDKIT

target=runtime tag= cp_tag= node= node_range=24 npm_dir= base_tag= base_only= network=host
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=$2 && shift 2 ;;
    --tag) tag=$2 && shift 2 ;;
    --credential-provider-tag) cp_tag=$2 && shift 2 ;;
    --node) node=$2 && shift 2 ;;
    --node-version) node_range=$2 && shift 2 ;;
    --npm) npm_dir=$2 && shift 2 ;;
    --base-tag) base_tag=$2 && shift 2 ;;
    --base-only) base_only=1 && shift ;;
    --network) network=$2 && shift 2 ;;
    --) shift && break ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
    *) echo "$0: unknown argument $1 (--help)" >&2 && exit 2 ;;
  esac
done

say() { echo "build-image: $*" >&2; }
case $target in
  runtime | credential-provider | all) ;;
  *) echo "$0: --target is runtime, credential-provider or all, not $target" >&2 && exit 2 ;;
esac

[ -n "$node" ] || node=$("$ROOT/scripts/with-node.sh" "$node_range" node -p process.execPath)
[ -x "$node" ] || { echo "$0: $node is not an executable" >&2 && exit 2; }
node_version=$("$node" -p 'process.versions.node')
# The package the `npm` on PATH runs (its bin/npm-cli.js, through any symlink). Not `npm root -g`:
# that follows the `node` on PATH, and under scripts/with-node.sh that Node has no npm beside it.
if [ -z "$npm_dir" ]; then
  npm_cli=$(readlink -f "$(command -v npm)" 2>/dev/null || true)
  npm_dir=$(dirname "$(dirname "$npm_cli")")
fi
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "$0: no npm in $npm_dir (--npm DIR)" >&2 && exit 2; }
base_tag=${base_tag:-registry-auth-proxy/node-base:$node_version}

# --- the base image -------------------------------------------------------------------------------
ctx=$(mktemp -d "${TMPDIR:-/tmp}/rap-node-base.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib/node_modules" "$rootfs/bin" "$rootfs/etc/ssl/certs" "$rootfs/root"
mkdir -m 1777 "$rootfs/tmp"

# <executable> <path in the image>: the file, and the shared libraries ldd names at their paths
add_executable() {
  cp -L "$1" "$rootfs$2"
  chmod 0755 "$rootfs$2"
  # `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`
  for lib in $(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}
add_executable "$node" /usr/bin/node
add_executable /bin/dash /bin/sh # RUN steps and npm scripts
add_executable /usr/bin/env /usr/bin/env # `#!/usr/bin/env node` of node_modules/.bin (tsc)

cp -R "$npm_dir" "$rootfs/usr/lib/node_modules/npm"
for cli in npm npx; do
  printf '#!/bin/sh\nexec /usr/bin/node /usr/lib/node_modules/npm/bin/%s-cli.js "$@"\n' "$cli" >"$rootfs/usr/bin/$cli"
  chmod 0755 "$rootfs/usr/bin/$cli"
done

printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

# The machine's CA bundle, for whatever reads /etc/ssl/certs. Node uses its own roots; where this
# machine's npm needs more (NODE_EXTRA_CA_CERTS, e.g. a TLS-inspecting egress), the base carries
# that file and setting too, so `npm ci` in the build reaches the registry the same way.
env_line="ENV PATH=/usr/local/bin:/usr/bin:/bin"
[ ! -f /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$rootfs/etc/ssl/certs/node-extra-ca-certs.crt"
  env_line="$env_line NODE_EXTRA_CA_CERTS=/etc/ssl/certs/node-extra-ca-certs.crt"
fi

printf 'FROM scratch\nCOPY rootfs/ /\n%s\n' "$env_line" >"$ctx/Dockerfile"
say "base $base_tag: node $node_version ($node), npm $("$node" -p "require('$npm_dir/package.json').version")"
"$DOCKER" build --quiet --tag "$base_tag" "$ctx" >&2
if [ -n "$base_only" ]; then
  echo "$base_tag"
  exit 0
fi

# --- the project image ----------------------------------------------------------------------------
version=$("$node" -p "require('$ROOT/package.json').version")
revision=unknown created=
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 && [ -e "$ROOT/.git" ]; then
  revision=$(git -C "$ROOT" rev-parse HEAD)
  created=$(TZ=UTC git -C "$ROOT" log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd)
fi
tag=${tag:-registry-auth-proxy:$version}
cp_tag=${cp_tag:-registry-auth-proxy-credential-provider:$version}

# <Dockerfile target> <tag> [docker build args...]
build() {
  say "image $2 (--target $1): version $version, revision $revision, on $base_tag"
  stage=$1 image=$2 && shift 2
  "$DOCKER" build --network "$network" --target "$stage" \
    --build-arg "NODE_IMAGE=$base_tag" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "CREATED=$created" \
    --tag "$image" "$@" "$ROOT" >&2
  echo "$image"
}
if [ "$target" != credential-provider ]; then build runtime "$tag" "$@"; fi
if [ "$target" != runtime ]; then build credential-provider "$cp_tag" "$@"; fi
