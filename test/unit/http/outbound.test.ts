import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import {
  OUTBOUND_MAX_BYTES,
  OutboundError,
  outbound,
  outboundAgent,
  outboundJson,
} from '../../../src/http/outbound.js';

/**
 * The outbound helper against a raw TCP server on 127.0.0.1 that writes exactly the bytes each case
 * needs (chunked, a Content-Length that lies, a body delimited by close, a stall), counting how many
 * body bytes it managed to write before the helper hung up.
 */
type Answer = (socket: Socket) => void;

let server: Server;
let port: number;
let answer: Answer;
/** Body bytes the server wrote for the current case, and whether the client closed the connection. */
let written = 0;
let clientClosed = false;
const agent = outboundAgent({ timeoutMs: 2000 });

const CHUNK = Buffer.alloc(16 * 1024, 'a');
/** What a hostile server would send without end, bounded so a broken helper still ends the test. */
const HOSTILE_BYTES = 64 * 1024 * 1024;

/** Writes `total` bytes (as HTTP chunks or raw), honouring back-pressure, until done or the client hangs up. */
function pump(socket: Socket, total: number, chunked: boolean): void {
  const next = () => {
    while (written < total && !socket.destroyed) {
      const piece = chunked
        ? Buffer.concat([Buffer.from(`${CHUNK.length.toString(16)}\r\n`), CHUNK, Buffer.from('\r\n')])
        : CHUNK;
      written += CHUNK.length;
      if (!socket.write(piece)) return void socket.once('drain', next);
    }
    if (!socket.destroyed) socket.end(chunked ? '0\r\n\r\n' : '');
  };
  next();
}

beforeAll(async () => {
  server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('close', () => (clientClosed = true));
    // Answer once the request head is in (GET: no body; POST bodies here are tiny and come with it).
    let head = '';
    socket.on('data', (d) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) answer(socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterEach(() => {
  written = 0;
  clientClosed = false;
});

afterAll(async () => {
  await agent.close();
  await new Promise<void>((r) => server.close(() => r()));
});

const url = (path = '/token?scope=repository:a:pull&secret=do-not-log') => `http://127.0.0.1:${port}${path}`;

async function failure(p: Promise<unknown>): Promise<OutboundError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OutboundError);
  return err as OutboundError;
}

describe('outbound: bounded reads of answers the proxy reads itself', () => {
  it('reads a small answer, with its status and headers', async () => {
    answer = (s) =>
      s.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"token":"abc"}');
    const res = await outboundJson(url(), { dispatcher: agent, timeoutMs: 2000 });
    expect(res).toMatchObject({ status: 200, body: { token: 'abc' } });
    expect(res.headers['content-type']).toBe('application/json');
  });

  it('a chunked answer past the cap is refused mid-stream: the connection is dropped, not read on', async () => {
    answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
      pump(s, HOSTILE_BYTES, true);
    };
    const err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 10_000 }));
    expect(err.outbound).toBe('too-large');
    expect(err.message).toBe(`127.0.0.1:${port} answered HTTP 200 with more than ${OUTBOUND_MAX_BYTES} bytes: refused`);
    await expect.poll(() => clientClosed).toBe(true);
    // The server stopped far short of what it meant to send: socket buffers, not the whole body.
    expect(written).toBeLessThan(HOSTILE_BYTES / 4);
  });

  it('a declared Content-Length past the cap is refused before the body is read', async () => {
    answer = (s) => {
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${HOSTILE_BYTES}\r\n\r\n`);
      pump(s, HOSTILE_BYTES, false);
    };
    const err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 10_000, maxBytes: 1024 }));
    expect(err.outbound).toBe('too-large');
    expect(err.message).toContain('more than 1024 bytes');
    await expect.poll(() => clientClosed).toBe(true);
    expect(written).toBeLessThan(HOSTILE_BYTES / 4);
  });

  it('a Content-Length that lies low does not let more bytes in: the answer is what it declared', async () => {
    answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
      pump(s, HOSTILE_BYTES, false);
    };
    const res = await outbound(url(), { dispatcher: agent, timeoutMs: 10_000 });
    expect(res.text.length).toBe(100);
    await expect.poll(() => clientClosed).toBe(true);
    expect(written).toBeLessThan(HOSTILE_BYTES / 4);
  });

  it('a body delimited by the connection closing (no length, not chunked) is capped too', async () => {
    answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
      pump(s, HOSTILE_BYTES, false);
    };
    const err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 10_000 }));
    expect(err.outbound).toBe('too-large');
    await expect.poll(() => clientClosed).toBe(true);
    expect(written).toBeLessThan(HOSTILE_BYTES / 4);
  });

  it('an answer that stalls (before the headers, or mid-body) times out with the host and the bound', async () => {
    answer = () => {}; // never answers
    let err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 300 }));
    expect(err).toMatchObject({
      outbound: 'timeout',
      code: 'ETIMEDOUT',
      message: `127.0.0.1:${port} did not answer within 300 ms`,
    });
    answer = (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"tok'); // then nothing
    err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 300 }));
    expect(err).toMatchObject({ outbound: 'timeout', code: 'ETIMEDOUT' });
  });

  it('a non-2xx answer is an answer (the caller judges it), read under the same cap', async () => {
    const body = '{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}';
    answer = (s) =>
      s.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    expect(await outbound(url(), { dispatcher: agent, timeoutMs: 2000 })).toMatchObject({ status: 401, text: body });
    answer = (s) => {
      s.write('HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n');
      pump(s, HOSTILE_BYTES, true);
    };
    const err = await failure(outbound(url(), { dispatcher: agent, timeoutMs: 10_000 }));
    expect(err).toMatchObject({ outbound: 'too-large', status: 500 });
  });

  it('a body that is not JSON, and a refused connection, are errors naming the host only (never the path or query)', async () => {
    answer = (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n<html>hi<');
    const notJson = await failure(outboundJson(url(), { dispatcher: agent, timeoutMs: 2000 }));
    expect(notJson).toMatchObject({
      outbound: 'not-json',
      status: 200,
      message: `127.0.0.1:${port} answered HTTP 200 with a body that is not JSON`,
    });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const refused = await failure(
      outbound(`http://127.0.0.1:${deadPort}/token?secret=do-not-log`, { dispatcher: agent, timeoutMs: 2000 }),
    );
    expect(refused).toMatchObject({ outbound: 'network', code: 'ECONNREFUSED' });
    for (const e of [notJson, refused]) expect(e.message).not.toMatch(/secret|token/);
  });
});
