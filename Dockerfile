# NODE_IMAGE: any image with node 24 (or 20.19+), npm, /bin/sh and /usr/bin/env. Without Docker
# Hub, scripts/build-image.sh makes one from local files and builds this file with it (README,
# "Container image"); it also fills VERSION, REVISION and CREATED. No `# syntax=` line: the legacy
# builder (DOCKER_BUILDKIT=0) builds this as well as BuildKit does, and nothing is fetched for it.
ARG NODE_IMAGE=node:24-bookworm-slim

# All dependencies, installed once (the npm registry is the only network the build uses).
FROM ${NODE_IMAGE} AS deps
WORKDIR /registry-auth-proxy
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# Build stage: compile TypeScript with the dev dependencies.
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-info.js ./scripts/
COPY src ./src
RUN npm run build
# after the compile, so a new commit reuses its layer: only dist/build-info.json is rewritten
ARG REVISION=unknown
RUN REVISION="${REVISION}" node scripts/build-info.js

# Production dependencies: the same tree without the dev ones, without the source maps and type
# declarations Node never loads (about half their bytes), and the CycloneDX SBOM of that tree. Not
# `npm sbom --omit=dev`: npm 11 leaves out every production package a dev dependency also uses
# (38 of 207 here: commander, undici, yaml, zod, ...). So this stage drops devDependencies from its
# package.json (the runtime copies the original) and describes what is installed; npm names the
# root component after the directory, hence /registry-auth-proxy.
FROM deps AS production
COPY scripts/prune-node-modules.js /tmp/
RUN npm prune --omit=dev --offline --no-audit --no-fund \
 && node /tmp/prune-node-modules.js node_modules \
 && npm pkg delete devDependencies \
 && npm sbom --sbom-format cyclonedx --sbom-type application > sbom.cdx.json

# Runtime stage: production dependencies only, non-root, no shell tooling needed at run time.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=production /registry-auth-proxy/node_modules ./node_modules
COPY --from=production /registry-auth-proxy/sbom.cdx.json ./sbom.cdx.json
COPY --from=build /registry-auth-proxy/dist ./dist
COPY bin ./bin
COPY policies ./policies
USER 65532:65532
# Listens on 0.0.0.0:8080 (it must, in a container), so the config needs publicURL (or pass
# --public-url): the token realm clients are sent to. Without it the proxy exits 2.
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz instead.
# No node flags or malloc settings here: `serve` re-executes itself with them (src/cli/launch.ts,
# src/server/heap-flags.ts), as from every other entry point; on Node 24 the same PID 1.
ENTRYPOINT ["node", "/app/bin/registry-auth-proxy.js"]
CMD ["serve", "--config", "/etc/registry-auth-proxy/config.yaml"]
# Last, so a new commit rebuilds nothing above. CREATED: the commit's date (reproducible), not the
# time of the build. The source is where ghcr.io/registry-auth-proxy/registry-auth-proxy comes from.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=
ARG SOURCE=https://github.com/registry-auth-proxy/registry-auth-proxy
LABEL org.opencontainers.image.title="registry-auth-proxy" \
      org.opencontainers.image.description="Authenticating reverse proxy for container registries" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      io.github.registry-auth-proxy.sbom="/app/sbom.cdx.json" \
      io.github.registry-auth-proxy.sbom.format="CycloneDX JSON, the installed production tree (npm sbom)"

# The kubelet credential provider (deploy/credential-provider): the single executable in an image of
# its own, only it and the C libraries it links (~130 MB with Node 24: almost all Node itself), no
# shell. Its default command installs it into the host directory the installer DaemonSet mounts,
# then waits for SIGTERM. Built only when asked: `docker build --target credential-provider`, or
# scripts/build-image.sh --target credential-provider. These stages come after `runtime` so that
# the legacy builder (which builds every stage before its target) spends nothing on them for the
# proxy; scripts/build-image.sh builds the proxy with --target runtime.
FROM deps AS credential-provider-build
COPY tsconfig.json ./
COPY scripts/build-credential-provider.sh scripts/executable-rootfs.js ./scripts/
COPY src ./src
# sh and node only (the offline base has no coreutils, ldd or strip: Node's symbols stay). One
# layer with one copy of the executable: the build directory goes in the same step.
RUN OUT_DIR=/tmp/credential-provider sh scripts/build-credential-provider.sh \
 && node scripts/executable-rootfs.js /tmp/credential-provider/registry-auth-proxy-credential-provider \
      /rootfs /registry-auth-proxy-credential-provider \
 && node -e "require('fs').rmSync('/tmp/credential-provider', { recursive: true })"

FROM scratch AS credential-provider
COPY --from=credential-provider-build /rootfs/ /
# root (the DaemonSet sets it too): the kubelet's bin dir on the host belongs to root
ENTRYPOINT ["/registry-auth-proxy-credential-provider"]
CMD ["install", "--dir", "/host/kubelet-credential-providers", "--wait"]
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=
ARG SOURCE=https://github.com/registry-auth-proxy/registry-auth-proxy
LABEL org.opencontainers.image.title="registry-auth-proxy-credential-provider" \
      org.opencontainers.image.description="kubelet image credential provider of registry-auth-proxy, as one executable, and its installer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# The default target (the last stage): the proxy, as `runtime` (BuildKit builds no stage it does not need).
FROM runtime AS proxy
