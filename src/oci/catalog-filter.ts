import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** The only key of the one shape Distribution answers: `{"repositories":[…]}`. */
const KEY = '"repositories"';
/** The longest single name we accept (Distribution caps names at 255). */
const MAX_NAME = 4096;

/** JSON white space (not `\s`: no other character may separate JSON tokens). */
const isWs = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';

type State = 'open' | 'key' | 'colon' | 'bracket' | 'first' | 'string' | 'after' | 'next' | 'close' | 'end' | 'done';

/** One move between tokens: on `char`, go to `to` and write `out`. */
type Move = readonly [char: string, to: State, out: string];

/**
 * The moves between tokens, where JSON white space waits and any other character fails. `end` has
 * none: nothing may follow the document (a second one would be read by lenient parsers).
 */
const MOVES: Partial<Record<State, readonly Move[]>> = {
  open: [['{', 'key', '']],
  colon: [[':', 'bracket', '']],
  bracket: [['[', 'first', '{"repositories":[']],
  first: [
    ['"', 'string', ''],
    [']', 'close', ']'],
  ],
  next: [['"', 'string', '']],
  after: [
    [',', 'next', ''],
    [']', 'close', ']'],
  ],
  close: [['}', 'end', '}']],
  end: [],
};

/** Where `c` leads from a state between tokens: a move, `'wait'` (white space) or `'fail'`. */
function moveBetweenTokens(state: State, c: string): Move | 'wait' | 'fail' {
  const move = MOVES[state]?.find(([char]) => char === c);
  return move ?? (isWs(c) ? 'wait' : 'fail');
}

/** Output that ends the document validly from `state`. */
function closing(state: State): string {
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
}

/** A complete JSON string token decoded, or `undefined` when it is not valid JSON. */
function decodeName(token: string): string | undefined {
  try {
    const decoded: unknown = JSON.parse(token);
    return typeof decoded === 'string' ? decoded : undefined;
  } catch {
    return undefined;
  }
}

/** The tokenizer's state across chunks: never more than the key or one name is held. */
class CatalogScanner {
  state: State = 'open';
  private key = '';
  private name = '';
  private escaped = false;
  private kept = 0;

  constructor(private readonly list: (name: string) => string | undefined) {}

  /** The output for the next piece of the body. */
  feed(text: string): string {
    let out = '';
    for (let i = 0; i < text.length && this.state !== 'done'; i++) out += this.step(text[i]!);
    return out;
  }

  /** Ends the document where it stands; nothing after this passes. */
  end(): string {
    const out = closing(this.state);
    this.state = 'done';
    return out;
  }

  private step(c: string): string {
    if (this.state === 'key') return this.keyChar(c);
    if (this.state === 'string') return this.nameChar(c);
    const move = moveBetweenTokens(this.state, c);
    if (move === 'fail') return this.end();
    if (move === 'wait') return '';
    const [, to, out] = move;
    if (to === 'string') this.name = '"';
    this.state = to;
    return out;
  }

  private keyChar(c: string): string {
    if (this.key === '' && isWs(c)) return '';
    this.key += c;
    if (this.key === KEY) this.state = 'colon';
    else if (!KEY.startsWith(this.key)) return this.end();
    return '';
  }

  private nameChar(c: string): string {
    this.name += c;
    if (this.escaped) this.escaped = false;
    else if (c === '\\') this.escaped = true;
    else if (c === '"') return this.nameEnded();
    else if (this.name.length > MAX_NAME) return this.end();
    return '';
  }

  private nameEnded(): string {
    const decoded = decodeName(this.name);
    this.name = '';
    if (decoded === undefined) return this.end();
    this.state = 'after';
    const listed = this.list(decoded);
    if (listed === undefined) return '';
    return (this.kept++ ? ',' : '') + JSON.stringify(listed);
  }
}

/**
 * Streams a `/v2/_catalog` answer through, each name replaced by what `list` makes of it: the name
 * the client sees (the upstream's, with a prefix added), or undefined to drop it. Never holds more
 * than one name: the document is tokenized as it arrives, whatever the chunk boundaries.
 *
 * Exactly Distribution's shape passes — `{"repositories":["a","b",…]}`, JSON white space between
 * tokens — and anything else fails closed: the output is ended validly where it stands and the rest
 * of the body is dropped. So no other member, no second `repositories` list (a client's parser
 * would take the last one) and nothing after the document ever reaches the client; names already
 * passed were allowed ones.
 */
export function createCatalogFilter(list: (name: string) => string | undefined): Transform {
  const scanner = new CatalogScanner(list);
  const decoder = new StringDecoder('utf8');
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const out = scanner.feed(decoder.write(chunk));
      cb(null, out || undefined);
    },
    flush(cb) {
      const out = scanner.feed(decoder.end()) + scanner.end();
      cb(null, out || undefined);
    },
  });
}
