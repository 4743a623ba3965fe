import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { catalogLink, createCursorCodec, deriveCursorKey, openCatalogQuery, openCursor, sealCursor } from '../../../src/oci/catalog-cursor.js';

const key = deriveCursorKey(randomBytes(32));
const PUBLIC = 'https://registry.example.com';

describe('catalog cursors', () => {
  it('seal a name opaquely, with a prefix no repository name has, and open it again', () => {
    const c = sealCursor('team-b/secret', key);
    expect(c).toMatch(/^~[A-Za-z0-9_-]+$/);
    expect(c).not.toContain('team');
    expect(sealCursor('team-b/secret', key)).not.toBe(c); // fresh nonce each time
    expect(openCursor(c, [key])).toBe('team-b/secret');
  });

  it('open nothing tampered, foreign, truncated or malformed', () => {
    const c = sealCursor('team-b/secret', key);
    const flipped = `${c.slice(0, 5)}${c[5] === 'A' ? 'B' : 'A'}${c.slice(6)}`;
    for (const bad of [flipped, c.slice(0, -2), '~', '~AAAA', '~!!!', `~${'A'.repeat(4000)}`, 'team-b/secret', c.slice(1)]) {
      expect(openCursor(bad, [key]), bad.slice(0, 20)).toBeUndefined();
    }
    expect(openCursor(c, [deriveCursorKey(randomBytes(32))])).toBeUndefined();
  });

  it('derive the same key from the same signing key (replicas agree) and open across a rotation', () => {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const k2 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const replicaA = createCursorCodec({ current: () => ({ privateKey: k1 }), all: () => [{ privateKey: k1 }] });
    const replicaB = createCursorCodec({ current: () => ({ privateKey: k1 }), all: () => [{ privateKey: k1 }] });
    const c = replicaA.seal('a/b');
    expect(replicaB.open(c)).toBe('a/b');
    // k2 now signs, k1 is still in the ring: earlier cursors keep working
    const rotated = createCursorCodec({ current: () => ({ privateKey: k2 }), all: () => [{ privateKey: k2 }, { privateKey: k1 }] });
    expect(rotated.open(c)).toBe('a/b');
    const other = createCursorCodec({ current: () => ({ privateKey: k2 }), all: () => [{ privateKey: k2 }] });
    expect(other.open(c)).toBeUndefined();
  });

  it('replace a cursor in `last` before forwarding, and pass plain names and absent `last`', () => {
    const open = (c: string) => openCursor(c, [key]);
    const c = sealCursor('team-a/app', key);
    expect(openCatalogQuery(`?last=${c}&n=2`, open)).toBe('?last=team-a%2Fapp&n=2');
    expect(openCatalogQuery('?last=team-a%2Fapp&n=2', open)).toBe('?last=team-a%2Fapp&n=2');
    expect(openCatalogQuery('?n=2', open)).toBe('?n=2');
    expect(openCatalogQuery('', open)).toBe('');
    expect(openCatalogQuery('?last=~forged&n=2', open)).toBeUndefined();
  });

  it('rewrite the upstream Link: public URL, sealed `last`, nothing else', () => {
    const seal = (n: string) => sealCursor(n, key);
    const out = catalogLink('</v2/_catalog?last=team-b%2Fsecret&n=1>; rel="next"', PUBLIC, seal)!;
    const m = /^<https:\/\/registry\.example\.com\/v2\/_catalog\?last=(~[A-Za-z0-9_-]+)&n=1>; rel="next"$/.exec(out);
    expect(m, out).not.toBeNull();
    expect(out).not.toContain('secret');
    expect(openCursor(m![1]!, [key])).toBe('team-b/secret');
    // absolute upstream URLs, other parameter orders, extra parameters and other link relations
    const abs = catalogLink('<http://upstream:5000/v2/_catalog?n=2&last=x&evil=team-b%2Fsecret>; rel=next, </v2/_catalog?last=y>; rel="prev"', PUBLIC, seal)!;
    expect(abs).toMatch(/^<https:\/\/registry\.example\.com\/v2\/_catalog\?last=~[A-Za-z0-9_-]+&n=2>; rel="next"$/);
    // unreadable or unexpected Links are dropped, never passed
    for (const bad of ['</v2/_catalog?n=1>; rel="next"', '</v2/_catalog?last=a>; rel="prev"', 'team-b/secret', '<http://[::1>; rel="next"', '']) {
      expect(catalogLink(bad, PUBLIC, seal), bad).toBeUndefined();
    }
  });
});
