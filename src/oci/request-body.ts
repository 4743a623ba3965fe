import { OciError } from './errors.js';
import type { Route } from './route.js';

/** What the handler knows about a request body before reading it. */
interface BodyFacts {
  /** Every Content-Type header value (a client may send several). */
  contentTypes: string[];
  /** A non-zero Content-Length or any Transfer-Encoding. */
  hasBody: boolean;
}

/** Form media types, which Go's `FormValue` (and so Distribution) parses out of request bodies. */
const FORM_TYPE = /x-www-form-urlencoded|form-data/i;

/**
 * Refuses bodies that could carry parameters past authorization. Distribution reads `mount`,
 * `from`, `digest` and `_state` with Go's `FormValue`, which also parses form bodies — body values
 * winning over the query — so the proxy, which authorizes from the query, must never forward form
 * content: no registry API call uses it. A mount takes no body at all.
 */
export function refuseBody(route: Route, body: BodyFacts): OciError | undefined {
  // Refused unread: the body would otherwise have to be drained before the connection could be reused.
  const close = { Connection: 'close' };
  if (body.contentTypes.some((t) => FORM_TYPE.test(t)))
    return new OciError(400, 'UNSUPPORTED', 'form bodies are not part of the registry API', { headers: close });
  if (route.mountFrom !== undefined && body.hasBody)
    return new OciError(400, 'BLOB_UPLOAD_INVALID', 'a cross-repository mount takes no request body', {
      headers: close,
    });
  return undefined;
}
