import type { IncomingHttpHeaders } from 'node:http';

/**
 * True when the head announces a request body: any Transfer-Encoding, or a Content-Length other
 * than `0`. One definition for the door (server/app.ts) and the routes (proxy/handler.ts), so that
 * what the door lets through as bodiless is what the routes treat as bodiless.
 */
export function announcesBody(headers: IncomingHttpHeaders): boolean {
  const cl = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}
