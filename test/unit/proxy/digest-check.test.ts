import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { digestVerifier } from '../../../src/proxy/digest-check.js';

/** A GET of a verified manifest is released only when its bytes hash to the verified digest. */

const body = Buffer.from('{"schemaVersion":2}');
const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;

async function through(chunks: Buffer[], expected: string): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), digestVerifier(expected), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

describe('digestVerifier', () => {
  it.each<[string, Buffer[], string, boolean]>([
    ['the verified bytes, in pieces', [body.subarray(0, 5), body.subarray(5)], digest, true],
    ['other bytes under the digest', [Buffer.from('{"schemaVersion":1}')], digest, false],
    ['nothing', [], digest, false],
  ])('%s', async (_what, chunks, expected, ok) => {
    if (ok) expect(await through(chunks, expected)).toEqual(body);
    else await expect(through(chunks, expected)).rejects.toThrow(/the upstream sent/);
  });
});
