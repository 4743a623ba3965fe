import type { IncomingMessage } from 'node:http';

/** The body was longer than allowed: reading stopped there (the connection is closed after the refusal). */
export const TOO_LARGE = Symbol('too large');

/**
 * The request body in memory, at most `maxBytes` (a manifest: capped by limits.manifestMaxBytes), or
 * TOO_LARGE as soon as it passes that (counted while reading: a chunked body declares no length).
 * Only guards that must see a manifest whole (its digest, its length) read one; the forwarder then
 * sends exactly these bytes. Rejects when the client goes away or the stream fails.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | typeof TOO_LARGE> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      done();
      // Unread bytes stay unread: the refusal closes the connection.
      req.pause();
      resolve(TOO_LARGE);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      if (req.complete) return;
      done();
      reject(new Error('the client closed the connection before the body was complete'));
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}
