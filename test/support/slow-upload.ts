import { request as httpRequest } from 'node:http';

/** An upload session path of the `team/app` repository (the fault suites' upstreams accept any). */
export const UPLOAD = '/v2/team/app/blobs/uploads/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

/** A 4 MiB PATCH to UPLOAD on its own connection, sent in 256 KiB pieces over ~1.5 s; resolves with the status. */
export function slowUpload(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${url}${UPLOAD}`, {
      method: 'PATCH',
      headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(4 << 20) },
      agent: false,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    let sent = 0;
    const tick = setInterval(() => {
      req.write(Buffer.alloc(256 * 1024));
      sent += 256 * 1024;
      if (sent >= 4 << 20) {
        clearInterval(tick);
        req.end();
      }
    }, 90);
  });
}
