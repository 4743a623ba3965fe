import { createHash, createCipheriv } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';

const CHUNK = 1 << 20; // 1 MiB

/**
 * A deterministic pseudo-random byte stream of `size` bytes (AES-256-CTR keystream of a fixed key):
 * never held in memory, identical on every call, so the digest can be computed once up front.
 */
function blobStream(size: number, seed = 1): Readable {
  const key = Buffer.alloc(32, seed);
  const iv = Buffer.alloc(16, 0);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(CHUNK);
  let left = size;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(CHUNK, left);
      left -= n;
      this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
    },
  });
}

export async function blobDigest(size: number, seed = 1): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of blobStream(size, seed)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function absolute(base: string, location: string): string {
  return new URL(location, base).toString();
}

/** Monolithic streamed upload (POST then PUT with the whole body). Returns seconds spent. */
export async function pushBlob(
  baseURL: string,
  repo: string,
  size: number,
  digest: string,
  headers: Record<string, string> = {},
  seed = 1,
): Promise<number> {
  const t0 = performance.now();
  const start = await request(`${baseURL}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  await start.body.dump();
  if (start.statusCode !== 202) throw new Error(`upload start: HTTP ${start.statusCode}`);
  const loc = start.headers.location;
  if (typeof loc !== 'string') throw new Error('upload start: no Location');
  const url = new URL(absolute(baseURL, loc));
  url.searchParams.set('digest', digest);
  const put = await request(url.toString(), {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: blobStream(size, seed),
  });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`upload PUT: HTTP ${put.statusCode} ${text.slice(0, 200)}`);
  return (performance.now() - t0) / 1000;
}

/** Streams a blob down and checks its digest. Returns seconds spent. */
export async function pullBlob(
  baseURL: string,
  repo: string,
  digest: string,
  expectedSize: number,
  headers: Record<string, string> = {},
  verify = false,
): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${baseURL}/v2/${repo}/blobs/${digest}`, {
    method: 'GET',
    headers,
    maxRedirections: 0,
  } as Parameters<typeof request>[1]);
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    throw new Error(`pull: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  }
  // Hashing costs the client CPU that the 2-core machine shares with the proxy, so only when asked.
  const hash = verify ? createHash('sha256') : undefined;
  let n = 0;
  for await (const chunk of res.body) {
    hash?.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (n !== expectedSize) throw new Error(`pull: got ${n} bytes, expected ${expectedSize}`);
  if (hash && `sha256:${hash.digest('hex')}` !== digest) throw new Error('pull: digest mismatch');
  return seconds;
}
