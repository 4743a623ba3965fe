import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  catalogLink,
  createCursorCodec,
  deriveCursorKey,
  openCatalogQuery,
  openCursor,
  sealCursor,
} from '../../../src/oci/catalog-cursor.js';

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
    for (const bad of [
      flipped,
      c.slice(0, -2),
      '~',
      '~AAAA',
      '~!!!',
      `~${'A'.repeat(4000)}`,
      'team-b/secret',
      c.slice(1),
    ]) {
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
    const rotated = createCursorCodec({
      current: () => ({ privateKey: k2 }),
      all: () => [{ privateKey: k2 }, { privateKey: k1 }],
    });
    expect(rotated.open(c)).toBe('a/b');
    const other = createCursorCodec({ current: () => ({ privateKey: k2 }), all: () => [{ privateKey: k2 }] });
    expect(other.open(c)).toBeUndefined();
  });

  it('have the same length whatever the name, up to the 255 characters Distribution allows', () => {
    const names = ['a', 'team-b/secret', `${'x'.repeat(100)}/${'y'.repeat(154)}`, 'é'.repeat(128)];
    const lengths = new Set(names.map((n) => sealCursor(n, key).length));
    expect(lengths.size, [...lengths].join(',')).toBe(1);
    for (const n of names) expect(openCursor(sealCursor(n, key), [key])).toBe(n);
    // a longer name (not from Distribution) takes the next size, and still opens
    const long = 'z'.repeat(300);
    expect(sealCursor(long, key).length).toBeGreaterThan(sealCursor('a', key).length);
    expect(openCursor(sealCursor(long, key), [key])).toBe(long);
  });

  // [what, query the client sent, query forwarded or the 400's message]
  it.each([
    ['a cursor opened', 'CURSOR', '?last=team-a%2Fapp&n=2'],
    ['no last', '?n=2', '?n=2'],
    ['no query', '', ''],
    ["an empty last (go-containerregistry's CatalogPage for the first page)", '?last=&n=2', '?n=2'],
    ['an empty last alone', '?last=', ''],
    [
      'a plain name: the ordering oracle',
      '?last=team-a%2Fapp&n=2',
      /must be the cursor from the previous page's Link header, not a repository name/,
    ],
    ['a guess just after a hidden name', '?last=team-b%2Fsecre~&n=1', /not a repository name/],
    ['a cursor that does not open', '?last=~forged&n=2', /invalid catalog cursor/],
  ] as const)('forward only what a sealed cursor names in `last`: %s', (_what, sent, expected) => {
    const open = (c: string) => openCursor(c, [key]);
    const query = sent === 'CURSOR' ? `?last=${sealCursor('team-a/app', key)}&n=2` : sent;
    const out = openCatalogQuery(query, open);
    if (typeof expected === 'string') expect(out).toBe(expected);
    else expect(out).toMatchObject({ status: 400, code: 'UNSUPPORTED', message: expect.stringMatching(expected) });
  });

  it('rewrite the upstream Link: public URL, sealed `last`, nothing else', () => {
    const seal = (n: string) => sealCursor(n, key);
    const out = catalogLink('</v2/_catalog?last=team-b%2Fsecret&n=1>; rel="next"', PUBLIC, seal)!;
    const m = /^<https:\/\/registry\.example\.com\/v2\/_catalog\?last=(~[A-Za-z0-9_-]+)&n=1>; rel="next"$/.exec(out);
    expect(m, out).not.toBeNull();
    expect(out).not.toContain('secret');
    expect(openCursor(m![1]!, [key])).toBe('team-b/secret');
    // absolute upstream URLs, other parameter orders, extra parameters and other link relations
    const abs = catalogLink(
      '<http://upstream:5000/v2/_catalog?n=2&last=x&evil=team-b%2Fsecret>; rel=next, </v2/_catalog?last=y>; rel="prev"',
      PUBLIC,
      seal,
    )!;
    expect(abs).toMatch(/^<https:\/\/registry\.example\.com\/v2\/_catalog\?last=~[A-Za-z0-9_-]+&n=2>; rel="next"$/);
    // unreadable or unexpected Links are dropped, never passed
    for (const bad of [
      '</v2/_catalog?n=1>; rel="next"',
      '</v2/_catalog?last=a>; rel="prev"',
      'team-b/secret',
      '<http://[::1>; rel="next"',
      '',
    ]) {
      expect(catalogLink(bad, PUBLIC, seal), bad).toBeUndefined();
    }
  });
});
