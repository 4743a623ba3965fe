# syntax=docker/dockerfile:1
# NODE_IMAGE: any image with node 20, npm, /bin/sh and /usr/bin/env (the tests build one offline
# from the machine's own node: test/integration/container-image.test.ts).
ARG NODE_IMAGE=node:20-bookworm-slim

# Build stage: compile TypeScript with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies only, non-root, no shell tooling needed at run time.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY policies ./policies
USER 65532:65532
# Listens on 0.0.0.0:8080 (it must, in a container), so the config needs publicURL (or pass
# --public-url): the token realm clients are sent to. Without it the proxy exits 2.
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz instead.
# --initial-old-space-size and MALLOC_TRIM_THRESHOLD_: see src/server/heap-flags.ts (each removes
# a source of CPU per GiB streamed that varied from process to process on the bench).
ENV MALLOC_TRIM_THRESHOLD_=33554432
ENTRYPOINT ["node", "--initial-old-space-size=64", "/app/bin/registry-auth-proxy.js"]
CMD ["serve", "--config", "/etc/registry-auth-proxy/config.yaml"]
