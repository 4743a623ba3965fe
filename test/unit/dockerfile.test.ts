import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

/** The Dockerfile as text; test/integration/container-image.test.ts builds and runs it (scripts/build-image.sh). */
describe('Dockerfile', () => {
  const text = readFileSync('Dockerfile', 'utf8');
  const stage = (name: string): string => {
    const start = text.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'));
    expect(start, `stage ${name}`).toBeGreaterThanOrEqual(0);
    const next = text.slice(start + 1).search(/^FROM /m);
    return next < 0 ? text.slice(start) : text.slice(start, start + 1 + next);
  };

  it('defaults to Node 24 (the current LTS), and needs nothing from Docker Hub but that base', () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    expect(text.match(/^FROM .*/gm)).toEqual([
      'FROM ${NODE_IMAGE} AS deps',
      'FROM deps AS build',
      'FROM deps AS production',
      'FROM ${NODE_IMAGE} AS runtime',
      'FROM deps AS credential-provider-build',
      'FROM scratch AS credential-provider',
      'FROM runtime AS proxy',
    ]);
    // no BuildKit frontend to fetch: the legacy builder (DOCKER_BUILDKIT=0) builds it offline
    expect(text).not.toMatch(/^# *syntax=/m);
  });

  it('is multi-stage, non-root, production-only, without HEALTHCHECK', () => {
    expect(stage('deps')).toMatch(/^RUN npm ci --no-audit --no-fund$/m);
    expect(stage('build')).toMatch(/^RUN npm run build$/m);
    expect(stage('production')).toMatch(/^RUN npm prune --omit=dev /m);
    const runtime = stage('runtime');
    expect(runtime).toMatch(/^USER 65532:65532$/m);
    expect(text).not.toMatch(/^HEALTHCHECK/m);
    expect(runtime).toMatch(/^COPY --from=build \/registry-auth-proxy\/dist \.\/dist$/m);
    // dev dependencies never reach the runtime stage: its node_modules is the pruned one
    expect(runtime).toMatch(/^COPY --from=production \/registry-auth-proxy\/node_modules \.\/node_modules$/m);
    expect(runtime.match(/^COPY --from=.*/gm)!.filter((l) => l.includes('node_modules'))).toHaveLength(1);
    expect(runtime).not.toMatch(/npm (ci|install)/);
  });

  it('prunes what Node never loads from the production tree, and ships its CycloneDX SBOM', () => {
    const production = stage('production');
    expect(production).toMatch(/node \/tmp\/prune-node-modules\.js node_modules/);
    // of the pruned tree itself: `npm sbom --omit=dev` drops production packages that dev ones share
    expect(production).toMatch(
      /npm pkg delete devDependencies \\\n && npm sbom --sbom-format cyclonedx --sbom-type application > sbom\.cdx\.json$/m,
    );
    expect(production).not.toMatch(/--omit=dev --package-lock-only|sbom .*--omit=dev/);
    expect(stage('runtime')).toMatch(
      /^COPY --from=production \/registry-auth-proxy\/sbom\.cdx\.json \.\/sbom\.cdx\.json$/m,
    );
  });

  it('labels the image (OCI) from build arguments, and records the revision for --version', () => {
    const runtime = stage('runtime');
    for (const arg of ['VERSION', 'REVISION', 'CREATED', 'SOURCE'])
      expect(runtime).toMatch(new RegExp(`^ARG ${arg}=`, 'm'));
    for (const [label, value] of [
      ['title', '"registry-auth-proxy"'],
      ['licenses', '"Apache-2.0"'],
      ['source', '"${SOURCE}"'],
      ['version', '"${VERSION}"'],
      ['revision', '"${REVISION}"'],
      ['created', '"${CREATED}"'],
    ]) {
      expect(runtime).toContain(`org.opencontainers.image.${label}=${value}`);
    }
    expect(runtime).toContain('io.github.registry-auth-proxy.sbom="/app/sbom.cdx.json"');
    // dist/build-info.json: after the compile, so only that step reruns for a new commit
    const build = stage('build');
    expect(build.indexOf('ARG REVISION')).toBeGreaterThan(build.indexOf('RUN npm run build'));
    expect(build).toMatch(/^RUN REVISION="\$\{REVISION\}" node scripts\/build-info\.js$/m);
  });

  it('the default target is the proxy; the credential-provider stages cost its build nothing', () => {
    // the last stage is what `docker build` without --target makes: the runtime, unchanged
    expect(stage('proxy').trim()).toBe('FROM runtime AS proxy');
    // the legacy builder builds every stage before its target: scripts/build-image.sh asks for runtime
    expect(text.indexOf('AS credential-provider-build')).toBeGreaterThan(text.indexOf('AS runtime'));
    expect(readFileSync('scripts/build-image.sh', 'utf8')).toMatch(/build runtime "\$tag"/);
    // the scratch image: the executable and its libraries, nothing from Docker Hub, no shell to run
    const cp = stage('credential-provider');
    expect(cp).toMatch(/^ENTRYPOINT \["\/registry-auth-proxy-credential-provider"\]$/m);
    expect(cp).not.toMatch(/^RUN /m);
    for (const label of ['title', 'licenses', 'source', 'version', 'revision', 'created'])
      expect(cp).toContain(`org.opencontainers.image.${label}=`);
  });

  it('copies only files the build context has (.dockerignore keeps scripts/ and src/)', () => {
    const ignored = readFileSync('.dockerignore', 'utf8').split('\n');
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(' ')) expect(ignored, src).not.toContain(src.split('/')[0]);
    }
  });
});
