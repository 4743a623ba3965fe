import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

const OPENING = '{"repositories":[';
/** Longest prefix before the list we wait for, and the longest single name we accept. */
const MAX_PREFIX = 1024;
const MAX_NAME = 4096;

/**
 * Streams a `/v2/_catalog` answer (`{"repositories":["a","b",…]}`) through, dropping the names
 * `allow` refuses. Never holds more than one name: the list is tokenized as it arrives, whatever the
 * chunk boundaries. Anything of another shape fails closed: the list is closed where it stands (or
 * is empty), and the rest of the body is dropped.
 */
export function createCatalogFilter(allow: (name: string) => boolean): Transform {
  let state: 'prefix' | 'list' | 'string' | 'rest' | 'done' = 'prefix';
  let prefix = '';
  let name = '';
  let escaped = false;
  let kept = 0;
  const decoder = new StringDecoder('utf8');

  /** Output that ends the document validly from the current state. */
  const closing = (): string => (state === 'prefix' ? '{"repositories":[]}' : state === 'list' || state === 'string' ? ']}' : '');

  function feed(text: string): string {
    let out = '';
    for (let i = 0; i < text.length && state !== 'done'; i++) {
      const c = text[i]!;
      if (state === 'prefix') {
        if (/\s/.test(c)) continue; // keys hold no white space, so it only separates tokens here
        prefix += c;
        if (prefix === OPENING) {
          out += OPENING;
          state = 'list';
        } else if (!OPENING.startsWith(prefix) || prefix.length > MAX_PREFIX) {
          out += closing();
          state = 'done';
        }
      } else if (state === 'list') {
        if (c === '"') {
          state = 'string';
          name = '"';
        } else if (c === ']') {
          out += ']';
          state = 'rest';
        } else if (c !== ',' && !/\s/.test(c)) {
          out += closing();
          state = 'done';
        }
      } else if (state === 'string') {
        name += c;
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') {
          state = 'list';
          let decoded: unknown;
          try {
            decoded = JSON.parse(name);
          } catch {
            decoded = undefined;
          }
          if (typeof decoded === 'string' && allow(decoded)) out += (kept++ ? ',' : '') + name;
          name = '';
        } else if (name.length > MAX_NAME) {
          state = 'list';
          out += closing();
          state = 'done';
        }
      } else {
        out += c; // rest: the closing brace and any other members, verbatim
      }
    }
    return out;
  }

  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const out = feed(decoder.write(chunk));
      cb(null, out || undefined);
    },
    flush(cb) {
      const out = feed(decoder.end()) + closing();
      state = 'done';
      cb(null, out || undefined);
    },
  });
}
