import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { OciError } from './errors.js';

/**
 * Opaque catalog cursors. The upstream's `Link: </v2/_catalog?last=<name>&n=N>; rel="next"` names
 * the last repository of the *unfiltered* page — with `n=1`, every repository in turn. The proxy
 * hands out `last=~<sealed name>` instead (AES-256-GCM) and opens it on the next request, so
 * pagination keeps working and no name the identity may not pull ever reaches it.
 *
 * Only cursors pass: a plain `last=<name>` is refused, since whether the filtered page after a guessed
 * name is empty tells whether a hidden name sorts right after the guess (an oracle that spells names
 * out). Real clients never write `last` themselves: they follow the `Link`. `~` cannot occur in a
 * repository name, so a cursor is told apart from a name.
 */
const CURSOR_PREFIX = '~';

/** HKDF info: unchanged, so the derived key stays the same across cursor formats. */
const INFO = 'registry-auth-proxy catalog cursor v1';
/** v2: padded plaintext. A v1 cursor (from before an upgrade) no longer opens: the client starts over. */
const AAD = Buffer.from('registry-auth-proxy catalog cursor v2');
const IV_BYTES = 12;
const TAG_BYTES = 16;
const LENGTH_BYTES = 2;
/**
 * Names are padded to a multiple of this many bytes, so a cursor's length does not tell the name's:
 * every name up to Distribution's limit (255) gives a cursor of the same length.
 */
const PAD_BYTES = 256;
/** Room for names up to 1280 bytes (Distribution caps them at 255): bounds the work a forged cursor costs. */
const MAX_CURSOR = 2048;

/** AES-256 key from signing-key material (HKDF-SHA256): replicas sharing the key directory agree. */
export function deriveCursorKey(material: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', material, 'registry-auth-proxy', INFO, 32));
}

/** The plaintext of a cursor: the name's length (2 bytes), the name, zeros up to the next multiple of PAD_BYTES. */
function pad(name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  const out = Buffer.alloc(LENGTH_BYTES + PAD_BYTES * Math.max(1, Math.ceil(bytes.length / PAD_BYTES)));
  out.writeUInt16BE(bytes.length);
  bytes.copy(out, LENGTH_BYTES);
  return out;
}

function unpad(plain: Buffer): string | undefined {
  if (plain.length < LENGTH_BYTES) return undefined;
  const length = plain.readUInt16BE();
  return LENGTH_BYTES + length <= plain.length
    ? plain.toString('utf8', LENGTH_BYTES, LENGTH_BYTES + length)
    : undefined;
}

export function sealCursor(name: string, key: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(AAD);
  const sealed = Buffer.concat([cipher.update(pad(name)), cipher.final()]);
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
      return unpad(Buffer.concat([decipher.update(sealed), decipher.final()]));
    } catch {
      // another key of the ring (rotation), or not ours
    }
  }
  return undefined;
}

// 400 UNSUPPORTED (the spec has no code for a bad `last`; PAGINATION_NUMBER_INVALID is about `n`):
// clients print the message, which says what to do instead.
const PLAIN_LAST = new OciError(
  400,
  'UNSUPPORTED',
  "catalog `last` must be the cursor from the previous page's Link header, not a repository name: start without `last` and follow Link",
);
const INVALID_CURSOR = new OciError(
  400,
  'UNSUPPORTED',
  'invalid catalog cursor (`last`): use the Link of the previous page',
);

/**
 * The catalog query to forward: a cursor in `last` replaced by the name it seals; an empty `last`
 * (go-containerregistry's `CatalogPage` asks for the first page so) dropped. `query` is the route's
 * re-serialized query ('' or `?…`). A 400 for a plain name, or a cursor that does not open. Pure.
 */
export function openCatalogQuery(query: string, open: (cursor: string) => string | undefined): string | OciError {
  const params = new URLSearchParams(query.replace(/^\?/, ''));
  const last = params.get('last');
  if (last === null) return query;
  if (last === '') params.delete('last');
  else if (!last.startsWith(CURSOR_PREFIX)) return PLAIN_LAST;
  else {
    const name = open(last);
    if (name === undefined) return INVALID_CURSOR;
    params.set('last', name);
  }
  const q = params.toString();
  return q ? `?${q}` : '';
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
