import { connect } from 'node:net';

/** Sends raw bytes on a fresh connection (for requests no HTTP client would send) and returns the answer. */
export function rawRequest(port: number, text: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(out) : reject(e)));
    s.setTimeout(timeoutMs, () => s.destroy());
  });
}

/** Status code, head and parsed JSON body of a raw HTTP/1.1 response text (first response only). */
export function parseRaw(out: string): { status: number; headers: string; body: unknown } {
  const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(out);
  if (!m) return { status: 0, headers: '', body: undefined };
  const len = /content-length:\s*(\d+)/i.exec(m[2]!);
  const text = len ? m[3]!.slice(0, Number(len[1])) : m[3]!;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: Number(m[1]), headers: m[2]!, body };
}
