import type { ServerResponse } from 'node:http';

/** OCI distribution-spec error codes (plus the few Distribution adds) with their usual statuses. */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNAVAILABLE'
  | 'UNKNOWN';

export interface OciErrorEntry {
  code: OciErrorCode;
  message: string;
  detail?: unknown;
}

export class OciError extends Error {
  constructor(
    readonly status: number,
    readonly code: OciErrorCode,
    message: string,
    readonly detail?: unknown,
    readonly headers: Record<string, string> = {},
    /** HTTP reason phrase instead of the standard one (printable ASCII only). */
    readonly statusMessage?: string,
  ) {
    super(message);
    this.name = 'OciError';
  }
  body(): { errors: OciErrorEntry[] } {
    return { errors: [{ code: this.code, message: this.message, ...(this.detail !== undefined ? { detail: this.detail } : {}) }] };
  }
}

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

/** Writes an OCI error JSON body with the right status and headers; never throws if the response is already gone. */
export function sendOciError(res: ServerResponse, err: OciError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(err.body());
  res.statusCode = err.status;
  if (err.statusMessage) res.statusMessage = err.statusMessage;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader(API_VERSION_HEADER, API_VERSION);
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.end(body);
}
