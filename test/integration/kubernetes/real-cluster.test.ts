import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import { parse } from 'yaml';
import {
  clusterKitOrSkipReason,
  startCluster,
  startStandInRegistry,
  KIT,
  type Cluster,
  type StandInRegistry,
} from '../../fixtures/k8s-cluster.js';
import { writeTestOverlay, type TestOverlay } from '../../fixtures/k8s-overlays.js';
import { PROJECT_IMAGE, projectImageTar } from '../../fixtures/project-image.js';
import { findTool } from '../../support/tools.js';
import { requestToken } from '../../support/token.js';

/**
 * The project as an operator deploys it, on a real Kubernetes (1.20.2: API server, controller-manager,
 * scheduler and a kubelet on containerd, from ../shared/k8s): the image built from the Dockerfile,
 * deploy/base and every overlay applied with only the patches the kit's README says this machine
 * needs (k8s-overlays.ts lists them in each failure message), pods that must become Ready, and
 * /token at a pod's IP (no kube-proxy) with tokens from `kubectl create token`. Then TokenReview
 * revocation by deleting the service account, and the imagePullSecret controller writing a pull
 * Secret through the real TokenRequest API.
 *
 * What the fakes cannot catch and this suite did: the real API server answers 406 to a JWKS request
 * with `Accept: application/json` alone; the kubelet mounts Secrets root-owned (a non-root user needs
 * fsGroup); it injects service-link variables that Distribution reads as configuration.
 */

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const NAMESPACE_OWNER = 'team-a';
const REPOSITORY = `${NAMESPACE_OWNER}/app`;
const READY_TIMEOUT_S = 60;
const REVOCATION_BOUND_MS = 90_000;
const LOCAL_REGISTRY_IMAGE = 'k8s.local/registry:2';

/**
 * Overlays this cluster cannot run, each with why: it pulls nothing, and an image of a third party
 * has no offline build here yet. Their manifests are still rendered and checked by the deploy tests.
 */
const NOT_ON_THIS_CLUSTER: Record<string, string> = {
  'deploy/overlays/redis-limits': 'its Valkey image (valkey/valkey) has no offline build for this cluster yet',
};

/** deploy/base and every overlay there is (a new one is deployed too, with the same environment patches). */
const SOURCES = [
  'deploy/base',
  ...(existsSync(join(REPO, 'deploy', 'overlays')) ? readdirSync(join(REPO, 'deploy', 'overlays')).sort() : []).map(
    (o) => `deploy/overlays/${o}`,
  ),
].filter((s) => !(s in NOT_ON_THIS_CLUSTER));
// Said, not skipped silently: the run's output names what is not deployed and why.
for (const [s, why] of Object.entries(NOT_ON_THIS_CLUSTER))
  console.log(`real-cluster suite: ${s} not deployed: ${why}`);

let skip: string | undefined;
let cluster: Cluster | undefined;
let work: string;
let upstream: StandInRegistry | undefined;
let tokenUpstream: StandInRegistry | undefined;
const timings: Record<string, number> = {};
const started = Date.now();

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = (timings[name] ?? 0) + (Date.now() - t) / 1000;
  }
}

function need(ctx: TestContext): Cluster {
  if (skip) ctx.skip(skip);
  if (!cluster) throw new Error('the local cluster did not start (see the beforeAll error)');
  return cluster;
}

/** Distribution (Debian's binary and the libraries ldd names) as a docker-save tar, with registry:2's default config. No Docker needed. */
function registryImageTar(dir: string): string {
  const bin = findTool('docker-registry')!;
  const config = join(dir, 'registry-config.yml');
  writeFileSync(
    config,
    'version: 0.1\nlog: {fields: {service: registry}}\nstorage:\n  cache: {blobdescriptor: inmemory}\n  filesystem: {rootdirectory: /var/lib/registry}\nhttp: {addr: ":5000"}\n',
  );
  const libs = [...execFileSync('ldd', [bin], { encoding: 'utf8' }).matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map(
    (m) => m[1]!,
  );
  const tar = join(dir, 'registry.tar');
  execFileSync(
    'python3',
    [
      join(KIT, 'mkimage.py'),
      LOCAL_REGISTRY_IMAGE,
      tar,
      '--add',
      `${bin}:/bin/registry`,
      ...libs.flatMap((l) => ['--add', `${l}:${l}`]),
      '--add',
      `${config}:/etc/docker/registry/config.yml:644`,
      '--entrypoint',
      '["/bin/registry", "serve", "/etc/docker/registry/config.yml"]',
    ],
    { stdio: 'pipe' },
  );
  return tar;
}

beforeAll(async () => {
  const kit = clusterKitOrSkipReason(); // throws under CI=true when something is missing
  if ('skip' in kit) {
    skip = kit.skip;
    return;
  }
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  work = mkdtempSync(join(tmpdir(), 'rap-real-cluster-'));
  // the cluster comes up while the image is built (or found in the cache another suite filled)
  const [c, image, registryTar] = await Promise.allSettled([
    timed('cluster up.sh', () => startCluster(kit.kit, kit.kubectl)),
    timed('project image (build or cache)', () => projectImageTar()),
    timed('registry image (mkimage.py)', async () => registryImageTar(work)),
  ]);
  if (c.status === 'fulfilled') cluster = c.value;
  for (const r of [c, image, registryTar]) if (r.status === 'rejected') throw r.reason;
  const k8s = cluster!;
  if (image.status === 'fulfilled')
    console.info(
      `project image: ${image.value.built ? 'built' : 'from the cache'} in ${image.value.seconds} s (${image.value.tar})`,
    );
  await timed('ctr images import', async () => {
    await k8s.importImage((image as PromiseFulfilledResult<{ tar: string }>).value.tar);
    await k8s.importImage((registryTar as PromiseFulfilledResult<string>).value);
  });
  upstream = await startStandInRegistry(k8s);
  tokenUpstream = await startStandInRegistry(k8s, { token: { password: 'stand-in-robot-password' } });
  // the identities the tests use: namespace team-a owns team-a/* by the default policy
  await k8s.k(['create', 'namespace', NAMESPACE_OWNER]);
  await k8s.k(['-n', NAMESPACE_OWNER, 'create', 'serviceaccount', 'builder']);
  // the signing key, made the way docs/kubernetes.md says
  mkdirSync(join(work, 'keys'));
  execFileSync(process.execPath, [
    join(REPO, 'bin', 'registry-auth-proxy.js'),
    'keys',
    'generate',
    '--cert',
    '--out',
    join(work, 'keys', 'current'),
  ]);
}, 900_000);

afterAll(async () => {
  await upstream?.stop();
  await tokenUpstream?.stop();
  const down = await timed('cluster down.sh', async () => cluster?.down());
  if (work) rmSync(work, { recursive: true, force: true });
  if (cluster) {
    const total = (Date.now() - started) / 1000;
    console.info(
      `real-cluster suite: ${total.toFixed(0)} s in all; ${Object.entries(timings)
        .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
        .join(', ')}`,
    );
  }
  if (down && down.code !== 0) throw new Error(`down.sh failed (${down.code}):\n${down.out}`);
}, 180_000);

interface Deployed {
  source: string;
  overlay: TestOverlay;
  namespace: string;
  /** The proxy's config as deployed (after the environment patches). */
  config: Record<string, any>;
  /** Ready pods of the current rollout, as http://<pod IP>:<port>. */
  urls: string[];
}

const deployed = new Map<string, Deployed>();
let current: Deployed | undefined;

const docsOf = (o: TestOverlay, kind: string) => o.rendered.filter((d) => d.kind === kind);

/** Secrets the manifests mount but leave to the operator: the signing key as the docs make it, any other with a placeholder. */
async function createExternalSecrets(k8s: Cluster, o: TestOverlay): Promise<void> {
  for (const s of o.externalSecrets) {
    const ns = s.namespace ?? 'default';
    if ((await k8s.kubectl(['get', 'namespace', ns])).code !== 0) await k8s.k(['create', 'namespace', ns]);
    const from =
      s.name.endsWith('-keys') || s.keys.some((key) => key.endsWith('.pem'))
        ? ['--from-file', join(work, 'keys', 'current.pem'), '--from-file', join(work, 'keys', 'current.crt')]
        : [
            '--from-literal',
            `password=${tokenUpstream!.password}`,
            ...s.keys.filter((key) => key !== 'password').flatMap((key) => ['--from-literal', `${key}=x`]),
          ];
    const yaml = await k8s.k([
      '-n',
      ns,
      'create',
      'secret',
      'generic',
      s.name,
      ...from,
      '--dry-run=client',
      '-o',
      'yaml',
    ]);
    await k8s.k(['apply', '-f', '-'], { input: yaml });
  }
}

/** Pods of the Deployment's current ReplicaSet that are Ready and not terminating. */
async function readyPods(k8s: Cluster, ns: string, name: string): Promise<any[]> {
  const dep = JSON.parse(await k8s.k(['-n', ns, 'get', 'deployment', name, '-o', 'json']));
  const revision = dep.metadata.annotations?.['deployment.kubernetes.io/revision'];
  const rs = (JSON.parse(await k8s.k(['-n', ns, 'get', 'replicasets', '-o', 'json'])).items as any[]).find(
    (r) =>
      r.metadata.ownerReferences?.some((o: any) => o.uid === dep.metadata.uid) &&
      r.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision,
  );
  if (!rs) return [];
  return (JSON.parse(await k8s.k(['-n', ns, 'get', 'pods', '-o', 'json'])).items as any[]).filter(
    (p) =>
      !p.metadata.deletionTimestamp &&
      p.metadata.ownerReferences?.some((o: any) => o.uid === rs.metadata.uid) &&
      p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
  );
}

/** Applies a test overlay, waits (bounded) for every Deployment in it; the failure says what the pods said. */
async function deploy(k8s: Cluster, o: TestOverlay, label: string): Promise<void> {
  await createExternalSecrets(k8s, o);
  const dry = await k8s.kubectl(['apply', '--dry-run=server', '-k', o.dir]);
  if (dry.code !== 0)
    throw new Error(
      `${label}: kubectl apply --dry-run=server refused it:\n${dry.out}\n(test changes: ${o.notes.join('; ')})`,
    );
  // volumes first: a claim that finds no volume waits for the PV controller's next resync (~15 s)
  for (const pv of o.rendered.filter((d) => d.kind === 'PersistentVolume'))
    await k8s.k(['apply', '-f', '-'], { input: JSON.stringify(pv) });
  await timed(`apply ${label}`, () => k8s.k(['apply', '-k', o.dir]));
  for (const d of docsOf(o, 'Deployment')) {
    const ns = d.metadata.namespace ?? 'default';
    const r = await timed(`ready ${label}`, () =>
      k8s.kubectl(['-n', ns, 'rollout', 'status', `deployment/${d.metadata.name}`, `--timeout=${READY_TIMEOUT_S}s`], {
        timeoutMs: (READY_TIMEOUT_S + 15) * 1000,
      }),
    );
    if (r.code !== 0) {
      const selector = Object.entries(d.spec.selector.matchLabels as Record<string, string>)
        .map(([key, v]) => `${key}=${v}`)
        .join(',');
      throw new Error(
        `${label}: deployment ${d.metadata.name} not Ready within ${READY_TIMEOUT_S} s: ${r.out.trim()}\n` +
          `test changes: ${o.notes.join('; ')}\n${await k8s.diagnose(ns, selector)}`,
      );
    }
  }
}

/** The proxy Deployment of an overlay: the one whose container runs `serve`. */
function proxyDeployment(o: TestOverlay): any {
  const d = docsOf(o, 'Deployment').find((x) =>
    x.spec.template.spec.containers.some((c: any) => (c.args ?? []).includes('serve')),
  );
  if (!d) throw new Error('no Deployment running `registry-auth-proxy serve` in the rendered overlay');
  return d;
}

function overlayEnv() {
  return { upstreamURL: upstream!.url, tokenUpstreamURL: tokenUpstream!.url, volumeDir: join(work, 'volumes') };
}

async function deploySource(k8s: Cluster, source: string): Promise<Deployed> {
  const name = source.split('/').pop()!;
  const o = await writeTestOverlay(k8s, join(REPO, source), join(work, 'overlays', name), {
    image: PROJECT_IMAGE,
    registryImage: LOCAL_REGISTRY_IMAGE,
    ...overlayEnv(),
  });
  const dep = proxyDeployment(o);
  const ns = dep.metadata.namespace ?? 'default';
  // one instance at a time: the overlays share names (and cluster-wide bindings); the previous proxy goes
  for (const prev of deployed.values()) {
    for (const d of docsOf(prev.overlay, 'Deployment'))
      await k8s.kubectl([
        '-n',
        d.metadata.namespace ?? 'default',
        'delete',
        'deployment',
        d.metadata.name,
        '--wait=false',
      ]);
  }
  current = undefined;
  await deploy(k8s, o, source);
  const cm = o.rendered.find(
    (d) =>
      d.kind === 'ConfigMap' &&
      dep.spec.template.spec.volumes.some((v: any) => v.configMap?.name === d.metadata.name) &&
      d.data?.['config.yaml'],
  );
  const config = parse(cm!.data['config.yaml']) as Record<string, any>;
  const proxy = dep.spec.template.spec.containers.find((c: any) => (c.args ?? []).includes('serve'));
  const port = proxy.ports?.[0]?.containerPort ?? 8080;
  const pods = await readyPods(k8s, ns, dep.metadata.name);
  expect(pods.length, `${source}: Ready pods of the current rollout`).toBe(dep.spec.replicas ?? 1);
  const d: Deployed = {
    source,
    overlay: o,
    namespace: ns,
    config,
    urls: pods.map((p) => `http://${p.status.podIP}:${port}`),
  };
  deployed.set(source, d);
  current = d;
  console.info(`${source}: Ready (${pods.length} pod(s) at ${d.urls.join(', ')}); test changes: ${o.notes.join('; ')}`);
  return d;
}

/** The audience a registry client's identity token carries for this proxy: the Kubernetes issuer's, else the service. */
function audienceOf(config: Record<string, any>): string {
  const k8sIssuer = (config.issuers ?? []).find((i: any) => i.preset === 'kubernetes');
  return k8sIssuer?.audiences?.[0] ?? config.service;
}

function deployedOrFail(source: string): Deployed {
  const d = current?.source === source ? current : undefined;
  if (!d) throw new Error(`${source} is not deployed and Ready (see its first test)`);
  return d;
}

async function createToken(k8s: Cluster, sa: string, audience: string): Promise<string> {
  return (
    await k8s.k(['-n', NAMESPACE_OWNER, 'create', 'token', sa, '--audience', audience, '--duration', '10m'])
  ).trim();
}

describe.each(SOURCES)('%s on a real cluster', (source) => {
  it('deploys with only the environment patches and every pod becomes Ready', async (ctx) => {
    const d = await deploySource(need(ctx), source);
    // an upstream robot account (gateway): its password was read from the mounted Secret and accepted
    const auth = d.config.upstream?.auth;
    if (auth?.type === 'registry-token')
      expect(tokenUpstream!.robots, 'robot accounts the stand-in upstream issued tokens to').toContain(auth.username);
  }, 150_000);

  it('/token at each pod: 200 with pull+push on a namespace-owned repository for a `kubectl create token` token', async (ctx) => {
    const k8s = need(ctx);
    const d = deployedOrFail(source);
    const identity = await createToken(k8s, 'builder', audienceOf(d.config));
    for (const url of d.urls) {
      const r = await requestToken(url, identity, [`repository:${REPOSITORY}:pull,push`], {
        service: d.config.service,
      });
      expect(r.status, `${url}: ${JSON.stringify(r.body)}`).toBe(200);
      const claims = decodeJwt(r.body.token!);
      expect(claims.access).toEqual([{ type: 'repository', name: REPOSITORY, actions: ['pull', 'push'] }]);
      expect(String(claims.sub)).toContain(`system:serviceaccount:${NAMESPACE_OWNER}:builder`);
    }
  });

  it('/token: 401 for a token with another audience', async (ctx) => {
    const k8s = need(ctx);
    const d = deployedOrFail(source);
    const identity = await createToken(k8s, 'builder', 'not-this-registry.example.com');
    const r = await requestToken(d.urls[0]!, identity, [`repository:${REPOSITORY}:pull`], {
      service: d.config.service,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(401);
  });
});

/** An overlay whose Kubernetes issuer has `tokenReview`, deployed (again) if it is not the current one. */
async function withTokenReview(k8s: Cluster): Promise<Deployed> {
  const hasReview = (d: Deployed) =>
    (d.config.issuers ?? []).some((i: any) => i.preset === 'kubernetes' && i.tokenReview);
  if (current && hasReview(current)) return current;
  const candidate = [...deployed.values()].find(hasReview);
  if (!candidate)
    throw new Error(
      `no deployed overlay (${[...deployed.keys()].join(', ') || 'none Ready'}) has a Kubernetes issuer with tokenReview: true`,
    );
  return timed('redeploy for TokenReview', () => deploySource(k8s, candidate.source));
}

describe('TokenReview and the imagePullSecret controller against the real API server', () => {
  it('deleting the service account revokes its tokens at the proxy (bounded poll; delay measured)', async (ctx) => {
    const k8s = need(ctx);
    const d = await withTokenReview(k8s);
    const url = d.urls[0]!;
    const scope = [`repository:${REPOSITORY}:pull`];
    await k8s.k(['-n', NAMESPACE_OWNER, 'create', 'serviceaccount', 'revoked']);
    const identity = await createToken(k8s, 'revoked', audienceOf(d.config));
    const before = await requestToken(url, identity, scope, { service: d.config.service });
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    await k8s.k(['-n', NAMESPACE_OWNER, 'delete', 'serviceaccount', 'revoked', '--wait=true']);
    const deleted = Date.now();
    const review = JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: identity, audiences: [audienceOf(d.config)] },
    });
    let apiDelay: number | undefined;
    let proxyDelay: number | undefined;
    let last = before;
    while (Date.now() - deleted < REVOCATION_BOUND_MS && (apiDelay === undefined || proxyDelay === undefined)) {
      if (apiDelay === undefined) {
        const r = JSON.parse(
          await k8s.k(['create', '--raw', '/apis/authentication.k8s.io/v1/tokenreviews', '-f', '-'], { input: review }),
        );
        if (r.status?.authenticated !== true) apiDelay = (Date.now() - deleted) / 1000;
      }
      if (proxyDelay === undefined) {
        last = await requestToken(url, identity, scope, { service: d.config.service });
        if (last.status === 401) proxyDelay = (Date.now() - deleted) / 1000;
        else expect(last.status, JSON.stringify(last.body)).toBe(200);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    console.info(
      `TokenReview revocation: the API server refused the deleted account's token after ${apiDelay ?? '>bound'} s, ` +
        `the proxy (tokenReview ${JSON.stringify((d.config.issuers as any[]).find((i) => i.tokenReview)?.tokenReview)}: its cacheTTL, 30 s by default) after ${proxyDelay ?? '>bound'} s`,
    );
    timings['revocation: API server'] = apiDelay ?? NaN;
    timings['revocation: proxy'] = proxyDelay ?? NaN;
    expect(apiDelay, 'the API server still authenticates a deleted service account’s token').toBeDefined();
    expect(
      proxyDelay,
      `the proxy still accepts a deleted service account’s token after ${REVOCATION_BOUND_MS / 1000} s: ${JSON.stringify(last.body)}`,
    ).toBeDefined();
  }, 150_000);

  it('the controller writes a pull Secret through the TokenRequest API, and the proxy accepts it', async (ctx) => {
    const k8s = need(ctx);
    const d = current;
    if (!d) throw new Error('no proxy deployed and Ready (see the tests above)');
    const o = await writeTestOverlay(k8s, join(REPO, 'deploy', 'controller'), join(work, 'overlays', 'controller'), {
      image: PROJECT_IMAGE,
      registryImage: LOCAL_REGISTRY_IMAGE,
      ...overlayEnv(),
    });
    await deploy(k8s, o, 'deploy/controller');
    const registryHost = d.config.service as string;
    await k8s.k(['-n', NAMESPACE_OWNER, 'create', 'serviceaccount', 'puller']);
    await k8s.k([
      '-n',
      NAMESPACE_OWNER,
      'annotate',
      'serviceaccount',
      'puller',
      `registry-auth-proxy.io/registry=${registryHost}`,
    ]);
    const t = Date.now();
    let secret: any;
    let sa: any;
    while (Date.now() - t < 60_000) {
      const r = await k8s.kubectl(['-n', NAMESPACE_OWNER, 'get', 'secret', 'puller-registry-auth-proxy', '-o', 'json']);
      sa = JSON.parse(await k8s.k(['-n', NAMESPACE_OWNER, 'get', 'serviceaccount', 'puller', '-o', 'json']));
      if (r.code === 0 && (sa.imagePullSecrets ?? []).some((s: any) => s.name === 'puller-registry-auth-proxy')) {
        secret = JSON.parse(r.stdout);
        break;
      }
      await new Promise((r2) => setTimeout(r2, 1000));
    }
    timings['controller: pull Secret written'] = (Date.now() - t) / 1000;
    if (!secret) {
      const logs = await k8s.kubectl([
        '-n',
        'registry-auth-proxy',
        'logs',
        'deployment/registry-auth-proxy-controller',
        '--tail',
        '40',
      ]);
      throw new Error(
        `no pull Secret puller-registry-auth-proxy in the service account's imagePullSecrets within 60 s; controller log:\n${logs.out}`,
      );
    }
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    const auths = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'], 'base64').toString()).auths as Record<
      string,
      any
    >;
    const entry = auths[registryHost];
    expect(entry, JSON.stringify(Object.keys(auths))).toBeDefined();
    const password = entry.password ?? Buffer.from(entry.auth, 'base64').toString().split(':').slice(1).join(':');
    // a TokenRequest token of that service account, for the registry's audience
    expect(decodeJwt(password)).toMatchObject({ sub: `system:serviceaccount:${NAMESPACE_OWNER}:puller` });
    const r = await requestToken(d.urls[0]!, password, [`repository:${REPOSITORY}:pull`], {
      service: d.config.service,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(decodeJwt(r.body.token!).access).toEqual([{ type: 'repository', name: REPOSITORY, actions: ['pull'] }]);
  }, 150_000);
});
