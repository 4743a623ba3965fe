import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** The only key of the one shape Distribution answers: `{"repositories":[…]}`. */
const KEY = '"repositories"';
/** The longest single name we accept (Distribution caps names at 255). */
const MAX_NAME = 4096;

/** JSON white space (not `\s`: no other character may separate JSON tokens). */
const isWs = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';

type State = 'open' | 'key' | 'colon' | 'bracket' | 'first' | 'string' | 'after' | 'next' | 'close' | 'end' | 'done';

/**
 * Streams a `/v2/_catalog` answer through, dropping the names `allow` refuses. Never holds more
 * than one name: the document is tokenized as it arrives, whatever the chunk boundaries.
 *
 * Exactly Distribution's shape passes — `{"repositories":["a","b",…]}`, JSON white space between
 * tokens — and anything else fails closed: the output is ended validly where it stands and the rest
 * of the body is dropped. So no other member, no second `repositories` list (a client's parser
 * would take the last one) and nothing after the document ever reaches the client; names already
 * passed were allowed ones.
 */
export function createCatalogFilter(allow: (name: string) => boolean): Transform {
  let state: State = 'open';
  let key = '';
  let name = '';
  let escaped = false;
  let kept = 0;
  const decoder = new StringDecoder('utf8');

  /** Output that ends the document validly from the current state. */
  const closing = (): string => {
    switch (state) {
      case 'open':
      case 'key':
      case 'colon':
      case 'bracket':
        return '{"repositories":[]}';
      case 'first':
      case 'string':
      case 'after':
      case 'next':
        return ']}';
      case 'close':
        return '}';
      default:
        return '';
    }
  };

  function feed(text: string): string {
    let out = '';
    /** Anything unexpected: close what is open and drop the rest. */
    const fail = (): void => {
      out += closing();
      state = 'done';
    };
    for (let i = 0; i < text.length && state !== 'done'; i++) {
      const c = text[i]!;
      switch (state) {
        case 'open':
          if (c === '{') state = 'key';
          else if (!isWs(c)) fail();
          break;
        case 'key':
          if (key === '' && isWs(c)) break;
          key += c;
          if (key === KEY) state = 'colon';
          else if (!KEY.startsWith(key)) fail();
          break;
        case 'colon':
          if (c === ':') state = 'bracket';
          else if (!isWs(c)) fail();
          break;
        case 'bracket':
          if (c === '[') {
            out += '{"repositories":[';
            state = 'first';
          } else if (!isWs(c)) fail();
          break;
        case 'first':
        case 'next':
          if (c === '"') {
            state = 'string';
            name = '"';
          } else if (c === ']' && state === 'first') {
            out += ']';
            state = 'close';
          } else if (!isWs(c)) fail();
          break;
        case 'string': {
          name += c;
          if (escaped) escaped = false;
          else if (c === '\\') escaped = true;
          else if (c === '"') {
            let decoded: unknown;
            try {
              decoded = JSON.parse(name);
            } catch {
              decoded = undefined;
            }
            name = '';
            if (typeof decoded !== 'string') {
              state = 'after';
              fail();
              break;
            }
            state = 'after';
            if (allow(decoded)) out += (kept++ ? ',' : '') + JSON.stringify(decoded);
          } else if (name.length > MAX_NAME) fail();
          break;
        }
        case 'after':
          if (c === ',') state = 'next';
          else if (c === ']') {
            out += ']';
            state = 'close';
          } else if (!isWs(c)) fail();
          break;
        case 'close':
          if (c === '}') {
            out += '}';
            state = 'end';
          } else if (!isWs(c)) fail();
          break;
        case 'end':
          // Nothing may follow the document (a second one would be read by lenient parsers).
          if (!isWs(c)) state = 'done';
          break;
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
