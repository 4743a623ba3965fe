import type { ServerResponse } from 'node:http';

/**
 * The one JSON writer: every JSON answer of the process (OCI and OAuth2 errors, token grants, JWKS,
 * probes) goes out here, once. `headers` come last, so a caller may override the content type.
 * A response whose head already left cannot carry a second status: it is cut instead.
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  statusMessage?: string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (statusMessage) res.statusMessage = statusMessage;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(text);
}
