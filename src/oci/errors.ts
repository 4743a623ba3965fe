import type { ServerResponse } from 'node:http';
import { sendJson } from '../http/response.js';

/** OCI distribution-spec error codes (plus the few Distribution adds) with their usual statuses. */
type OciErrorCode =
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

/** RFC 6749 §5.2 error codes (plus `temporarily_unavailable`, `server_error`) the token endpoint answers with. */
type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'invalid_scope'
  | 'unsupported_grant_type'
  | 'temporarily_unavailable'
  | 'server_error';

interface OciErrorEntry {
  code: OciErrorCode;
  message: string;
  detail?: unknown;
}

/** What an error carries beyond its status, code and message. */
interface OciErrorOptions {
  /** The entry's `detail` (omitted from the body when undefined). */
  detail?: unknown;
  /** Response headers the error needs (a challenge's `WWW-Authenticate`, `Retry-After`, `Connection: close`). */
  headers?: Record<string, string>;
  /** HTTP reason phrase instead of the standard one (printable ASCII only). */
  statusMessage?: string;
  /** Token endpoint errors: the OAuth2 code rendered beside `errors`. */
  oauth?: OAuthErrorCode;
}

/**
 * The one HTTP error of the process: status, OCI code, message, and the headers it needs (a challenge
 * carries its own `WWW-Authenticate`, as Distribution's `Challenge` does). Token endpoint errors also
 * carry an OAuth2 code and render both shapes: registry clients read `errors`, OAuth2 clients read
 * `error`/`error_description`.
 */
export class OciError extends Error {
  readonly detail?: unknown;
  readonly headers: Record<string, string>;
  readonly statusMessage?: string;
  readonly oauth?: OAuthErrorCode;
  constructor(
    readonly status: number,
    readonly code: OciErrorCode,
    message: string,
    options: OciErrorOptions = {},
  ) {
    super(message);
    this.name = 'OciError';
    this.detail = options.detail;
    this.headers = options.headers ?? {};
    this.statusMessage = options.statusMessage;
    this.oauth = options.oauth;
  }
  body(): { errors: OciErrorEntry[]; error?: OAuthErrorCode; error_description?: string } {
    const errors = [
      { code: this.code, message: this.message, ...(this.detail !== undefined ? { detail: this.detail } : {}) },
    ];
    return this.oauth ? { errors, error: this.oauth, error_description: this.message } : { errors };
  }
}

/** An error of the token endpoint (both renderings, see OciError). */
export function oauthError(
  status: number,
  code: OciErrorCode,
  oauth: OAuthErrorCode,
  message: string,
  options: Pick<OciErrorOptions, 'headers' | 'statusMessage'> = {},
): OciError {
  return new OciError(status, code, message, { ...options, oauth });
}

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

/** Writes an OCI error JSON body with its status and headers; never throws if the response is already gone. */
export function sendOciError(res: ServerResponse, err: OciError, extraHeaders: Record<string, string> = {}): void {
  sendJson(
    res,
    err.status,
    err.body(),
    { [API_VERSION_HEADER]: API_VERSION, ...extraHeaders, ...err.headers },
    err.statusMessage,
  );
}
