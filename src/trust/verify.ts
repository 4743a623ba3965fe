import { LRUCache } from 'lru-cache';
import type { Config, SignatureLookup } from '../config/types.js';
import { canonicalRepository, upstreamFor } from '../config/upstreams.js';
import type { Metrics } from '../http/metrics.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream/upstream.js';
import { bundleVerifier, type BundleVerifier } from './bundle.js';
import { discoverSignatures } from './discover.js';
import { legacyKeylessBundle } from './legacy-keyless.js';
import { repoReader } from './fetch.js';
import { loadTrust, type LoadedTrust } from './load.js';
import { identityMatches, policiesFor } from './match.js';
import { verifySimpleSigning } from './simple-signing.js';
import type { Candidate, KeyAnchor, SignerIdentity, TrustPolicy, Verdict } from './types.js';
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

const NO_ROOT = {
  keys: [],
  problem: 'a keyless or bundle signature needs a trustedRoot on the signatures entry to be verified',
};

/** cosign's legacy keyless `.sig` layer: verified as the bundle v0.1 it restates. */
function legacyKeyless(bundles: BundleVerifier, c: Extract<Candidate, { kind: 'simple-signing' }>, digest: string) {
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
      keys: [],
      problem: 'a keyless signature has no usable Rekor bundle annotation (offline verification needs it)',
    };
  return bundles(json, digest, c.payload);
}

interface Proven {
  keys: Set<string>;
  identities: SignerIdentity[];
}

/**
 * Each candidate against what these policies need: a key signature (cosign's legacy form) proves a
 * key whatever the root; a bundle or keyless signature proves something only under a trusted root,
 * so it is verified under each root the policies name, and counts only for the policies naming that
 * root. Returns which policies are satisfied, the signers that satisfied them, the problems of the rest.
 */
function check(
  candidates: readonly Candidate[],
  digest: string,
  policies: readonly TrustPolicy[],
  verifiers: ReadonlyMap<string, BundleVerifier>,
) {
  const keys = [
    ...new Map(
      policies.flatMap((p) => p.require).flatMap((a) => (a.kind === 'key' ? [[a.name, a] as const] : [])),
    ).values(),
  ];
  const roots = [...new Set(policies.flatMap((p) => (p.root === undefined ? [] : [p.root])))];
  const anyRoot: Proven = { keys: new Set(), identities: [] };
  const byRoot = new Map<string, Proven>(roots.map((r) => [r, { keys: new Set(), identities: [] }]));
  const problems = new Set<string>();
  for (const c of candidates) {
    if (c.kind === 'simple-signing' && c.certificate === undefined) {
      const r = verifySimpleSigning(c.payload, c.signature, digest, keys);
      r.signers.forEach((s) => anyRoot.keys.add(s));
      if (r.signers.length === 0 && r.problem) problems.add(`${r.problem} (${c.source})`);
      continue;
    }
    if (roots.length === 0) problems.add(`${NO_ROOT.problem} (${c.source})`);
    for (const root of roots) {
      const verify = verifiers.get(root)!;
      const r = c.kind === 'bundle' ? verify(c.bundle, digest) : legacyKeyless(verify, c, digest);
      const proven = byRoot.get(root)!;
      r.keys.forEach((k) => proven.keys.add(k));
      if (r.identity) proven.identities.push(r.identity);
      if (r.problem) problems.add(`${r.problem} (${c.source})`);
    }
  }
  const signers: string[] = [];
  const matched = new Set<SignerIdentity>();
  const satisfied = policies.map((p) => {
    const proven = p.root === undefined ? undefined : byRoot.get(p.root);
    const byKey = p.require.filter(
      (a) => a.kind === 'key' && (anyRoot.keys.has(a.name) || proven?.keys.has(a.name) === true),
    );
    const byIdentity = (proven?.identities ?? []).filter((id) =>
      p.require.some((a) => a.kind === 'keyless' && identityMatches(a, id)),
    );
    byKey.forEach((a) => signers.push(a.name));
    byIdentity.forEach((id) => (signers.push(id.subject), matched.add(id)));
    return byKey.length + byIdentity.length > 0;
  });
  for (const id of [...byRoot.values()].flatMap((p) => p.identities))
    if (!matched.has(id))
      problems.add(`a keyless signature is by ${id.subject} (issuer ${id.issuer}), not a required identity`);
  return { satisfied, signers, problems: [...problems] };
}

/** One verifier per trusted root, holding the keys of the entries that name it. */
function verifiersByRoot(loaded: LoadedTrust) {
  return new Map(
    [...loaded.roots].map(([path, root]) => {
      const keys = loaded.policies
        .filter((p) => p.root === path)
        .flatMap((p) => p.require)
        .filter((a): a is KeyAnchor => a.kind === 'key');
      return [path, bundleVerifier(root, [...new Map(keys.map((k) => [k.name, k])).values()])] as const;
    }),
  );
}

function createTrustVerifier(loaded: LoadedTrust, config: SignatureLookup, deps: TrustDeps): Trust {
  const verifiers = verifiersByRoot(loaded);
  const cache = new LRUCache<string, Verdict>({ max: config.cacheSize, ttl: config.cacheTTL });
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
    const found = await discoverSignatures(repoReader(upstream, name, config.timeout), digest);
    if (!found.ok) return errorVerdict(policies, found.error);
    const { satisfied, signers, problems } = check(found.candidates, digest, policies, verifiers);
    return verdictOf(policies, satisfied, signers, problems, found.looked);
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

/** The verifier set for `config.signatures`, or undefined when no entry is configured. Throws ConfigError on a bad key or root file. */
export function createTrust(
  config: Pick<Config, 'signatures' | 'signatureLookup' | 'file'>,
  upstreams: readonly Upstream[],
  logger: Logger,
  metrics?: Metrics,
): Trust | undefined {
  if (!config.signatures?.length) return undefined;
  return createTrustVerifier(loadTrust(config.signatures, config.file), config.signatureLookup, {
    upstreams,
    logger,
    metrics,
  });
}
