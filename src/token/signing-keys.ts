import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import type { JWK } from 'jose';
import type { SigningAlgorithm, TokensConfig } from '../config/types.js';
import { ConfigError } from '../config/errors.js';
import type { Logger } from '../log.js';

/** One key of ours: signs registry tokens (if current) and is published in the JWKS. */
export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  /** Standard base64 DER chain, leaf first (the `x5c` header) when a certificate is configured. */
  x5c?: string[];
  source: string;
}

export interface KeyRing {
  /** The key that signs now. */
  current(): SigningKey;
  /** Every loaded key (current, next, previous): all verify and all are published. */
  all(): SigningKey[];
  byKid(kid: string): SigningKey | undefined;
  jwks(): { keys: JWK[] };
  ephemeral: boolean;
  close(): void;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The libtrust key ID Distribution 2.x computes for keys in its `rootcertbundle`: SHA-256 of the
 * DER SubjectPublicKeyInfo, first 30 bytes (240 bits), base32, 12 groups of 4 joined by ':'.
 */
export function libtrustKeyID(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  return base32(digest).match(/.{4}/g)!.join(':');
}

function algorithmFor(key: KeyObject, file: string): SigningAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
        throw new Error(`${file}: EC keys must use P-256 (ES256)`);
      return 'ES256';
    case 'rsa':
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
        throw new Error(`${file}: RSA keys must have at least 2048 bits`);
      return 'RS256';
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new Error(`${file}: unsupported key type ${key.asymmetricKeyType} (use EC P-256, RSA or Ed25519)`);
  }
}

export function signingKeyFromPem(pem: string, source: string, certPem?: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${source}: not a PEM private key (${(err as Error).message})`);
  }
  const publicKey = createPublicKey(privateKey);
  const alg = algorithmFor(privateKey, source);
  const kid = libtrustKeyID(publicKey);
  let x5c: string[] | undefined;
  if (certPem) {
    const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new Error(`${source}: certificate file holds no PEM certificate`);
    const chain = blocks.map((b) => new X509Certificate(b));
    if (!chain[0]!.checkPrivateKey(privateKey))
      throw new Error(`${source}: the certificate does not match the private key`);
    x5c = chain.map((c) => c.raw.toString('base64'));
  }
  const publicJwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk, x5c, source };
}

export function generatePrivateKeyPem(alg: SigningAlgorithm): string {
  const { privateKey } =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

interface Loaded {
  current: SigningKey;
  all: SigningKey[];
}

/**
 * `signingKeyFile` as one PEM file, or as a directory for zero-downtime rotation: `current.pem`
 * (a file or a symlink) signs; every other `*.pem` (next, previous) is published and verifies.
 * A `<name>.crt` beside `<name>.pem` adds `x5c`. Without a `current.pem`, a directory with a single
 * key uses it; with several, the first by name signs (and a warning says to add `current.pem`).
 */
function loadFromPath(cfg: TokensConfig, logger: Logger): Loaded {
  const path = cfg.signingKeyFile!;
  if (!existsSync(path)) throw new Error(`${path}: signing key file does not exist`);
  if (!statSync(path).isDirectory()) {
    const certPem = cfg.certificateFile ? readFileSync(cfg.certificateFile, 'utf8') : undefined;
    const key = signingKeyFromPem(readFileSync(path, 'utf8'), path, certPem);
    return { current: key, all: [key] };
  }
  const names = readdirSync(path)
    .filter((n) => n.endsWith('.pem') && !n.startsWith('.'))
    .sort();
  if (names.length === 0) throw new Error(`${path}: no *.pem key in the signing key directory`);
  const byKid = new Map<string, SigningKey>();
  let current: SigningKey | undefined;
  for (const name of names) {
    const file = join(path, name);
    const real = realpathSync(file);
    const crtFile = real.replace(/\.pem$/, '.crt');
    const certPem = existsSync(crtFile) ? readFileSync(crtFile, 'utf8') : undefined;
    const key = signingKeyFromPem(readFileSync(file, 'utf8'), file, certPem);
    if (!byKid.has(key.kid)) byKid.set(key.kid, key);
    if (basename(name) === 'current.pem') current = byKid.get(key.kid);
  }
  const all = [...byKid.values()];
  if (!current) {
    current = all[0]!;
    if (all.length > 1)
      logger.warn(
        { dir: path, signing: basename(current.source) },
        'several signing keys and no current.pem: signing with the first by name',
      );
  }
  return { current, all };
}

/**
 * The keys start-up signs with: the configured file or directory (a load error names `configFile`),
 * or else an ephemeral key, warned about where it was generated (a worker gets the primary's).
 */
function initialKeys(cfg: TokensConfig, logger: Logger, sharedEphemeralPem?: string, configFile?: string): Loaded {
  if (!cfg.signingKeyFile) {
    const key = signingKeyFromPem(sharedEphemeralPem ?? generatePrivateKeyPem(cfg.algorithm), '(ephemeral)');
    if (sharedEphemeralPem === undefined)
      logger.warn(
        "NO SIGNING KEY CONFIGURED: using an ephemeral key. Tokens become invalid on restart and replicas will not accept each other's tokens. Set tokens.signingKeyFile (create one with `registry-auth-proxy keys generate`).",
      );
    return { current: key, all: [key] };
  }
  let state: Loaded;
  try {
    state = loadFromPath(cfg, logger);
  } catch (err) {
    throw new ConfigError(configFile, 'tokens.signingKeyFile', (err as Error).message);
  }
  if (cfg.certificateFile === undefined && state.current.x5c === undefined) {
    logger.info(
      'no certificate for the signing key: tokens carry no x5c (needed only when a Distribution registry verifies them)',
    );
  }
  return state;
}

/**
 * `sharedEphemeralPem`: in a worker of `workers: N`, the ephemeral key the primary generated (and
 * warned about) once, so that every worker signs with and publishes the same key. `configFile`: the
 * file `tokens` came from, named in a load error (`<flags>` when they came from the command line).
 */
export async function loadKeyRing(
  cfg: TokensConfig,
  logger: Logger,
  { sharedEphemeralPem, configFile }: { sharedEphemeralPem?: string; configFile?: string } = {},
): Promise<KeyRing> {
  let state = initialKeys(cfg, logger, sharedEphemeralPem, configFile);
  const ephemeral = !cfg.signingKeyFile;
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  if (cfg.signingKeyFile && statSync(cfg.signingKeyFile).isDirectory()) {
    const reload = () => {
      try {
        const next = loadFromPath(cfg, logger);
        const changed =
          next.current.kid !== state.current.kid ||
          next.all.map((k) => k.kid).join() !== state.all.map((k) => k.kid).join();
        state = next;
        if (changed)
          logger.info({ current: next.current.kid, keys: next.all.map((k) => k.kid) }, 'signing keys reloaded');
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'reloading signing keys failed; keeping the previous keys');
      }
    };
    try {
      watcher = watch(cfg.signingKeyFile, () => reload());
      watcher.on('error', () => undefined);
    } catch {
      // fs.watch is unavailable on some filesystems: the periodic check still runs
    }
    timer = setInterval(reload, 10_000);
    timer.unref();
  }
  return {
    current: () => state.current,
    all: () => state.all,
    byKid: (kid) => state.all.find((k) => k.kid === kid),
    jwks: () => ({ keys: state.all.map((k) => k.publicJwk) }),
    ephemeral,
    close() {
      watcher?.close();
      if (timer) clearInterval(timer);
    },
  };
}
