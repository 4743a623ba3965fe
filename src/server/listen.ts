import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';

export interface Listener {
  server: Server;
  /** Base URL the listener is reachable at (its real port, even when configured as 0). */
  url: string;
  /** Stops accepting, lets in-flight requests finish within `graceMs`, then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

export async function startListener(config: Config, listener: RequestListener, logger: Logger): Promise<Listener> {
  const options = {
    maxHeaderSize: config.limits.maxHeaderBytes,
    // Blob uploads may take long: no whole-request deadline, but headers must arrive promptly.
    requestTimeout: 0,
    headersTimeout: 30_000,
    keepAliveTimeout: 65_000,
  };
  const server: Server = config.tls
    ? (createHttpsServer({ ...options, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, listener) as unknown as Server)
    : createHttpServer(options, listener);

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A TLS ClientHello on the plain port (skopeo/podman probe HTTPS first with --tls-verify=false),
    // garbage, or oversized headers: answer 400/431 quietly and keep serving.
    if (socket.writable) {
      const [status, message] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? ['431 Request Header Fields Too Large', `request headers larger than ${config.limits.maxHeaderBytes} bytes`]
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT'
            ? ['408 Request Timeout', 'request headers did not arrive in time']
            : ['400 Bad Request', 'malformed HTTP request'];
      const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message }] });
      socket.end(
        `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    } else {
      socket.destroy();
    }
    logger.debug({ code: err.code, remote: socket.remoteAddress }, 'malformed request rejected');
  });
  if (config.tls) server.on('tlsClientError', (err: Error) => logger.debug({ err: err.message }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    server,
    url,
    close(graceMs = 25_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
