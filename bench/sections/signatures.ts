import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MANIFEST_TYPE, pushSmallBlob } from '../../test/support/seed.js';
import {
  cosignSigManifest,
  cosignSign,
  image,
  keyPair,
  simpleSigningPayload,
  type Artifact,
} from '../../test/support/sigstore.js';
import { withCpu } from '../lib/cpu.js';
import type { LoadProcess } from '../lib/load.js';
import { startBenchProxy, type BenchProxy } from '../lib/proxy.js';
import { fmt, median as mid } from '../lib/stats.js';
import { compareHead, type Measured } from './head.js';

/**
 * The cost of signature enforcement on a pull (issue 22): manifest HEAD by tag at 16 clients through
 * the bench proxy and through a second one with a `signatures:` entry on `bench/**` whose image carries a
 * cosign `.sig` (the verdict cached: a tag lookup every limits.tagLookupTTL, then the digest's
 * remembered verdict), interleaved, `reps` times each, medians. Then uncached: a manifest HEAD by the
 * digest of a freshly signed image, one at a time (a referrers lookup, the fallback and `.sig` tags,
 * the signature blob, one ECDSA verification).
 */
export interface SignaturesResults {
  without: Measured;
  with: Measured;
  /** Added per manifest HEAD with a cached verdict (median with − median without). */
  extraCpuMs: number;
  extraP50Ms: number;
  /** One uncached verification: latency and proxy CPU of the request (medians over `fresh` images). */
  uncached: { ms: number; cpuMs: number; n: number };
}

async function put(upstream: string, repo: string, a: Artifact, tag?: string): Promise<void> {
  for (const b of a.blobs) await pushSmallBlob(upstream, repo, b);
  for (const m of a.manifests) {
    const r = await fetch(`${upstream}/v2/${repo}/manifests/${tag ?? m.reference!}`, {
      method: 'PUT',
      body: new Uint8Array(m.body),
      headers: { 'content-type': m.mediaType },
    });
    if (r.status !== 201) throw new Error(`PUT ${repo}: HTTP ${r.status}`);
  }
}

/** A fresh image in `repo` under `tag`, signed with `key` as cosign signs: its digest. */
async function signedImage(
  upstream: string,
  repo: string,
  tag: string,
  key: ReturnType<typeof keyPair>,
): Promise<string> {
  const img = image(`bench-${tag}-${Date.now()}-${Math.random()}`);
  await put(upstream, repo, img, tag);
  const payload = simpleSigningPayload(img.digest, `bench/${repo}`);
  await put(
    upstream,
    repo,
    cosignSigManifest(img.digest, [{ payload, signature: cosignSign(key.privateKey, payload) }]),
  );
  return img.digest;
}

async function uncached(
  p: BenchProxy,
  upstream: string,
  key: ReturnType<typeof keyPair>,
  n: number,
): Promise<SignaturesResults['uncached']> {
  const auth = {
    accept: MANIFEST_TYPE,
    authorization: `Bearer ${await p.registryToken(['repository:bench/signed:pull'])}`,
  };
  const digests: string[] = [];
  for (let i = 0; i < n; i++) digests.push(await signedImage(upstream, 'bench/signed', `fresh-${i}`, key));
  const ms: number[] = [];
  // One request's CPU is below /proc's resolution: measured over all of them, one at a time.
  const { cpu } = await withCpu(p.pid, async () => {
    for (const digest of digests) {
      const t0 = performance.now();
      const r = await fetch(`${p.url}/v2/bench/signed/manifests/${digest}`, { method: 'HEAD', headers: auth });
      ms.push(performance.now() - t0);
      if (r.status !== 200) throw new Error(`uncached verification: HTTP ${r.status}`);
    }
  });
  return { ms: mid(ms), cpuMs: (cpu * 1000) / n, n };
}

export async function benchSignatures(
  base: BenchProxy,
  upstream: string,
  load: LoadProcess,
  total: number,
  reps: number,
  log: (m: string) => void,
): Promise<SignaturesResults> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-bench-trust-'));
  const key = keyPair('ec');
  const keyFile = join(dir, 'bench-signing.pub');
  writeFileSync(keyFile, key.pem);
  await signedImage(upstream, 'bench/app', 'signed', key);
  const trusted = await startBenchProxy(upstream, {
    config: { signatures: [{ name: 'bench', repositories: ['bench/**'], keys: [keyFile] }] },
  });
  try {
    // the verdict is cached by the warm-up
    const { without, with: withTrust } = await compareHead(
      load,
      { without: base, with: trusted },
      total,
      reps,
      'signed',
    );
    const result: SignaturesResults = {
      without,
      with: withTrust,
      extraCpuMs: withTrust.cpuMs - without.cpuMs,
      extraP50Ms: withTrust.lat.p50 - without.lat.p50,
      uncached: await uncached(trusted, upstream, key, 20),
    };
    log(
      `HEAD x16 by tag, signature verdict cached: ${fmt(withTrust.cpuMs, 3)} ms CPU/req vs ${fmt(without.cpuMs, 3)} (+${fmt(result.extraCpuMs, 3)}), ` +
        `p50 +${fmt(result.extraP50Ms)} ms; uncached verification ${fmt(result.uncached.ms)} ms, ${fmt(result.uncached.cpuMs, 2)} ms CPU`,
    );
    return result;
  } finally {
    await trusted.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
