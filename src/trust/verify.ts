import { LRUCache } from 'lru-cache';
import type { Config } from '../config/types.js';
import { canonicalRepository, upstreamFor } from '../config/upstreams.js';
import type { Metrics } from '../http/metrics.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream/upstream.js';
import { bundleVerifier, type BundleVerifier } from './bundle.js';
import { discoverSignatures } from './discover.js';
import { legacyKeylessBundle } from './legacy-keyless.js';
import { repoReader } from './fetch.js';
import { loadTrust, type LoadedTrust } from './load.js';
import { policiesFor } from './match.js';
import { verifySimpleSigning } from './simple-signing.js';
import type { Candidate, KeyAnchor, TrustPolicy, Verdict } from './types.js';
import { errorVerdict, verdictOf } from './verdict.js';

/**
 * The one question the signature guard asks: is this manifest digest of this repository signed as
 * the policies that apply to it require? Built once at start-up (createTrust); verdicts are cached
 * per repository and digest (a digest names content, so its signatures only change by being
 * added or deleted: the TTL bounds how long a removed signature is still believed), concurrent
 * asks for one image share one lookup, and a failed lookup is never cached.
 */

export interface Trust {
  /** True when some policy names this repository: the guard asks verifyImage only then. */
  applies(repository: string): boolean;
  /** True when some policy naming this repository is in `enforce` mode (not only `audit`). */
  enforces(repository: string): boolean;
  /** `repository`: the client-side name (upstream prefix included); `digest`: `sha256:<hex>`. */
  verifyImage(repository: string, digest: string): Promise<Verdict>;
}

interface TrustDeps {
  upstreams: readonly Upstream[];
  logger: Logger;
  metrics?: Pick<Metrics, 'trustVerdicts' | 'trustVerification'>;
}

const SHA256 = /^sha256:[a-f0-9]{64}$/;

const NO_ROOT = { signers: [], problem: 'a keyless or bundle signature needs trust.trustedRoot to be verified' };

function viaBundle(bundles: BundleVerifier | undefined, json: unknown, digest: string, payload?: Buffer) {
  return bundles ? bundles(json, digest, payload) : NO_ROOT;
}

/** cosign's legacy keyless `.sig` layer: verified as the bundle v0.1 it restates. */
function legacyKeyless(
  bundles: BundleVerifier | undefined,
  c: Extract<Candidate, { kind: 'simple-signing' }>,
  digest: string,
) {
  const json =
    c.rekorBundle !== undefined
      ? legacyKeylessBundle(c.payload, c.signature, {
          certificate: c.certificate!,
          chain: c.chain,
          rekorBundle: c.rekorBundle,
        })
      : undefined;
  if (!json)
    return {
      signers: [],
      problem: 'a keyless signature has no usable Rekor bundle annotation (offline verification needs it)',
    };
  return viaBundle(bundles, json, digest, c.payload);
}

/** Each candidate against the anchors these policies need: the signers that verified, the problems of the rest. */
function check(
  candidates: readonly Candidate[],
  digest: string,
  policies: readonly TrustPolicy[],
  bundles: BundleVerifier | undefined,
) {
  const needed = new Set(policies.flatMap((p) => p.require.map((a) => a.name)));
  const keys = policies.flatMap((p) => p.require).filter((a): a is KeyAnchor => a.kind === 'key');
  const signers = new Set<string>();
  const problems: string[] = [];
  for (const c of candidates) {
    const r =
      c.kind === 'bundle'
        ? viaBundle(bundles, c.bundle, digest)
        : c.certificate !== undefined
          ? legacyKeyless(bundles, c, digest)
          : verifySimpleSigning(c.payload, c.signature, digest, keys);
    const mine = r.signers.filter((s) => needed.has(s));
    mine.forEach((s) => signers.add(s));
    if (mine.length === 0 && r.problem) problems.push(`${r.problem} (${c.source})`);
  }
  return { signers: [...signers], problems };
}

function createTrustVerifier(
  loaded: LoadedTrust,
  config: { cacheTtl: number; cacheSize: number; lookupTimeout: number },
  deps: TrustDeps,
): Trust {
  const bundles = loaded.root ? bundleVerifier(loaded.root, loaded.keys, loaded.keyless) : undefined;
  const cache = new LRUCache<string, Verdict>({ max: config.cacheSize, ttl: config.cacheTtl });
  const inFlight = new Map<string, Promise<Verdict>>();
  const count = (v: Verdict, cached: boolean) =>
    deps.metrics?.trustVerdicts.inc({
      result: v.error ? 'error' : v.verified ? 'verified' : 'unverified',
      cached: String(cached),
    });

  async function lookup(repository: string, digest: string, policies: TrustPolicy[]): Promise<Verdict> {
    const upstream = upstreamFor(deps.upstreams, repository);
    if (!upstream) return errorVerdict(policies, `no upstream serves ${repository}`);
    const name = canonicalRepository([upstream], repository).slice(upstream.prefix.length);
    const found = await discoverSignatures(repoReader(upstream, name, config.lookupTimeout), digest);
    if (!found.ok) return errorVerdict(policies, found.error);
    const { signers, problems } = check(found.candidates, digest, policies, bundles);
    return verdictOf(policies, signers, problems, found.looked);
  }

  return {
    applies: (repository) => policiesFor(loaded.policies, repository).length > 0,
    enforces: (repository) => policiesFor(loaded.policies, repository).some((p) => p.mode === 'enforce'),
    async verifyImage(repository, digest) {
      const policies = policiesFor(loaded.policies, repository);
      if (policies.length === 0) return { verified: true, signers: [], policies: [] };
      if (!SHA256.test(digest)) return errorVerdict(policies, `${digest} is not a sha256 digest`);
      const key = `${repository}@${digest}`;
      const hit = cache.get(key);
      if (hit) {
        count(hit, true);
        return hit;
      }
      const pending = inFlight.get(key);
      if (pending) return pending;
      const started = process.hrtime.bigint();
      const run = lookup(repository, digest, policies).finally(() => inFlight.delete(key));
      inFlight.set(key, run);
      const verdict = await run;
      if (!verdict.error) cache.set(key, verdict);
      const result = verdict.error ? 'error' : verdict.verified ? 'verified' : 'unverified';
      deps.metrics?.trustVerification.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9);
      count(verdict, false);
      if (!verdict.verified)
        deps.logger.info(
          { repository, digest, reason: verdict.reason, error: verdict.error },
          'image signature not verified',
        );
      return verdict;
    },
  };
}

/** The verifier set for `config.trust`, or undefined when no policy is configured. Throws ConfigError on a bad key or root file. */
export function createTrust(
  config: Pick<Config, 'trust' | 'file'>,
  upstreams: readonly Upstream[],
  logger: Logger,
  metrics?: Metrics,
): Trust | undefined {
  if (!config.trust || config.trust.policies.length === 0) return undefined;
  return createTrustVerifier(loadTrust(config.trust, config.file), config.trust, { upstreams, logger, metrics });
}
