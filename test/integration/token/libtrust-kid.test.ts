import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrivateKeyPem, libtrustKeyID } from '../../../src/token/signing-keys.js';
import { requireTool } from '../../support/tools.js';

function base32Reference(buf: Buffer): string {
  // independent implementation: bit string → 5-bit groups
  const bits = [...buf].map((b) => b.toString(2).padStart(8, '0')).join('');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return out;
}

/** Distribution's token auth expects a `kid` that is the libtrust ID of the key: checked against openssl's view of it. */
describe('signing keys', () => {
  it('computes the libtrust key ID from the SPKI DER, as openssl sees it', () => {
    const openssl = requireTool('openssl');
    const dir = mkdtempSync(join(tmpdir(), 'rap-kid-'));
    const pem = generatePrivateKeyPem('ES256');
    writeFileSync(join(dir, 'k.pem'), pem);
    const der = execFileSync(openssl, ['pkey', '-in', join(dir, 'k.pem'), '-pubout', '-outform', 'DER']);
    const digest = execFileSync(openssl, ['dgst', '-sha256', '-binary'], { input: der }).subarray(0, 30);
    const expected = base32Reference(digest).match(/.{4}/g)!.join(':');
    expect(libtrustKeyID(createPublicKey(pem))).toBe(expected);
    expect(expected).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  });
});
