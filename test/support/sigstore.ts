import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  fulcioHandler,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  rekorHandler,
  type HandlerFn,
} from '@sigstore/mock';
import { bundleToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness } from '@sigstore/sign';

/**
 * Signatures made the way the signing tools make them, for trust/ tests.
 * - cosign's legacy `.sig` form, written with node:crypto in cosign's exact wire format.
 * - Sigstore bundles made by sigstore-js's own signing library (@sigstore/sign) against
 *   @sigstore/mock's Fulcio CA, CT log and Rekor log served on a local node:http server, with a
 *   trusted_root.json built from their keys: the verifier never checks bytes it wrote itself.
 */

const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(Buffer.from('{}')), size: 2 };

export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** What a registry must hold: blobs by digest, manifests by tag or digest. */
export interface Artifact {
  blobs: Buffer[];
  manifests: { reference?: string; mediaType: string; body: Buffer }[];
}

function descriptor(mediaType: string, body: Buffer, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: digestOf(body), size: body.length, ...extra };
}

/** A small image: one config, one layer; its manifest digest is what gets signed. */
export function image(seed: string): Artifact & { digest: string; manifest: Buffer } {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed }),
  );
  const layer = Buffer.from(`layer of ${seed}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: [descriptor('application/vnd.oci.image.layer.v1.tar', layer)],
    }),
  );
  return {
    blobs: [config, layer],
    manifests: [{ reference: seed, mediaType: OCI_MANIFEST, body: manifest }],
    digest: digestOf(manifest),
    manifest,
  };
}

/** cosign's simple-signing payload, marshalled as cosign marshals it. */
export function simpleSigningPayload(
  digest: string,
  dockerReference: string,
  type = 'cosign container image signature',
): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type,
      },
      optional: null,
    }),
  );
}

/** ECDSA P-256 key pair as `cosign generate-key-pair` makes (SHA-256, DER signatures). */
export function keyPair(type: 'ec' | 'ed25519' | 'rsa' = 'ec'): {
  publicKey: KeyObject;
  privateKey: KeyObject;
  pem: string;
} {
  const kp =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return { ...kp, pem: kp.publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

export function cosignSign(privateKey: KeyObject, payload: Buffer): string {
  return cryptoSign(privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', payload, privateKey).toString(
    'base64',
  );
}

/** The `sha256-<hex>.sig` manifest cosign pushes: one simple-signing layer per signature, the signature in its annotation. */
export function cosignSigManifest(
  digest: string,
  layers: { payload: Buffer; signature: string; annotations?: Record<string, string> }[],
): Artifact {
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l.payload)) },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: layers.map((l) =>
        descriptor(SIMPLE_SIGNING, l.payload, {
          annotations: { 'dev.cosignproject.cosign/signature': l.signature, ...l.annotations },
        }),
      ),
    }),
  );
  return {
    blobs: [config, ...layers.map((l) => l.payload)],
    manifests: [{ reference: `${digest.replace(':', '-')}.sig`, mediaType: OCI_MANIFEST, body: manifest }],
  };
}

/** A Sigstore bundle attached as cosign's bundle spec says: an OCI 1.1 artifact whose subject is the image. */
export function bundleReferrer(
  subject: { digest: string; size: number },
  bundle: unknown,
): Artifact & { digest: string; descriptor: Record<string, unknown> } {
  const blob = Buffer.from(JSON.stringify(bundle));
  const annotations = {
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1',
  };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: BUNDLE_TYPE,
      config: EMPTY,
      layers: [descriptor(BUNDLE_TYPE, blob)],
      subject: { mediaType: OCI_MANIFEST, ...subject },
      annotations,
    }),
  );
  const digest = digestOf(manifest);
  return {
    blobs: [Buffer.from('{}'), blob],
    manifests: [{ mediaType: OCI_MANIFEST, body: manifest }],
    digest,
    descriptor: descriptor(OCI_MANIFEST, manifest, { artifactType: BUNDLE_TYPE, annotations }),
  };
}

/** The referrers tag scheme's index (`sha256-<hex>`), for registries without the referrers API. */
export function fallbackIndex(subjectDigest: string, referrers: Record<string, unknown>[]): Artifact {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: referrers }));
  return { blobs: [], manifests: [{ reference: subjectDigest.replace(':', '-'), mediaType: OCI_INDEX, body }] };
}

/** cosign v3's statement for an image signature. */
export function signStatement(digest: string, name = 'registry.example/prod/app'): Buffer {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name, digest: { sha256: digest.slice('sha256:'.length) } }],
      predicateType: 'https://sigstore.dev/cosign/sign/v1',
      predicate: {},
    }),
  );
}

function unsignedJwt(claims: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ aud: 'sigstore', iat: Math.floor(Date.now() / 1000), ...claims })}.`;
}

export interface MockSigstore {
  /** trusted_root.json holding the mock CA, CT log and Rekor keys. */
  trustedRoot: Record<string, unknown>;
  /** A DSSE bundle over `statement`, with a certificate for this identity, an SCT and a Rekor entry. */
  sign(statement: Buffer, identity: { iss: string; sub: string }): Promise<unknown>;
  /** cosign 1.x/2.x keyless `.sig` layer annotations over a simple-signing payload: signature, certificate, chain, Rekor bundle. */
  signLegacy(
    payload: Buffer,
    identity: { iss: string; sub: string },
  ): Promise<{ signature: string; annotations: Record<string, string> }>;
  close(): Promise<void>;
}

const b64 = (b: ArrayBufferView | Buffer) =>
  Buffer.from(b instanceof Buffer ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).toString('base64');

function logInstance(url: string, spki: Buffer) {
  return {
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: {
      rawBytes: b64(spki),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: { start: '2000-01-01T00:00:00Z' },
    },
    logId: { keyId: b64(createHash('sha256').update(spki).digest()) },
  };
}

export async function startMockSigstore(): Promise<MockSigstore> {
  const gen = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ctKeys = gen();
  const caKeys = gen();
  const tlogKeys = gen();
  const ctlog = await initializeCTLog(ctKeys);
  const ca = await initializeCA(caKeys, ctlog);
  const routes = new Map<string, HandlerFn>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fn = routes.get(req.url ?? '');
      if (!fn) return void res.writeHead(404).end();
      void fn(Buffer.concat(chunks).toString()).then(({ statusCode, response, contentType }) => {
        // No keep-alive: a socket the server timed out while idle would be reset under the next signing request.
        res.writeHead(statusCode, { 'content-type': contentType ?? 'text/plain', connection: 'close' }).end(response);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tlog = await initializeTLog(url, tlogKeys);
  for (const h of [fulcioHandler(ca), rekorHandler(tlog)]) routes.set(h.path, h.fn);
  const spki = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [logInstance(url, spki(tlogKeys.publicKey))],
    certificateAuthorities: [
      {
        subject: { organization: 'mock', commonName: 'mock' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start: '2000-01-01T00:00:00Z' },
      },
    ],
    ctlogs: [logInstance(url, spki(ctKeys.publicKey))],
    timestampAuthorities: [],
  };
  return {
    trustedRoot,
    async sign(statement, identity) {
      const signer = new FulcioSigner({
        fulcioBaseURL: url,
        identityProvider: { getToken: async () => unsignedJwt(identity) },
      });
      // intoto entries: the mock logs a proposed entry as sent, and only an intoto one is already canonical
      // (real Rekor canonicalizes dsse entries, which @sigstore/verify checks the same way).
      const builder = new DSSEBundleBuilder({
        signer,
        witnesses: [new RekorWitness({ rekorBaseURL: url, entryType: 'intoto' })],
      });
      return bundleToJSON(await builder.create({ data: statement, type: 'application/vnd.in-toto+json' }));
    },
    async signLegacy(payload, identity) {
      const signer = new FulcioSigner({
        fulcioBaseURL: url,
        identityProvider: { getToken: async () => unsignedJwt(identity) },
      });
      const builder = new MessageSignatureBundleBuilder({
        signer,
        witnesses: [new RekorWitness({ rekorBaseURL: url })],
      });
      return legacyAnnotations(
        bundleToJSON(await builder.create({ data: payload })) as unknown as SerializedMessageBundle,
      );
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface SerializedMessageBundle {
  messageSignature: { signature: string };
  verificationMaterial: {
    certificate?: { rawBytes: string };
    x509CertificateChain?: { certificates: { rawBytes: string }[] };
    tlogEntries: {
      logIndex: string;
      logId: { keyId: string };
      integratedTime: string;
      inclusionPromise: { signedEntryTimestamp: string };
      canonicalizedBody: string;
    }[];
  };
}

const pem = (der: string) =>
  `-----BEGIN CERTIFICATE-----\n${der.replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;

/** What cosign writes on a keyless `.sig` layer, from the same material a bundle holds. */
function legacyAnnotations(b: SerializedMessageBundle): { signature: string; annotations: Record<string, string> } {
  const vm = b.verificationMaterial;
  const [leaf, ...chain] = vm.certificate ? [vm.certificate] : vm.x509CertificateChain!.certificates;
  const e = vm.tlogEntries[0]!;
  const rekor = {
    SignedEntryTimestamp: e.inclusionPromise.signedEntryTimestamp,
    Payload: {
      body: e.canonicalizedBody,
      integratedTime: Number(e.integratedTime),
      logIndex: Number(e.logIndex),
      logID: Buffer.from(e.logId.keyId, 'base64').toString('hex'),
    },
  };
  return {
    signature: b.messageSignature.signature,
    annotations: {
      'dev.sigstore.cosign/certificate': pem(leaf!.rawBytes),
      ...(chain.length ? { 'dev.sigstore.cosign/chain': chain.map((c) => pem(c.rawBytes)).join('') } : {}),
      'dev.sigstore.cosign/bundle': JSON.stringify(rekor),
    },
  };
}
