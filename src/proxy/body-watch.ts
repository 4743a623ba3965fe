import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { Exchange } from './idle-watchdog.js';

/**
 * The forwarder's (forward.ts) watch over an exchange's two bodies as they stream: each chunk is
 * progress for the idle watchdog, the byte totals go to metrics once, and a body that ends short
 * or arrives unframed cuts the exchange rather than leaving the other side waiting.
 */

/** What the body watch reads and writes of an exchange's state. */
interface WatchedExchange extends Exchange {
  route: string;
  requestId?: string;
  proxyReq?: { destroy(err?: Error): void };
  onBytes?: (direction: 'upload' | 'download', bytes: number) => void;
  counted: ByteCounts;
}

/** Body bytes an exchange has streamed so far, each way. */
export interface ByteCounts {
  upload: number;
  download: number;
}

/** Counts the response's bytes and cuts the client when the upstream's body ends short. */
export function trackResponse<E extends WatchedExchange>(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  meta: E,
  deps: { logger: Logger; unwatch: (meta: E) => void },
): void {
  const { counted } = meta;
  proxyRes.on('data', (chunk: Buffer) => {
    counted.download += chunk.length;
    meta.progress++;
  });
  proxyRes.once('close', () => {
    deps.unwatch(meta);
    if (counted.download > 0) meta.onBytes?.('download', counted.download);
    // A response cut short upstream (reset, idle timeout) must be cut short for the client too:
    // pipe() alone would leave the client waiting forever on a body that will never complete.
    if (proxyRes.complete) return;
    deps.logger.warn(
      { requestId: meta.requestId, route: meta.route, status: proxyRes.statusCode ?? 0 },
      'upstream response ended before its body was complete: cutting the client connection',
    );
    res.destroy();
  });
}

/** Counts upload bytes as progress; cuts an exchange whose body the forwarded head does not frame. */
export function watchUpload(
  req: IncomingMessage,
  res: ServerResponse,
  meta: WatchedExchange,
  unframed: boolean,
  logger: Logger,
): void {
  if (unframed) {
    // The app refuses such requests at the door (server/app.ts framingProblem); reaching here
    // means the parser framed a body the forwarded head does not carry.
    req.once('data', () => {
      logger.error(
        { requestId: meta.requestId, route: meta.route, method: req.method },
        'request body without forwarded framing: exchange cut',
      );
      meta.proxyReq?.destroy();
      res.destroy();
    });
  }
  // proxy.web has piped the request synchronously, so this listener sees every chunk; it
  // does not resume a source that back-pressure paused.
  const { counted, onBytes } = meta;
  req.on('data', (chunk: Buffer) => {
    counted.upload += chunk.length;
    meta.progress++;
  });
  if (onBytes) req.once('close', () => counted.upload > 0 && onBytes('upload', counted.upload));
}
