import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

/**
 * Opaque catalog cursors. The upstream's `Link: </v2/_catalog?last=<name>&n=N>; rel="next"` names
 * the last repository of the *unfiltered* page — with `n=1`, every repository in turn. The proxy
 * hands out `last=~<sealed name>` instead (AES-256-GCM) and opens it on the next request, so
 * pagination keeps working and no name the identity may not pull ever reaches it.
 *
 * `~` cannot occur in a repository name, so a cursor is told apart from a plain `last=<name>`
 * (which a client may still send: the answer is filtered either way).
 */
const CURSOR_PREFIX = '~';

const INFO = 'registry-auth-proxy catalog cursor v1';
const AAD = Buffer.from(INFO);
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Far above any sealed repository name (255 chars): bounds the work a forged cursor costs. */
const MAX_CURSOR = 2048;

/** AES-256 key from signing-key material (HKDF-SHA256): replicas sharing the key directory agree. */
export function deriveCursorKey(material: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', material, 'registry-auth-proxy', INFO, 32));
}

export function sealCursor(name: string, key: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(AAD);
  const sealed = Buffer.concat([cipher.update(name, 'utf8'), cipher.final()]);
  return CURSOR_PREFIX + Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** The name a cursor seals, or undefined when it is not one of ours (tampered, foreign key, garbage). */
export function openCursor(cursor: string, keys: Buffer[]): string | undefined {
  if (!cursor.startsWith(CURSOR_PREFIX) || cursor.length > MAX_CURSOR) return undefined;
  const text = cursor.slice(CURSOR_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const raw = Buffer.from(text, 'base64url');
  if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
  const iv = raw.subarray(0, IV_BYTES);
  const tag = raw.subarray(raw.length - TAG_BYTES);
  const sealed = raw.subarray(IV_BYTES, raw.length - TAG_BYTES);
  for (const key of keys) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(AAD);
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed), decipher.final()]).toString('utf8');
    } catch {
      // another key of the ring (rotation), or not ours
    }
  }
  return undefined;
}

/**
 * The catalog query to forward: a cursor in `last` replaced by the name it seals. `query` is the
 * route's re-serialized query ('' or `?…`). Undefined when `last` is a cursor that does not open.
 */
export function openCatalogQuery(query: string, open: (cursor: string) => string | undefined): string | undefined {
  const params = new URLSearchParams(query.replace(/^\?/, ''));
  const last = params.get('last');
  if (last === null || !last.startsWith(CURSOR_PREFIX)) return query;
  const name = open(last);
  if (name === undefined) return undefined;
  params.set('last', name);
  return `?${params}`;
}

/**
 * The upstream's catalog `Link` as the client may see it: the `rel="next"` target at the public URL,
 * its `last` sealed, `n` kept. Undefined (drop the header) for anything else: a Link the proxy
 * cannot read must not pass, since it may name a repository.
 */
export function catalogLink(link: string, publicURL: string, seal: (name: string) => string): string | undefined {
  for (const m of link.matchAll(/<([^>]*)>\s*;([^,]*)/g)) {
    if (!/(?:^|;)\s*rel\s*=\s*"?next"?\s*(?:;|$)/i.test(m[2]!)) continue;
    let target: URL;
    try {
      target = new URL(m[1]!, 'http://upstream.invalid');
    } catch {
      return undefined;
    }
    const last = target.searchParams.get('last');
    const n = target.searchParams.get('n');
    if (!last) return undefined;
    // Both parts are URL-safe as they stand: base64url after `~`, and digits.
    const query = `last=${seal(last)}${n !== null && /^\d{1,9}$/.test(n) ? `&n=${n}` : ''}`;
    return `<${publicURL}/v2/_catalog?${query}>; rel="next"`;
  }
  return undefined;
}

/** The signing keys' view this module needs (a `KeyRing` fits). */
export interface CursorKeySource {
  current(): { privateKey: KeyObject };
  all(): { privateKey: KeyObject }[];
}

interface CursorCodec {
  seal(name: string): string;
  open(cursor: string): string | undefined;
}

/**
 * Seals with the current signing key's derived key and opens with any key of the ring, so cursors
 * survive a rotation and work on every replica that shares the key directory. Without a ring (or
 * with an ephemeral key) cursors are good for this process only.
 */
export function createCursorCodec(ring?: CursorKeySource): CursorCodec {
  const derived = new WeakMap<KeyObject, Buffer>();
  const fallback = deriveCursorKey(randomBytes(32));
  const keyOf = (k: KeyObject): Buffer => {
    let key = derived.get(k);
    if (!key) {
      key = deriveCursorKey(k.export({ type: 'pkcs8', format: 'der' }));
      derived.set(k, key);
    }
    return key;
  };
  return {
    seal: (name) => sealCursor(name, ring ? keyOf(ring.current().privateKey) : fallback),
    open: (cursor) => openCursor(cursor, ring ? ring.all().map((k) => keyOf(k.privateKey)) : [fallback]),
  };
}
